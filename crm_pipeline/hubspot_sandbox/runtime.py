"""The request pipeline every HubSpot call goes through: latency, token and scope checks, the rate
limits (ten-secondly per app with its headers, daily per account, search's own per second), scripted
faults, body parsing, then the handler."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from crm_pipeline.emulation.control import Latency, RollingWindowLimiter
from crm_pipeline.emulation.errors import BadRequest, RateLimited
from crm_pipeline.emulation.runtime import (
    ApiError,
    SavedEmulator,
    bearer_token,
    error_response,
)

from .config import HubSpotSandboxConfig
from .errors import HubSpotError, validation
from .portal import Portal

FAULT_KINDS = ("423", "500", "502", "503", "504", "hang")
TEN_SECONDS = 10.0
DAY_MS = 86_400_000
_FAULTS = {
    "423": (423, "LOCKED", "Too many concurrent upserts on this object; wait at least 2 seconds."),
    "500": (500, "INTERNAL_ERROR", "internal error"),
    "503": (503, "SERVICE_UNAVAILABLE", "Service Unavailable"),
    "504": (504, "GATEWAY_TIMEOUT", "Gateway Timeout"),
}


@dataclass
class Call:
    """One API request as a handler sees it."""

    portal: Portal
    params: dict[str, str]
    query: dict[str, list[str]]
    body: Any


Handler = Callable[[Call], Any]  # a JSON-ready body, or (status, body)


class HubSpotSandbox(SavedEmulator[Handler]):
    """One portal plus the switches the control surface flips."""

    log_name = "the local HubSpot"
    hang_kind = "504"

    def __init__(self, config: HubSpotSandboxConfig) -> None:
        self.config = config
        super().__init__(config.state_file)
        self.portal = Portal(self.clock)
        self.reset()
        self.load_state(self.portal)

    def reset(self) -> None:
        """Back to the start-up state: an empty portal, start-up limits, real time, no faults."""
        super().reset()
        config = self.config
        self.portal.clear()
        self.portal.search_lag_ms = config.search_lag_ms
        self.portal.search_result_cap = config.search_result_cap
        self.portal.preserve_merged_ids = config.preserve_merged_ids
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

    def api_error(self, error: Exception) -> ApiError | None:
        if isinstance(error, HubSpotError):
            return error
        if isinstance(error, BadRequest):
            return validation(error.message)
        return None

    def internal_error(self) -> ApiError:
        return HubSpotError(500, "INTERNAL_ERROR", "internal error")

    def bad_control_request(self, message: str) -> ApiError:
        return validation(message)

    def fault_error(self, kind: str) -> Response:
        return error_response(HubSpotError(*_FAULTS[kind]))

    async def pipeline(self, request: Request, route: str, handler: Handler, raw: bytes) -> Response:
        token = bearer_token(request)
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

        params, query = dict(request.path_params), _query(request)
        return await self.answer(request, raw, lambda body: handler(Call(self.portal, params, query, body)), headers)

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


def _query(request: Request) -> dict[str, list[str]]:
    """Query lists; comma-separated values (``properties=a,b``) split as HubSpot does."""
    return {
        key: [part for value in request.query_params.getlist(key) for part in value.split(",") if part]
        for key in request.query_params
    }
