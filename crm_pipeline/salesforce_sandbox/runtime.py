"""The request pipeline every Salesforce call goes through: latency, the bearer token (401
INVALID_SESSION_ID; an OAuth endpoint's 403 ``Bad_OAuth_Token``), the org's rolling daily allowance
(403 REQUEST_LIMIT_EXCEEDED; the data API only), scripted faults, body parsing, then the handler;
every answer says the allowance's use in ``Sforce-Limit-Info`` and the org clock's time in ``Date``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.utils import formatdate
from typing import Any

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response

from crm_pipeline.emulation.control import CLIENT_CLOSED, Latency, RollingWindowLimiter
from crm_pipeline.emulation.errors import BadRequest, RateLimited
from crm_pipeline.emulation.runtime import (
    ApiError,
    SavedEmulator,
    bearer_token,
    error_response,
)

from .concurrency import LongRunningGate
from .config import SalesforceSandboxConfig
from .cursors import Cursors
from .errors import SalesforceError, bad_request, not_found
from .org import Org
from .state import INTEGRATION_USER

FAULT_KINDS = ("500", "502", "503", "503-html", "hang")
DAY_S = 86_400.0
VERSIONS = {"59.0": "Winter '24", "60.0": "Spring '24", "61.0": "Summer '24", "62.0": "Winter '25"}
_FAULTS = {
    "500": (
        500,
        "UNKNOWN_EXCEPTION",
        "An unexpected error occurred. Please include this ErrorId if you contact support",
    ),
    "503": (503, "SERVER_UNAVAILABLE", "Server Unavailable"),
}
BAD_OAUTH_TOKEN = "Bad_OAuth_Token"
"""The OAuth endpoints' answer (403, plain text) to a token they do not accept."""
UNAVAILABLE_HTML = "<html><head><title>Service Unavailable</title></head><body>Server Unavailable</body></html>"


@dataclass
class Call:
    """One API request as a handler sees it."""

    sandbox: SalesforceSandbox
    user_id: str
    """The user whose token the request carries."""
    version: str
    params: dict[str, str]
    query: dict[str, str]
    headers: Headers
    body: Any

    @property
    def org(self) -> Org:
        return self.sandbox.org

    def base(self) -> str:
        """The API's path prefix at the request's version."""
        return f"/services/data/v{self.version}"


Handler = Callable[[Call], Any]  # a JSON-ready body, or (status, body)


class SalesforceSandbox(SavedEmulator[Handler]):
    """One org plus the switches the control surface flips."""

    log_name = "the local Salesforce"
    hang_kind = "503"

    def __init__(self, config: SalesforceSandboxConfig) -> None:
        self.config = config
        super().__init__(config.state_file)
        self.org = Org(self.clock)
        self.reset()
        self.load_state(self.org)

    def reset(self) -> None:
        """Back to the start-up state: an empty org, start-up tokens and limits, real time, no faults."""
        super().reset()
        config = self.config
        self.org.clear()
        self.tokens = dict.fromkeys(config.tokens, INTEGRATION_USER)
        self.latency = Latency(config.latency_ms, config.jitter_ms)
        self.query_page_cap = config.query_page_cap
        self.gate = LongRunningGate(config.concurrent_long_running_limit)
        self.daily = self.allowance(config.daily_api_max)
        self.cursors = Cursors()
        self.held_coverage: datetime | None = None
        """A moment getUpdated/getDeleted may not cover past (a transaction still in flight)."""

    def allowance(self, daily_max: int) -> RollingWindowLimiter:
        if daily_max < 1:
            raise BadRequest("daily_api_max must be at least 1.")
        return RollingWindowLimiter("DAILY", daily_max, DAY_S, lambda: self.clock.now_ms() / 1000)

    def answer_headers(self) -> dict[str, str]:
        """What every answer carries: the org's API usage and its clock's time (``Date``)."""
        used = self.daily.limit - self.daily.remaining("org")
        return {
            "Sforce-Limit-Info": f"api-usage={used}/{self.daily.limit}",
            "Date": formatdate(self.clock.now_ms() / 1000, usegmt=True),
        }

    def api_error(self, error: Exception) -> ApiError | None:
        if isinstance(error, SalesforceError):
            return error
        if isinstance(error, BadRequest):
            return bad_request("JSON_PARSER_ERROR", error.message)
        return None

    def internal_error(self) -> ApiError:
        return SalesforceError(500, "UNKNOWN_EXCEPTION", "An unexpected error occurred.")

    def bad_control_request(self, message: str) -> ApiError:
        return bad_request("INVALID_CONTROL_REQUEST", message)

    def fault_error(self, kind: str) -> Response:
        if kind == "503-html":
            return Response(UNAVAILABLE_HTML, status_code=503, media_type="text/html")
        return error_response(SalesforceError(*_FAULTS[kind]))

    async def serve(self, request: Request, route: str, handler: Handler) -> Response:
        """Every answer says the allowance's use and the time, as Salesforce's do."""
        response = await super().serve(request, route, handler)
        if response.status_code != CLIENT_CLOSED:
            response.headers.update(self.answer_headers())
        return response

    async def pipeline(self, request: Request, route: str, handler: Handler, raw: bytes) -> Response:
        params = dict(request.path_params)
        version = params.pop("version", None)
        user_id = self.tokens.get(bearer_token(request))
        if version is None:  # an OAuth endpoint: its own refusal, outside the API allowance
            if user_id is None:
                return Response(BAD_OAUTH_TOKEN, status_code=403, media_type="text/plain")
        else:
            if version not in VERSIONS:
                raise not_found()
            if user_id is None:
                raise SalesforceError(401, "INVALID_SESSION_ID", "Session expired or invalid")
            try:
                self.daily.check("org")
            except RateLimited:
                raise SalesforceError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.") from None
        query = {key: request.query_params[key] for key in request.query_params}
        with self.gate.admit():
            return await self.answer(
                request,
                raw,
                lambda body: handler(Call(self, user_id, version or "", params, query, request.headers, body)),
            )
