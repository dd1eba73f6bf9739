"""Per-token rate limiting with a Retry-After that says when *that* request can succeed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
from notion_client import AsyncClient, RetryOptions

from crm_pipeline.sandbox import SandboxControl
from crm_pipeline.sandbox.control import RateLimiter
from crm_pipeline.sandbox.errors import NotionError


def refusal_waits(limiter: RateLimiter, token: str, now: float, requests: int) -> list[int | None]:
    waits: list[int | None] = []
    for _ in range(requests):
        try:
            limiter.check(token, now)
            waits.append(None)
        except NotionError as error:
            assert (error.status, error.code) == (429, "rate_limited")
            waits.append(int(error.headers["Retry-After"]))
    return waits


def test_retry_after_spreads_a_burst_over_the_budget() -> None:
    limiter = RateLimiter(rate=2, burst=2)
    assert refusal_waits(limiter, "a", 100.0, 7) == [None, None, 1, 1, 2, 2, 3]
    assert refusal_waits(limiter, "b", 100.0, 1) == [None]  # each token has its own budget
    assert refusal_waits(limiter, "a", 101.0, 3) == [None, None, 2]  # refilled; queued behind slot 102.5


def test_rate_zero_disables_limiting() -> None:
    limiter = RateLimiter(rate=0, burst=1)
    assert refusal_waits(limiter, "a", 0.0, 50) == [None] * 50


async def test_429_carries_retry_after_and_rate_limited_code(raw: httpx.AsyncClient, control: SandboxControl) -> None:
    control.configure(rate_limit=1, burst=1)
    responses = await asyncio.gather(*(raw.get("/v1/users/me") for _ in range(6)))
    refused = [r for r in responses if r.status_code == 429]
    assert len(refused) == 5
    assert all(r.json()["code"] == "rate_limited" for r in refused)
    assert sorted(int(r.headers["Retry-After"]) for r in refused) == [1, 2, 3, 4, 5]  # one slot each
    control.configure(rate_limit=0)
    assert (await raw.get("/v1/users/me")).status_code == 200


async def test_sdk_default_retries_get_a_burst_through(
    make_notion: Callable[..., AsyncClient], control: SandboxControl, deals: dict[str, Any]
) -> None:
    """With the SDK's default RetryOptions honouring Retry-After, a burst over the budget all succeeds."""
    client = make_notion(retry=RetryOptions())  # the SDK's defaults: 2 retries, Retry-After honoured
    control.configure(rate_limit=4, burst=2)
    control.reset_stats()
    pages = await asyncio.gather(*(client.data_sources.query(deals["data_source_id"], page_size=1) for _ in range(8)))
    assert all(len(page["results"]) == 1 for page in pages)
    stats = control.stats()
    assert stats["by_status"]["200"] == 8 and stats["by_status"]["429"] >= 4
