"""The retry mechanism every connector's caller shares: tenacity attempts, recovery after an
uncertain write, and one pacing budget per token and event loop.

A connector supplies only how it reads its own failures (``Failures``) and what its budget is;
the rules of when a write may be sent again live here once.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import random
import weakref
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

T = TypeVar("T")
L = TypeVar("L", bound=Hashable)
B = TypeVar("B")


def token_digest(token: str) -> str:
    """What identifies a token's budget, so the token itself need not be kept around."""
    return hashlib.sha256(token.encode()).hexdigest()


class BudgetRegistry(Generic[L, B]):
    """One budget per (token digest, limit) on each running loop, shared by every adapter using the
    token: concurrent runs of one app spend one budget, and no budget outlives its event loop."""

    def __init__(self, make: Callable[[L], B]) -> None:
        self._make = make
        self._per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, L], B]] = (
            weakref.WeakKeyDictionary()
        )

    def shared(self, digest: str, limit: L) -> B:
        per_loop = self._per_loop.setdefault(asyncio.get_running_loop(), {})
        key = (digest, limit)
        if key not in per_loop:
            per_loop[key] = self._make(limit)
        return per_loop[key]


def _never(error: BaseException) -> bool:
    return False


@dataclass(frozen=True)
class Failures:
    """How one connector reads its failures, never by message text."""

    service: str
    """The service's name in the retry log line."""
    logger: logging.Logger
    is_retryable: Callable[[BaseException], bool]
    is_uncertain: Callable[[BaseException], bool]
    """The write may have been applied (an error or no answer after the request went out)."""
    wait: Callable[[BaseException, int], float]
    """Seconds to wait after ``error`` ended attempt number ``n`` (from 1)."""
    describe: Callable[[BaseException], str]
    """What the retry log line says of an error (never a secret)."""
    give_up: Callable[[BaseException], bool] = _never
    """Stop retrying now although attempts are left (a wait too long to sit out)."""


def full_jitter(attempt_number: int, initial_wait: float, max_wait: float) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(max, initial * 2^(n-1))]."""
    return random.uniform(0, min(max_wait, initial_wait * 2 ** (attempt_number - 1)))


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """What every connector's retry policy holds; each connector's own adds the waits its API
    asks for (a 429's, a lock's). Tests pass tiny waits and a recording ``sleep``."""

    max_attempts: int = 6
    initial_wait: float = 0.5
    max_wait: float = 30.0
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    def backoff(self, attempt_number: int) -> float:
        """The wait after a failure that names none: exponential with full jitter."""
        return full_jitter(attempt_number, self.initial_wait, self.max_wait)


async def call_with_retries(
    attempt: Callable[[], Awaitable[T]],
    failures: Failures,
    *,
    max_attempts: int,
    sleep: Callable[[float], Awaitable[None]],
    idempotent: bool = True,
    recover: Callable[[], Awaitable[T | None]] | None = None,
) -> T:
    """Run ``attempt()``, retrying what ``failures`` says is worth retrying.

    A non-idempotent call is sent again after an uncertain failure only when ``recover`` exists;
    ``recover`` runs first and its non-None result is returned instead.
    """
    uncertain = False
    retrying = AsyncRetrying(
        stop=functools.partial(_stop, failures, max_attempts),
        wait=functools.partial(_wait, failures),
        retry=retry_if_exception(functools.partial(_retryable, failures, idempotent or recover is not None)),
        sleep=sleep,
        before_sleep=functools.partial(_log_retry, failures),
        reraise=True,
    )
    async for attempt_state in retrying:
        with attempt_state:
            if uncertain and recover is not None:
                found = await recover()
                if found is not None:
                    return found
            try:
                return await attempt()
            except Exception as error:
                uncertain = failures.is_uncertain(error)
                raise
    raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover


def _error(state: RetryCallState) -> BaseException | None:
    return state.outcome.exception() if state.outcome else None


def _stop(failures: Failures, max_attempts: int, state: RetryCallState) -> bool:
    error = _error(state)
    return state.attempt_number >= max_attempts or (error is not None and failures.give_up(error))


def _wait(failures: Failures, state: RetryCallState) -> float:
    error = _error(state)
    return failures.wait(error, state.attempt_number) if error is not None else 0.0


def _retryable(failures: Failures, resend: bool, error: BaseException) -> bool:
    """Worth another attempt, and, when the write may have been applied, safe to send again."""
    return failures.is_retryable(error) and (resend or not failures.is_uncertain(error))


def _log_retry(failures: Failures, state: RetryCallState) -> None:
    error = _error(state)
    failures.logger.info(
        "%s request failed (%s); retry %d in %.2fs",
        failures.service,
        failures.describe(error) if error is not None else None,
        state.attempt_number,
        state.next_action.sleep if state.next_action else 0.0,
    )
