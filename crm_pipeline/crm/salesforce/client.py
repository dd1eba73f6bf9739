"""One chokepoint for every Salesforce request: the transport, pacing, the org's allowance, retries.

``simple-salesforce`` is synchronous (requests) and keeps mutable state on its ``Salesforce``
object (headers, the last usage read), so each adapter holds one ``Salesforce`` and runs its calls
one at a time, each in a worker thread (``asyncio.to_thread`` under an ``asyncio.Lock``). One
request in flight per adapter is enough: writes go 200 records a request (sObject Collections) and
reads 2,000 rows a page, and Salesforce limits requests per day, not per second.

The client has no timeout and no retry of its own: the session's transport (``Transport``) puts a
timeout on every request, and tenacity (``crm/retrying.py``) retries. Retried: 500/502/503/504,
``UNABLE_TO_LOCK_ROW`` and dropped or timed-out connections, with exponential backoff and full
jitter, and ``REQUEST_LIMIT_EXCEEDED`` while the answer's usage shows requests left (the
concurrent long-running limit: ``OrgBusyError``). Not retried: 400-class data errors,
``REQUEST_LIMIT_EXCEEDED`` with the day spent (the pass stops with ``AllowanceFloorError``) and
``INVALID_SESSION_ID`` (the pass stops with ``SessionExpiredError``, naming where the token comes
from). Failures are told apart by HTTP status and ``errorCode``, never by message text.

Every answer's ``Sforce-Limit-Info: api-usage=USED/MAX`` and ``Date`` (Salesforce's clock, which
the change reads' cursor follows) are read at the session, whatever the call (calls through
``sf.Opportunity`` would lose the usage). Before
each request the caller takes a slot of the org's budget (a rolling minute; with
``RateLimit.shared``, the deal store's ``PostgresBudget``, across processes) and checks the org's
last known usage: within ``slow_band`` of the floor each request waits ``slow_wait`` first, and at
the floor (``floor_fraction`` of the allowance left to the org's people and other tools) the pass
stops with ``AllowanceFloorError``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import requests
from requests.adapters import HTTPAdapter
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import SalesforceError, SalesforceExpiredSession

from crm_pipeline.crm import retrying
from crm_pipeline.crm.budget import RequestBudget, RollingWindow, Window
from crm_pipeline.crm.retrying import BudgetRegistry, Failures, call_with_retries
from crm_pipeline.crm.salesforce.errors import AllowanceFloorError, OrgBusyError, SessionExpiredError

logger = logging.getLogger("crm_pipeline.crm.salesforce")

T = TypeVar("T")
TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})
RETRYABLE_CODES = frozenset({"UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE"})
LIMIT_EXCEEDED = "REQUEST_LIMIT_EXCEEDED"
_USAGE = re.compile(r"api-usage=(\d+)/(\d+)")


class Transport(HTTPAdapter):
    """requests' transport with a timeout on every request and, for a plain-HTTP server (a local
    Salesforce), the scheme put back: simple-salesforce builds every URL as https://."""

    def __init__(self, timeout_s: float, *, plain_http: bool = False) -> None:
        super().__init__(max_retries=0)
        self.timeout_s = timeout_s
        self.plain_http = plain_http

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout_s
        if self.plain_http and request.url and request.url.startswith("https://"):
            request.url = "http://" + request.url.removeprefix("https://")
        return super().send(request, *args, **kwargs)


@dataclass(frozen=True)
class Usage:
    used: int
    total: int


@dataclass(frozen=True)
class Answer:
    """What is read off every answer, whatever the call made."""

    usage: Usage | None
    """``Sforce-Limit-Info: api-usage=USED/MAX``."""
    sent_at: datetime | None
    """Salesforce's time when the request reached it, at the earliest: ``Date`` (whole seconds,
    cut down) less the time the answer took."""


def connect(
    instance_url: str, token: str, version: str, timeout_s: float, on_answer: Callable[[Answer], None]
) -> Salesforce:
    """A direct-mode client (the token, no login) on its own session: every request timed out,
    every answer handed to ``on_answer``, numbers parsed as ``Decimal``."""
    return Salesforce(
        instance_url=instance_url,
        session_id=token,
        version=version,
        session=session_for(instance_url, timeout_s, on_answer),
        parse_float=Decimal,
        object_pairs_hook=dict,
    )


def session_for(instance_url: str, timeout_s: float, on_answer: Callable[[Answer], None]) -> requests.Session:
    """A requests session for ``instance_url`` (https, or http for a local server) that times out
    every request and hands what each answer says to ``on_answer``. The timeout holds for any
    URL, not only the instance's: the client rebuilds URLs itself (it drops a port 443, and login
    and OAuth calls name other hosts), and a request without one could hang a pass for good."""
    session = requests.Session()
    host = instance_url.split("://", 1)[-1].rstrip("/")
    plain = instance_url.startswith("http://")
    for prefix in ("https://", "http://"):
        session.mount(prefix, Transport(timeout_s))
    session.mount(f"https://{host}", Transport(timeout_s, plain_http=plain))

    def read_answer(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        found = _USAGE.search(response.headers.get("Sforce-Limit-Info", ""))
        on_answer(Answer(Usage(int(found[1]), int(found[2])) if found else None, _sent_at(response)))

    session.hooks["response"].append(read_answer)
    return session


def _sent_at(response: requests.Response) -> datetime | None:
    try:
        said = parsedate_to_datetime(response.headers["Date"])
    except (KeyError, TypeError, ValueError):
        return None
    return None if said.tzinfo is None else said.astimezone(UTC) - response.elapsed


@dataclass(frozen=True, kw_only=True)
class RetryPolicy(retrying.RetryPolicy):
    """How failed Salesforce requests are retried: five tries with backoff from 1 s to 30 s."""

    max_attempts: int = 5
    initial_wait: float = 1.0


@dataclass(frozen=True)
class RateLimit:
    """Client-side pacing per org. Salesforce counts requests per org over a rolling day (15,000 on
    a Developer org, 100,000 and more on Enterprise); the minute window spreads a pass's requests,
    the floor keeps the last of the allowance for the org's people and other tools."""

    per_minute: int = 300
    """Requests of the org per rolling minute (0: no window)."""
    floor_fraction: float = 0.1
    """The share of the daily allowance the sync never spends: at it, a pass stops."""
    slow_band: float = 0.1
    """Above the floor by less than this share of the allowance, each request waits ``slow_wait``."""
    slow_wait: float = 2.0
    shared: RequestBudget | None = None
    """The org's budget across processes (``PostgresBudget``); None: paced in this process only."""
    org: str | None = None
    """The shared budget's key (the org); None: the token's digest."""
    sleep: Callable[[float], Awaitable[None]] | None = None


def error_code(error: BaseException) -> str | None:
    """Salesforce's ``errorCode`` of a refused request (the first of its error list), if any."""
    content = getattr(error, "content", None)
    first = content[0] if isinstance(content, list) and content else None
    code = first.get("errorCode") if isinstance(first, Mapping) else None
    return code if isinstance(code, str) else None


def status_of(error: BaseException) -> int | None:
    status = getattr(error, "status", None)
    return status if isinstance(error, SalesforceError) and isinstance(status, int) else None


def _no_answer(error: BaseException) -> bool:
    return isinstance(error, requests.ConnectionError | requests.Timeout)


def is_retryable(error: BaseException) -> bool:
    if isinstance(error, OrgBusyError):
        return True
    status = status_of(error)
    if status is None:
        return _no_answer(error)
    return status in TRANSIENT_STATUSES or error_code(error) in RETRYABLE_CODES


def is_uncertain(error: BaseException) -> bool:
    """The write may have been applied: a 5xx, or no answer after the request may have gone out
    (a connect timeout never sent it; a lock refusal applied nothing)."""
    if isinstance(error, requests.ConnectTimeout):
        return False
    status = status_of(error)
    return _no_answer(error) if status is None else status >= 500


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}, status {status_of(error)}, errorCode {error_code(error)}"


class SalesforceCaller:
    """Runs one adapter's client calls one at a time, in a worker thread, under the org's budget,
    with tenacity retries."""

    def __init__(
        self,
        connection: Callable[[Callable[[Answer], None]], Salesforce],
        budget_key: str,
        token_ref: str,
        policy: RetryPolicy,
        limit: RateLimit,
        on_request: Callable[[], None] | None = None,
    ) -> None:
        self.sf = connection(self.note_answer)
        """The client, made by ``connection`` with this caller's hook on every answer."""
        self.key = f"salesforce:{limit.org or budget_key}"
        self.token_ref = token_ref
        self.policy = policy
        self.limit = limit
        self.usage: Usage | None = None
        """The org's API usage as the last answer reported it."""
        self.sent_at: datetime | None = None
        """Salesforce's time, at the earliest, when the last answered request reached it."""
        self.requests_sent = 0
        self._on_request = on_request
        self._budget_key = budget_key
        self._one_at_a_time = asyncio.Lock()
        self._failures = Failures(
            service="Salesforce",
            logger=logger,
            is_retryable=is_retryable,
            is_uncertain=is_uncertain,
            wait=lambda _error, attempt: policy.backoff(attempt),
            describe=_describe,
        )

    def __repr__(self) -> str:
        return f"SalesforceCaller(key={self.key!r}, policy={self.policy!r}, limit={self.limit!r})"

    def note_answer(self, answer: Answer) -> None:
        self.usage = answer.usage or self.usage
        self.sent_at = answer.sent_at or self.sent_at

    def close(self) -> None:
        self.sf.session.close()

    async def call(
        self,
        send: Callable[[Salesforce], T],
        *,
        idempotent: bool = True,
        recover: Callable[[], Awaitable[T | None]] | None = None,
    ) -> T:
        """Run ``send(sf)`` under the budget, retrying what is worth retrying. A non-idempotent call
        is sent again after an uncertain failure only when ``recover`` exists and finds nothing."""
        return await call_with_retries(
            functools.partial(self._attempt, send),
            self._failures,
            max_attempts=self.policy.max_attempts,
            sleep=self.policy.sleep,
            idempotent=idempotent,
            recover=recover,
        )

    async def _attempt(self, send: Callable[[Salesforce], T]) -> T:
        async with self._one_at_a_time:
            await self._pace()
            self.requests_sent += 1
            if self._on_request is not None:
                self._on_request()
            try:
                return await asyncio.to_thread(send, self.sf)
            except SalesforceExpiredSession as error:
                raise SessionExpiredError(self.token_ref) from error
            except SalesforceError as error:
                if error_code(error) == LIMIT_EXCEEDED:
                    raise self._limit_error() from error
                raise

    def _limit_error(self) -> Exception:
        """``REQUEST_LIMIT_EXCEEDED`` read by the usage its own answer reported: the day spent
        (stop), or, with requests left, the concurrent long-running limit (wait)."""
        usage = self.usage or Usage(0, 0)
        if usage.used < usage.total:
            return OrgBusyError()
        return AllowanceFloorError(self.key, usage.used, usage.total, 0)

    async def _pace(self) -> None:
        sleep = self.limit.sleep or asyncio.sleep
        if self.usage is not None and self.usage.total > 0:
            left = self.usage.total - self.usage.used
            floor = round(self.usage.total * self.limit.floor_fraction)
            if left <= floor:
                raise AllowanceFloorError(self.key, self.usage.used, self.usage.total, floor)
            if left <= floor + self.usage.total * self.limit.slow_band:
                await sleep(self.limit.slow_wait)
        if self.limit.shared is not None:
            await self.limit.shared.acquire(self.key, Window("requests", self.limit.per_minute, 60.0), sleep=sleep)
        else:
            await _windows.shared(self._budget_key, self.limit).acquire()


_windows: BudgetRegistry[RateLimit, RollingWindow] = BudgetRegistry(
    lambda limit: RollingWindow(limit.per_minute, 60.0, sleep=limit.sleep)
)
"""Without a shared budget: one rolling minute per token and event loop, for every adapter on it."""
