"""The request pipeline every HubSpot call goes through: latency, token and scope checks, the rate
limits (ten-secondly per app with its headers, daily per account, search's own per second), scripted
faults, body parsing, then the handler."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

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

from .config import HubSpotSandboxConfig
from .errors import HubSpotError
from .portal import Portal

logger = logging.getLogger(__name__)
FAULT_KINDS = ("423", "500", "502", "503", "504", "hang")
TEN_SECONDS = 10.0
DAY_MS = 86_400_000
_FAULTS = {
    "423": (423, "LOCKED", "Too many concurrent upserts on this object; wait at least 2 seconds."),
    "500": (500, "INTERNAL_ERROR", "internal error"),
    "503": (503, "SERVICE_UNAVAILABLE", "Service Unavailable"),
    "504": (504, "GATEWAY_TIMEOUT", "Gateway Timeout"),
}


class ClientGone(Exception):
    """The client hung up while the sandbox was simulating delay."""


@dataclass
class Call:
    """One API request as a handler sees it."""

    portal: Portal
    params: dict[str, str]
    query: dict[str, list[str]]
    body: Any


Handler = Callable[[Call], Any]  # a JSON-ready body, or (status, body)


class HubSpotSandbox:
    """One portal plus the switches the control surface flips."""

    def __init__(self, config: HubSpotSandboxConfig) -> None:
        self.config = config
        self.clock = Clock()
        self.portal = Portal(self.clock)
        self.faults = FaultScript()
        self.stats = Stats()
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
        self.reset()
        if config.state_file is not None and config.state_file.exists():
            self.portal.load(json.loads(config.state_file.read_text(encoding="utf-8")))
        self._saved_revision = self.portal.revision

    def save_if_changed(self) -> None:
        """Write the state file (if any) when the portal changed since the last save. A failed
        write is logged and tried again after the next request."""
        state_file = self.config.state_file
        if state_file is None or self.portal.revision == self._saved_revision:
            return
        revision = self.portal.revision
        try:
            write_atomically(state_file, json.dumps(self.portal.snapshot()).encode("utf-8"))
        except OSError:
            logger.exception("saving the local HubSpot to %s failed; the changes stay unsaved", state_file)
            return
        self._saved_revision = revision

    def reset(self) -> None:
        """Back to the start-up state: an empty portal, start-up limits, real time, no faults."""
        config = self.config
        self.clock.use_real_time()
        self.portal.clear()
        self.portal.search_lag_ms = config.search_lag_ms
        self.portal.search_result_cap = config.search_result_cap
        self.portal.preserve_merged_ids = config.preserve_merged_ids
        self.faults.faults.clear()
        self.stats.clear()
        self.latency = Latency(config.latency_ms, config.jitter_ms)
        self.ten_secondly = RollingWindowLimiter(
            "TEN_SECONDLY_ROLLING", config.ten_secondly_limit, TEN_SECONDS, self._now
        )
        self.search_secondly = RollingWindowLimiter("SECONDLY", config.search_per_second, 1.0, self._now)
        self.daily_limit = config.daily_limit
        self.retry_after_s = config.retry_after_s
        self._daily: Counter[tuple[str, int]] = Counter()

    def _now(self) -> float:
        return self.clock.now_ms() / 1000

    async def serve(self, request: Request, route: str, handler: Handler) -> Response:
        try:
            return await self._serve(request, route, handler)
        finally:
            self.save_if_changed()

    async def _serve(self, request: Request, route: str, handler: Handler) -> Response:
        epoch = self.stats.epoch
        try:
            response = await self._pipeline(request, route, handler)
        except (ClientGone, ClientDisconnect):
            self.stats.record(route, CLIENT_CLOSED, epoch)
            return Response(status_code=CLIENT_CLOSED)
        except HubSpotError as error:
            response = error_response(error)
        except BadRequest as error:
            response = error_response(HubSpotError(400, "VALIDATION_ERROR", error.message))
        except Exception:
            logger.exception("unexpected error serving %s", route)
            response = error_response(HubSpotError(500, "INTERNAL_ERROR", "internal error"))
        self.stats.record(route, response.status_code, epoch)
        return response

    async def _delay(self, request: Request, seconds: float) -> None:
        if seconds > 0:
            await self.sleep(seconds)
            if await request.is_disconnected():
                raise ClientGone

    async def _pipeline(self, request: Request, route: str, handler: Handler) -> Response:
        raw = await request.body()
        await self._delay(request, self.latency.sample_seconds())
        token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if token not in self.config.tokens and token not in self.config.read_only_tokens:
            raise HubSpotError(
                401,
                "INVALID_AUTHENTICATION",
                "Authentication credentials not found. This API supports OAuth 2.0 authentication.",
            )
        if request.method != "GET" and token in self.config.read_only_tokens and not route.endswith("/search"):
            raise HubSpotError(
                403,
                "MISSING_SCOPES",
                "This app hasn't been granted all required scopes to make this call.",
                [
                    {
                        "message": "One or more of the following scopes are required.",
                        "context": {"requiredGranularScopes": ["crm.objects.deals.write"]},
                    }
                ],
            )
        headers = self._limit(token, is_search=route.endswith("/search"))
        fault = self.faults.take(request.method, request.url.path)
        if fault is not None and not fault.applied:
            return await self._fault(request, fault.kind, fault.hang_seconds)
        body = parse_json_body(raw) if request.method in WRITE_METHODS else {}
        result = handler(Call(self.portal, dict(request.path_params), _query(request), body))
        if fault is not None:
            return await self._fault(request, fault.kind, fault.hang_seconds)
        status, payload = result if isinstance(result, tuple) else (200, result)
        if status == 204:
            return Response(status_code=204, headers=headers)
        return Response(json.dumps(payload), status_code=status, media_type="application/json", headers=headers)

    def _limit(self, token: str, *, is_search: bool) -> dict[str, str]:
        """Count the request against its limits; the rate-limit headers to answer with (none on
        search, as reported of HubSpot)."""
        day = self.clock.now_ms() // DAY_MS
        try:
            if self.daily_limit and self._daily[(token, day)] >= self.daily_limit:
                raise RateLimited("DAILY")
            (self.search_secondly if is_search else self.ten_secondly).check(token)
        except RateLimited as refused:
            raise self._rate_limited(refused.policy) from None
        self._daily[(token, day)] += 1
        if is_search:
            return {}
        return {
            "X-HubSpot-RateLimit-Daily": str(self.daily_limit),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, self.daily_limit - self._daily[(token, day)])),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(TEN_SECONDS * 1000)),
            "X-HubSpot-RateLimit-Max": str(self.ten_secondly.limit),
            "X-HubSpot-RateLimit-Remaining": str(self.ten_secondly.remaining(token)),
        }

    def _rate_limited(self, policy: str) -> HubSpotError:
        message = {
            "DAILY": "You have reached your daily limit.",
            "TEN_SECONDLY_ROLLING": "You have reached your ten_secondly_rolling limit.",
            "SECONDLY": "You have reached your secondly limit.",
        }[policy]
        headers = {"Retry-After": str(self.retry_after_s)} if self.retry_after_s else {}
        return HubSpotError(
            429, "RATE_LIMIT", message, extra={"errorType": "RATE_LIMIT", "policyName": policy}, headers=headers
        )

    async def _fault(self, request: Request, kind: str, hang_seconds: float) -> Response:
        if kind == "502":
            return Response(GATEWAY_HTML, status_code=502, media_type="text/html")
        if kind == "hang":
            await self._delay(request, hang_seconds)
            kind = "504"
        status, category, message = _FAULTS[kind]
        return error_response(HubSpotError(status, category, message))


def error_response(error: HubSpotError) -> Response:
    return Response(
        json.dumps(error.body()), status_code=error.status, media_type="application/json", headers=error.headers or None
    )


def _query(request: Request) -> dict[str, list[str]]:
    """Query lists; comma-separated values (``properties=a,b``) split as HubSpot does."""
    return {
        key: [part for value in request.query_params.getlist(key) for part in value.split(",") if part]
        for key in request.query_params
    }
