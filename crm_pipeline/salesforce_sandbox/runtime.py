"""The request pipeline every Salesforce call goes through: latency, the bearer token (401
INVALID_SESSION_ID), the org's rolling daily allowance (403 REQUEST_LIMIT_EXCEEDED), scripted
faults, body parsing, then the handler; every answer says the allowance's use in
``Sforce-Limit-Info``."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from crm_pipeline.emulation.bodies import parse_json_body
from crm_pipeline.emulation.clock import Clock
from crm_pipeline.emulation.control import (
    CLIENT_CLOSED,
    GATEWAY_HTML,
    FaultScript,
    Latency,
    RollingWindowLimiter,
    Stats,
)
from crm_pipeline.emulation.errors import BadRequest, RateLimited
from crm_pipeline.emulation.files import write_atomically
from crm_pipeline.emulation.routes import WRITE_METHODS

from .concurrency import LongRunningGate
from .config import SalesforceSandboxConfig
from .cursors import Cursors
from .errors import SalesforceError, not_found
from .org import Org
from .state import INTEGRATION_USER, OrgState

logger = logging.getLogger(__name__)
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
UNAVAILABLE_HTML = "<html><head><title>Service Unavailable</title></head><body>Server Unavailable</body></html>"


class ClientGone(Exception):
    """The client hung up while the sandbox was simulating delay."""


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


class SalesforceSandbox:
    """One org plus the switches the control surface flips."""

    def __init__(self, config: SalesforceSandboxConfig) -> None:
        self.config = config
        self.clock = Clock()
        self.org = Org(self.clock)
        self.faults = FaultScript()
        self.stats = Stats()
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
        self.reset()
        if config.state_file is not None and config.state_file.exists():
            self.org.restore(OrgState.load(json.loads(config.state_file.read_text(encoding="utf-8"))))
        self._saved_revision = self.org.revision

    def save_if_changed(self) -> None:
        """Write the state file (if any) when the org changed since the last save. A failed write
        is logged and tried again after the next request."""
        state_file = self.config.state_file
        if state_file is None or self.org.revision == self._saved_revision:
            return
        revision = self.org.revision
        try:
            write_atomically(state_file, json.dumps(self.org.state.snapshot()).encode("utf-8"))
        except OSError:
            logger.exception("saving the local Salesforce to %s failed; the changes stay unsaved", state_file)
            return
        self._saved_revision = revision

    def reset(self) -> None:
        """Back to the start-up state: an empty org, start-up tokens and limits, real time, no faults."""
        config = self.config
        self.clock.use_real_time()
        self.org.clear()
        self.tokens = dict.fromkeys(config.tokens, INTEGRATION_USER)
        self.faults.faults.clear()
        self.stats.clear()
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

    def limit_info(self) -> dict[str, str]:
        used = self.daily.limit - self.daily.remaining("org")
        return {"Sforce-Limit-Info": f"api-usage={used}/{self.daily.limit}"}

    async def serve(self, request: Request, route: str, handler: Handler) -> Response:
        epoch = self.stats.epoch
        try:
            response = await self._pipeline(request, handler)
        except (ClientGone, ClientDisconnect):
            self.stats.record(route, CLIENT_CLOSED, epoch)
            return Response(status_code=CLIENT_CLOSED)
        except SalesforceError as error:
            response = error_response(error)
        except BadRequest as error:
            response = error_response(SalesforceError(400, "JSON_PARSER_ERROR", error.message))
        except Exception:
            logger.exception("unexpected error serving %s", route)
            response = error_response(SalesforceError(500, "UNKNOWN_EXCEPTION", "An unexpected error occurred."))
        finally:
            self.save_if_changed()
        response.headers.update(self.limit_info())
        self.stats.record(route, response.status_code, epoch)
        return response

    async def _delay(self, request: Request, seconds: float) -> None:
        if seconds > 0:
            await self.sleep(seconds)
            if await request.is_disconnected():
                raise ClientGone

    async def _pipeline(self, request: Request, handler: Handler) -> Response:
        raw = await request.body()
        await self._delay(request, self.latency.sample_seconds())
        params = dict(request.path_params)
        version = params.pop("version", "")
        if version not in VERSIONS:
            raise not_found()
        token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        user_id = self.tokens.get(token)
        if user_id is None:
            raise SalesforceError(401, "INVALID_SESSION_ID", "Session expired or invalid")
        try:
            self.daily.check("org")
        except RateLimited:
            raise SalesforceError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.") from None
        with self.gate.admit():
            return await self._answer(request, user_id, version, params, raw, handler)

    async def _answer(
        self, request: Request, user_id: str, version: str, params: dict[str, str], raw: bytes, handler: Handler
    ) -> Response:
        """The handler's answer, or the fault scripted for the request instead of it (or after it)."""
        fault = self.faults.take(request.method, request.url.path)
        if fault is not None and not fault.applied:
            return await self._fault(request, fault.kind, fault.hang_seconds)
        body = parse_json_body(raw) if request.method in WRITE_METHODS else {}
        query = {key: request.query_params[key] for key in request.query_params}
        result = handler(Call(self, user_id, version, params, query, request.headers, body))
        if fault is not None:
            return await self._fault(request, fault.kind, fault.hang_seconds)
        status, payload = result if isinstance(result, tuple) else (200, result)
        if status == 204:
            return Response(status_code=204)
        return Response(json.dumps(payload), status_code=status, media_type="application/json")

    async def _fault(self, request: Request, kind: str, hang_seconds: float) -> Response:
        if kind == "502":
            return Response(GATEWAY_HTML, status_code=502, media_type="text/html")
        if kind == "503-html":
            return Response(UNAVAILABLE_HTML, status_code=503, media_type="text/html")
        if kind == "hang":
            await self._delay(request, hang_seconds)
            kind = "503"
        status, code, message = _FAULTS[kind]
        return error_response(SalesforceError(status, code, message))


def error_response(error: SalesforceError) -> Response:
    return Response(
        json.dumps(error.body()), status_code=error.status, media_type="application/json", headers=error.headers or None
    )
