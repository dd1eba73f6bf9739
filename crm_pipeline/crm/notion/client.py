"""One chokepoint for every Notion request: client-side pacing plus tenacity retries.

The SDK's own retry is switched off (``retry=False``) so attempts never multiply: tenacity owns
every retry. Each attempt first takes a slot from a per-token budget (a leaky bucket at the
configured rate and a cap on requests in flight), so a sync spends its budget instead of
collecting 429s. Nothing here imports ``notion_client`` at module level, so the adapter can raise
a helpful ImportError when the package is missing.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import ModuleType
from typing import Any, TypeVar

import httpx
from aiolimiter import AsyncLimiter
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

logger = logging.getLogger("crm_pipeline.crm.notion")

T = TypeVar("T")
Recover = Callable[[], Awaitable[Any | None]]
"""Looks up whether an uncertain write took effect; returns its result, or None to send again."""

_RATE_LIMITED = frozenset({429, 529})
_TRANSIENT = frozenset({409, 500, 502, 503, 504})
INSTALL_HINT = "NotionAdapter needs the notion-client package: pip install 'notion-client>=3.1,<4'"


def load_sdk() -> ModuleType:
    """The notion_client module, or an ImportError that says what to install."""
    try:
        import notion_client
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc
    return notion_client


@dataclass(frozen=True)
class RetryPolicy:
    """How failed requests are retried; tests pass tiny waits and a recording ``sleep``.

    429/529 wait for ``Retry-After`` (plus jitter), however long, unless it exceeds
    ``max_retry_after``: then the error surfaces so the next sync pass resumes later.
    Everything else retryable backs off exponentially with full jitter.
    """

    max_attempts: int = 6
    initial_wait: float = 0.5
    max_wait: float = 30.0
    retry_after_jitter: float = 0.25
    max_retry_after: float = 900.0
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep


@dataclass(frozen=True)
class RateLimit:
    """Client-side pacing per token: Notion documents about 3 requests/s on average."""

    requests_per_second: float = 3.0
    burst: int = 1
    max_in_flight: int = 3


class _Budget:
    """A leaky bucket plus a semaphore: one request = one slot of each."""

    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        self._bucket = AsyncLimiter(limit.burst, limit.burst / limit.requests_per_second)
        self._in_flight = asyncio.Semaphore(limit.max_in_flight)

    async def run(self, send: Callable[[], Awaitable[T]]) -> T:
        async with self._in_flight:
            await self._bucket.acquire()
            return await send()


_budgets: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, RateLimit], _Budget]] = (
    weakref.WeakKeyDictionary()
)


def token_digest(token: str) -> str:
    """What identifies a token's budget, so the token itself need not be kept around."""
    return hashlib.sha256(token.encode()).hexdigest()


def shared_budget(digest: str, limit: RateLimit) -> _Budget:
    """The budget of one token on the running loop, shared by every adapter using the token.

    Adapters with the same token and the same RateLimit share one budget (give every adapter of a
    token the same RateLimit); an aiolimiter bucket must not outlive its event loop.
    """
    per_loop = _budgets.setdefault(asyncio.get_running_loop(), {})
    key = (digest, limit)
    if key not in per_loop:
        per_loop[key] = _Budget(limit)
    return per_loop[key]


# --- classifying failures -------------------------------------------------------------------------


def status_of(error: BaseException) -> int | None:
    """The HTTP status of an SDK response error (duck-typed: no SDK import needed)."""
    status = getattr(error, "status", None)
    return status if isinstance(status, int) else None


def _is_timeout_or_transport(error: BaseException) -> bool:
    return isinstance(error, httpx.TransportError) or getattr(error, "code", None) == "notionhq_client_request_timeout"


def is_retryable(error: BaseException) -> bool:
    """429/529, 409, 5xx, timeouts and connection errors; never a 4xx validation error."""
    status = status_of(error)
    if status is not None:
        return status in _RATE_LIMITED or status in _TRANSIENT or status >= 500
    return _is_timeout_or_transport(error)


def is_uncertain(error: BaseException) -> bool:
    """The write may have been applied: anything retryable except a 429 (refused up front)."""
    return is_retryable(error) and status_of(error) != 429


def retry_after_seconds(error: BaseException) -> float | None:
    """``Retry-After`` of a 429/529 as seconds (integer or HTTP-date), else None."""
    if status_of(error) not in _RATE_LIMITED:
        return None
    value = getattr(error, "headers", httpx.Headers()).get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


# --- the caller -----------------------------------------------------------------------------------


class NotionCaller:
    """Runs SDK endpoint calls under the shared budget with tenacity retries."""

    def __init__(self, token_digest: str, policy: RetryPolicy, limit: RateLimit) -> None:
        self._token_digest = token_digest
        self.policy = policy
        self.limit = limit
        self._budget: _Budget | None = None

    def __repr__(self) -> str:
        return f"NotionCaller(policy={self.policy!r}, limit={self.limit!r})"

    @property
    def budget(self) -> _Budget:
        if self._budget is None:
            self._budget = shared_budget(self._token_digest, self.limit)
        return self._budget

    async def call(
        self,
        fn: Callable[..., Awaitable[T]],
        /,
        *args: Any,
        idempotent: bool = True,
        recover: Recover | None = None,
        **kwargs: Any,
    ) -> T:
        """Call ``fn(*args, **kwargs)``, retrying what is worth retrying.

        A non-idempotent call (create, append) is sent again after an uncertain failure only when
        ``recover`` exists; ``recover`` runs first and its non-None result is returned instead.
        """
        resend_blindly = idempotent or recover is not None
        uncertain = False
        retrying = AsyncRetrying(
            stop=self._stop,
            wait=self._wait,
            retry=retry_if_exception(lambda e: is_retryable(e) and (resend_blindly or not is_uncertain(e))),
            sleep=self.policy.sleep,
            before_sleep=_log_retry,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                if uncertain and recover is not None:
                    found = await recover()
                    if found is not None:
                        return found
                try:
                    return await self.budget.run(lambda: fn(*args, **kwargs))
                except Exception as error:
                    uncertain = is_uncertain(error)
                    raise
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    def _stop(self, state: RetryCallState) -> bool:
        if state.attempt_number >= self.policy.max_attempts:
            return True
        error = state.outcome.exception() if state.outcome else None
        wait = retry_after_seconds(error) if error else None
        return wait is not None and wait > self.policy.max_retry_after

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        retry_after = retry_after_seconds(error) if error else None
        if retry_after is not None:
            return retry_after + random.uniform(0, self.policy.retry_after_jitter)
        ceiling = min(
            self.policy.max_wait,
            self.policy.initial_wait * 2 ** (state.attempt_number - 1),
        )
        return random.uniform(0, ceiling)


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    wait = state.next_action.sleep if state.next_action else 0.0
    logger.info(
        "Notion request failed (%s, status %s); retry %d in %.2fs",
        type(error).__name__,
        status_of(error) if error else None,
        state.attempt_number,
        wait,
    )
