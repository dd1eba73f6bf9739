"""Per-token rate limiting with a Retry-After that says when *that* request can succeed.

Time here is a value the test sets: the limiter reads an injected clock, and the SDK's retry waits
move that clock instead of sleeping, so no result depends on how fast the machine is.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Callable
from typing import Any

import httpx
import notion_client.client
import pytest
from notion_client import AsyncClient, RetryOptions

from crm_pipeline.emulation.control import RateLimiter
from crm_pipeline.emulation.errors import RateLimited
from crm_pipeline.sandbox import RunningSandbox, SandboxControl


class ManualTime:
    """A monotonic clock that only moves when told to."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def limiter_time(sandbox: RunningSandbox, monkeypatch: pytest.MonkeyPatch) -> ManualTime:
    """Stops time for the session server's rate limiter (restored after the test)."""
    manual = ManualTime()
    monkeypatch.setattr(sandbox.sandbox.limiter, "clock", manual)
    return manual


def refusal_waits(limiter: RateLimiter, token: str, requests: int) -> list[int | None]:
    waits: list[int | None] = []
    for _ in range(requests):
        try:
            limiter.check(token)
            waits.append(None)
        except RateLimited as error:
            waits.append(error.retry_after_s)
    return waits


def test_retry_after_spreads_a_burst_over_the_budget() -> None:
    time = ManualTime(100.0)
    limiter = RateLimiter(rate=2, burst=2, clock=time)
    assert refusal_waits(limiter, "a", 7) == [None, None, 1, 1, 2, 2, 3]
    assert refusal_waits(limiter, "b", 1) == [None]  # each token has its own budget
    time.now = 101.0
    assert refusal_waits(limiter, "a", 3) == [None, None, 2]  # refilled; queued behind slot 102.5


def test_rate_zero_disables_limiting() -> None:
    limiter = RateLimiter(rate=0, burst=1, clock=ManualTime())
    assert refusal_waits(limiter, "a", 50) == [None] * 50


async def test_429_carries_retry_after_and_rate_limited_code(
    raw: httpx.AsyncClient, control: SandboxControl, limiter_time: ManualTime
) -> None:
    control.configure(rate_limit=1, burst=1)
    responses = [await raw.get("/v1/users/me") for _ in range(6)]
    assert [r.status_code for r in responses] == [200] + [429] * 5
    assert all(r.json()["code"] == "rate_limited" for r in responses[1:])
    assert [int(r.headers["Retry-After"]) for r in responses[1:]] == [1, 2, 3, 4, 5]  # one slot each
    limiter_time.now += 1  # the first promise comes due
    assert (await raw.get("/v1/users/me")).status_code == 200
    control.configure(rate_limit=0)
    assert (await raw.get("/v1/users/me")).status_code == 200


async def test_sdk_default_retries_get_a_burst_through(
    make_notion: Callable[..., AsyncClient],
    control: SandboxControl,
    deals: dict[str, Any],
    limiter_time: ManualTime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the SDK's default RetryOptions honouring Retry-After, a burst over the budget all succeeds."""
    waits: list[float] = []

    async def wait_on_the_limiter_clock(seconds: float) -> None:
        """The SDK's retry wait: time (as the limiter sees it) moves to the end of the wait, once
        every first try has been answered (on a busy machine a first try could otherwise reach the
        sandbox after time moved, and find the bucket refilled)."""
        waits.append(seconds)
        while (await asyncio.to_thread(control.stats))["total"] < len(first_tries):
            await asyncio.sleep(0.01)
        limiter_time.now = max(limiter_time.now, started + seconds)
        await asyncio.sleep(0)

    started = limiter_time.now
    monkeypatch.setattr(notion_client.client, "asyncio", types.SimpleNamespace(sleep=wait_on_the_limiter_clock))
    client = make_notion(retry=RetryOptions())  # the SDK's defaults: 2 retries, Retry-After honoured
    control.configure(rate_limit=4, burst=2)  # the bucket holds a second's budget: 4
    control.reset_stats()
    first_tries = range(8)
    pages = await asyncio.gather(
        *(client.data_sources.query(deals["data_source_id"], page_size=1) for _ in first_tries)
    )
    assert all(len(page["results"]) == 1 for page in pages)
    assert waits == [1.0] * 4  # each refused request waited as told, once
    assert control.stats()["by_status"] == {"200": 8, "429": 4}
    assert control.stats()["by_token"] == {"crm_pipeline sandbox integration 1": {"200": 8, "429": 4}}
