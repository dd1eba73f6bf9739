"""One chokepoint for every Notion request: client-side pacing plus tenacity retries.

The SDK's own retry is switched off (``retry=False``) so attempts never multiply: tenacity owns
every retry. Each attempt first takes a slot from a per-token budget (a leaky bucket at the
configured rate and a cap on requests in flight), so a sync spends its budget instead of
collecting 429s; with ``RateLimit.shared`` the rate is the integration's across processes (the
deal store's ``PostgresBudget``). Nothing here imports ``notion_client`` at module level, so the
adapter can raise a helpful ImportError when the package is missing.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import ModuleType
from typing import TYPE_CHECKING, TypeVar

import httpx
from aiolimiter import AsyncLimiter

if TYPE_CHECKING:
    from notion_client import AsyncClient

from crm_pipeline.crm import retrying
from crm_pipeline.crm.budget import RequestBudget, Window
from crm_pipeline.crm.retrying import BudgetRegistry, Failures, call_with_retries

logger = logging.getLogger("crm_pipeline.crm.notion")

T = TypeVar("T")
INSTALL_HINT = "NotionAdapter needs the notion-client package: pip install 'notion-client>=3.1,<4'"


def load_sdk() -> ModuleType:
    """The notion_client module, or an ImportError that says what to install."""
    try:
        import notion_client
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc
    return notion_client


def sdk_client(
    token: str, *, base_url: str | None, timeout_s: float, http_client: httpx.AsyncClient | None = None
) -> AsyncClient:
    """A notion_client.AsyncClient that leaves every retry to ``NotionCaller`` (tenacity)."""
    options: dict[str, object] = {
        "auth": token,
        "retry": False,
        "timeout_ms": int(timeout_s * 1000),
        "logger": logging.getLogger("crm_pipeline.crm.notion.sdk"),
    }
    if base_url is not None:
        options["base_url"] = base_url.rstrip("/")
    client: AsyncClient = load_sdk().AsyncClient(client=http_client, **options)
    return client


@dataclass(frozen=True, kw_only=True)
class RetryPolicy(retrying.RetryPolicy):
    """How failed Notion requests are retried.

    429/529 wait for ``Retry-After`` (plus jitter), however long, unless it exceeds
    ``max_retry_after``: then the error surfaces so the next sync pass resumes later.
    Everything else retryable backs off exponentially with full jitter.
    """

    retry_after_jitter: float = 0.25
    max_retry_after: float = 900.0


@dataclass(frozen=True)
class RateLimit:
    """Client-side pacing per token: Notion documents about 3 requests/s on average."""

    requests_per_second: float = 3.0
    burst: int = 1
    max_in_flight: int = 3
    """Requests of this process in flight at once (never shared)."""
    shared: RequestBudget | None = None
    """The integration's budget across processes (``PostgresBudget``): ``burst`` requests in any
    ``burst / requests_per_second`` seconds; None: this process's bucket only."""
    integration: str | None = None
    """The shared budget's key: the integration (several tokens of one integration share it);
    None: the token."""


class _Budget:
    """A leaky bucket (or the shared budget's window) plus a semaphore: one request = one slot of each."""

    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        self._bucket = AsyncLimiter(limit.burst, limit.burst / limit.requests_per_second)
        self._window = Window("requests", limit.burst, limit.burst / limit.requests_per_second)
        self._in_flight = asyncio.Semaphore(limit.max_in_flight)

    async def run(self, send: Callable[[], Awaitable[T]], key: str) -> T:
        async with self._in_flight:
            if self.limit.shared is None:
                await self._bucket.acquire()
            else:
                await self.limit.shared.acquire(key, self._window)
            return await send()


_budgets: BudgetRegistry[RateLimit, _Budget] = BudgetRegistry(_Budget)


def shared_budget(digest: str, limit: RateLimit) -> _Budget:
    """The budget of one token on the running loop, shared by every adapter using the token.

    Adapters with the same token and the same RateLimit share one budget (give every adapter of a
    token the same RateLimit); an aiolimiter bucket must not outlive its event loop.
    """
    return _budgets.shared(digest, limit)


# --- classifying failures -------------------------------------------------------------------------
#
# Errors are told apart by Notion's error codes (``APIErrorCode``, plus ``service_overload``, which
# notion-client 3.x does not know yet), never by message text. The SDK is imported inside these
# functions: they only ever see errors the SDK raised, and the package must import without it.

SERVICE_OVERLOAD = "service_overload"
"""529's code: the SDK raises it as UnknownHTTPResponseError, with Notion's JSON body kept."""


@functools.cache
def _rate_limited_codes() -> frozenset[str]:
    from notion_client import APIErrorCode

    return frozenset({APIErrorCode.RateLimited.value, SERVICE_OVERLOAD})


@functools.cache
def _transient_codes() -> frozenset[str]:
    from notion_client import APIErrorCode

    return frozenset(
        {
            APIErrorCode.ConflictError.value,
            APIErrorCode.InternalServerError.value,
            APIErrorCode.ServiceUnavailable.value,
            APIErrorCode.GatewayTimeout.value,
        }
    )


def error_code(error: BaseException) -> str | None:
    """Notion's code for an SDK error: ``APIResponseError.code``, the ``code`` in the body of a
    response the SDK did not recognise (``service_overload``), or the SDK's own client code (a
    timeout); None for anything else, including a non-JSON body such as a proxy's 502 page."""
    from notion_client import APIResponseError, RequestTimeoutError, UnknownHTTPResponseError

    if isinstance(error, APIResponseError):
        return error.code.value
    if isinstance(error, UnknownHTTPResponseError):
        try:
            body = json.loads(error.body)
        except ValueError:
            return None
        code = body.get("code") if isinstance(body, dict) else None
        return code if isinstance(code, str) else None
    if isinstance(error, RequestTimeoutError):
        return error.code.value
    return None


def status_of(error: BaseException) -> int | None:
    """The HTTP status of an error Notion answered with; None when no response came back."""
    from notion_client.errors import HTTPResponseError

    return error.status if isinstance(error, HTTPResponseError) else None


def has_code(error: BaseException, code: str) -> bool:
    """Whether Notion (or the SDK) gave ``error`` this code, e.g. ``APIErrorCode.ObjectNotFound``."""
    return error_code(error) == code


def is_rate_limited(error: BaseException) -> bool:
    return error_code(error) in _rate_limited_codes()


def _is_timeout_or_transport(error: BaseException) -> bool:
    from notion_client import RequestTimeoutError

    return isinstance(error, RequestTimeoutError | httpx.TransportError)


def is_retryable(error: BaseException) -> bool:
    """429/529, 409 and the 5xx codes, any other 5xx answer (a gateway's HTML page, a code newer
    than the SDK), timeouts and connection errors; never a 4xx such as ``validation_error``."""
    code = error_code(error)
    if code in _rate_limited_codes() or code in _transient_codes() or _is_timeout_or_transport(error):
        return True
    status = status_of(error)
    return status is not None and status >= 500


def is_uncertain(error: BaseException) -> bool:
    """The write may have been applied: anything retryable except ``rate_limited`` (refused up front)."""
    from notion_client import APIErrorCode

    return is_retryable(error) and error_code(error) != APIErrorCode.RateLimited.value


def retry_after_seconds(error: BaseException) -> float | None:
    """``Retry-After`` of a rate-limited answer (429/529) as seconds (integer or HTTP-date), else None."""
    from notion_client.errors import HTTPResponseError

    if not isinstance(error, HTTPResponseError) or not is_rate_limited(error):
        return None
    value = error.headers.get("retry-after")
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


def _rate_limit_reason(error: BaseException) -> str | None:
    """Which budget a 429 exhausted (``additional_data.rate_limit_reason``), when Notion says."""
    from notion_client.errors import HTTPResponseError

    data = error.additional_data if isinstance(error, HTTPResponseError) else None
    reason = (data or {}).get("rate_limit_reason")
    return reason if isinstance(reason, str) else None


# --- the caller -----------------------------------------------------------------------------------


def _gives_up(policy: RetryPolicy, error: BaseException) -> bool:
    """A ``Retry-After`` longer than the policy sits out: the next sync pass resumes later."""
    wait = retry_after_seconds(error)
    return wait is not None and wait > policy.max_retry_after


def _wait(policy: RetryPolicy, error: BaseException, attempt_number: int) -> float:
    retry_after = retry_after_seconds(error)
    if retry_after is not None:
        return retry_after + random.uniform(0, policy.retry_after_jitter)
    return policy.backoff(attempt_number)


def _describe(error: BaseException) -> str:
    reason = _rate_limit_reason(error)
    return (
        f"{type(error).__name__}, status {status_of(error)}, code {error_code(error)}{f', {reason}' if reason else ''}"
    )


class NotionCaller:
    """Runs SDK endpoint calls under the shared budget with tenacity retries."""

    def __init__(self, token_digest: str, policy: RetryPolicy, limit: RateLimit) -> None:
        self._token_digest = token_digest
        self.policy = policy
        self.limit = limit
        self._budget: _Budget | None = None
        self._failures = Failures(
            service="Notion",
            logger=logger,
            is_retryable=is_retryable,
            is_uncertain=is_uncertain,
            wait=functools.partial(_wait, policy),
            describe=_describe,
            give_up=functools.partial(_gives_up, policy),
        )

    def __repr__(self) -> str:
        return f"NotionCaller(policy={self.policy!r}, limit={self.limit!r})"

    @property
    def budget(self) -> _Budget:
        if self._budget is None:
            self._budget = shared_budget(self._token_digest, self.limit)
        return self._budget

    async def call(
        self,
        send: Callable[[], Awaitable[T]],
        *,
        idempotent: bool = True,
        recover: Callable[[], Awaitable[T | None]] | None = None,
    ) -> T:
        """Run ``send()`` under the budget, retrying what is worth retrying.

        A non-idempotent call (create, append) is sent again after an uncertain failure only when
        ``recover`` exists; ``recover`` runs first and its non-None result is returned instead.
        """
        key = f"notion:{self.limit.integration or self._token_digest}"
        return await call_with_retries(
            lambda: self.budget.run(send, key),
            self._failures,
            max_attempts=self.policy.max_attempts,
            sleep=self.policy.sleep,
            idempotent=idempotent,
            recover=recover,
        )
