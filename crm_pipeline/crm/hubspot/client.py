"""One chokepoint for every HubSpot request: client-side pacing plus tenacity retries.

``hubspot-api-client`` is synchronous (urllib3); each call runs in a worker thread. Its own retry
layer (urllib3's) is switched off, so tenacity owns every retry. Each attempt first takes a slot
of the app's budget: a rolling ten-second window under HubSpot's per-app limit (search has its
own per-second window, exempt from the ten-second one). With a shared ``RequestBudget``
(``RateLimit.shared``: the deal store's ``PostgresBudget``) the slots are the app's across every
process, and the day's limit is kept too; without one, the windows are shared by every adapter in
the process that uses the same token.

Failures are told apart by HTTP status and HubSpot's ``category``/``policyName`` fields, never by
message text.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import urllib3

from crm_pipeline.crm import retrying
from crm_pipeline.crm.budget import RequestBudget, RollingWindow, Window
from crm_pipeline.crm.retrying import BudgetRegistry, Failures, call_with_retries

logger = logging.getLogger("crm_pipeline.crm.hubspot")

T = TypeVar("T")
TRANSIENT_STATUSES = frozenset({500, 502, 503, 504, 521, 523, 524})
LOCKED = 423
RATE_LIMITED = 429
DAILY = "DAILY"


@dataclass(frozen=True, kw_only=True)
class RetryPolicy(retrying.RetryPolicy):
    """How failed HubSpot requests are retried.

    A 429 waits ``Retry-After`` when HubSpot sends one, else the rest of the window its
    ``policyName`` names (ten seconds, or one for search); the daily limit is never waited out (the
    error surfaces and a later pass resumes). 423 waits at least ``locked_wait``. 5xx, timeouts and
    dropped connections back off exponentially with full jitter.
    """

    locked_wait: float = 2.0
    ten_second_wait: float = 10.0
    secondly_wait: float = 1.0


@dataclass(frozen=True)
class RateLimit:
    """Client-side pacing per app. HubSpot allows 100 requests per ten seconds (Free/Starter; 190
    for Professional and Enterprise), 250,000 a day (Free/Starter) and 5 searches a second; the
    defaults keep a margin."""

    per_ten_seconds: int = 90
    searches_per_second: int = 4
    max_in_flight: int = 4
    """Requests of this process in flight at once (never shared: it bounds worker threads)."""
    shared: RequestBudget | None = None
    """The app's budget across processes (``PostgresBudget``); None: paced in this process only."""
    app: str | None = None
    """The shared budget's key: the app (several tokens of one app share it); None: the token."""
    per_day: int = 240_000
    """Requests of the app a day (UTC), kept by a shared budget only (one process cannot count
    the app's day); 0: none. HubSpot's own day ends at midnight in the account's time zone."""
    clock: Callable[[], float] | None = None
    """Seconds, for the windows; None: the event loop's clock. Tests pass the local HubSpot's."""
    sleep: Callable[[float], Awaitable[None]] | None = None
    """How a caller waits for a window; None: ``asyncio.sleep``."""


class _Budget:
    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        self.requests = RollingWindow(limit.per_ten_seconds, 10.0, limit.clock, limit.sleep)
        self.searches = RollingWindow(limit.searches_per_second, 1.0, limit.clock, limit.sleep)
        self.in_flight = asyncio.Semaphore(limit.max_in_flight)
        self.pools = {
            False: Window("requests", limit.per_ten_seconds, 10.0),
            True: Window("search", limit.searches_per_second, 1.0),
        }

    async def run(self, send: Callable[[], Awaitable[T]], *, search: bool, key: str) -> T:
        async with self.in_flight:
            if self.limit.shared is None:
                await (self.searches if search else self.requests).acquire()
            else:
                await self.limit.shared.acquire(
                    key, self.pools[search], per_day=self.limit.per_day, sleep=self.limit.sleep
                )
            return await send()


_budgets: BudgetRegistry[RateLimit, _Budget] = BudgetRegistry(_Budget)


def shared_budget(digest: str, limit: RateLimit) -> _Budget:
    """The app's budget on the running loop, shared by every adapter using its token."""
    return _budgets.shared(digest, limit)


# --- classifying failures -------------------------------------------------------------------------


def status_of(error: BaseException) -> int | None:
    """The HTTP status HubSpot answered with (each SDK module has its own ApiException, so it is
    read by shape); None when no answer came back."""
    status = getattr(error, "status", None)
    return status if isinstance(status, int) and status > 0 and hasattr(error, "body") else None


def error_body(error: BaseException) -> dict[str, Any]:
    """HubSpot's error envelope, or {} (a gateway's HTML page, no answer at all). Every field is
    optional, as HubSpot says."""
    raw = getattr(error, "body", None)
    try:
        body = json.loads(raw) if raw else {}
    except (TypeError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def category_of(error: BaseException) -> str | None:
    category = error_body(error).get("category")
    return category if isinstance(category, str) else None


def _policy(error: BaseException) -> str | None:
    policy = error_body(error).get("policyName")
    return policy if isinstance(policy, str) else None


def _is_transport(error: BaseException) -> bool:
    """No answer: a timeout or a dropped connection (urllib3's errors; the SDK's status 0)."""
    return isinstance(error, urllib3.exceptions.HTTPError | OSError) or getattr(error, "status", None) == 0


def is_retryable(error: BaseException) -> bool:
    status = status_of(error)
    if status == RATE_LIMITED:
        return _policy(error) != DAILY
    return (
        status == LOCKED
        or status in TRANSIENT_STATUSES
        or (status is not None and status >= 500)
        or (status is None and _is_transport(error))
    )


def is_uncertain(error: BaseException) -> bool:
    """The write may have been applied: a 5xx or no answer (429 and 423 are refused up front)."""
    return is_retryable(error) and status_of(error) not in (RATE_LIMITED, LOCKED)


def _retry_after(error: BaseException) -> float | None:
    headers = getattr(error, "headers", None) or {}
    value = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def _wait(policy: RetryPolicy, error: BaseException, attempt_number: int) -> float:
    status = status_of(error)
    if status == RATE_LIMITED:
        told = _retry_after(error)
        if told is not None:
            return told
        window = policy.secondly_wait if _policy(error) == "SECONDLY" else policy.ten_second_wait
        return window * random.uniform(0.5, 1.0)
    if status == LOCKED:
        return policy.locked_wait + random.uniform(0, policy.locked_wait)
    return policy.backoff(attempt_number)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}, status {status_of(error)}, category {category_of(error)}, policy {_policy(error)}"


class HubSpotCaller:
    """Runs SDK calls (in a worker thread) under the app's budget with tenacity retries."""

    def __init__(
        self, token_digest: str, policy: RetryPolicy, limit: RateLimit, on_request: Callable[[], None] | None = None
    ) -> None:
        self._token_digest = token_digest
        self._on_request = on_request
        self.policy = policy
        self.limit = limit
        self.requests_sent = 0
        """HTTP requests sent so far, retries included: what this caller spent of the app's budget."""
        self._failures = Failures(
            service="HubSpot",
            logger=logger,
            is_retryable=is_retryable,
            is_uncertain=is_uncertain,
            wait=functools.partial(_wait, policy),
            describe=_describe,
        )

    def __repr__(self) -> str:
        return f"HubSpotCaller(policy={self.policy!r}, limit={self.limit!r})"

    async def _send(self, send: Callable[[], T]) -> T:
        self.requests_sent += 1
        if self._on_request is not None:
            self._on_request()
        return await asyncio.to_thread(send)

    async def call(
        self,
        send: Callable[[], T],
        *,
        search: bool = False,
        idempotent: bool = True,
        recover: Callable[[], Awaitable[T | None]] | None = None,
    ) -> T:
        """Run ``send()`` under the budget, retrying what is worth retrying.

        A non-idempotent call is sent again after an uncertain failure only when ``recover``
        exists; ``recover`` runs first and its non-None result is returned instead.
        """
        budget = shared_budget(self._token_digest, self.limit)
        key = f"hubspot:{self.limit.app or self._token_digest}"
        return await call_with_retries(
            lambda: budget.run(lambda: self._send(send), search=search, key=key),
            self._failures,
            max_attempts=self.policy.max_attempts,
            sleep=self.policy.sleep,
            idempotent=idempotent,
            recover=recover,
        )
