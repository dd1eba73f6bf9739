"""Notion's answers to the shared machinery: its fault kinds and their error bodies, and its 429."""

from __future__ import annotations

from crm_pipeline.emulation.errors import BadRequest, RateLimited

from .errors import NotionError, validation

FAULT_KINDS = ("500", "502", "503", "504", "529", "409", "hang")
_FAULT_ERRORS = {
    "500": (500, "internal_server_error", "Unexpected error occurred."),
    "503": (503, "service_unavailable", "Notion is unavailable, please try again later."),
    "504": (504, "gateway_timeout", "Notion timed out while processing the request, please try again later."),
    "529": (529, "service_overload", "Notion is temporarily overloaded, please try again later."),
    "409": (409, "conflict_error", "Conflict occurred while saving. Please try again."),
}


def fault_error(kind: str) -> NotionError:
    """The JSON error for a fault kind (502 and hang are answered by the app itself)."""
    status, code, message = _FAULT_ERRORS[kind]
    return NotionError(status, code, message)


def notion_error(error: BadRequest | RateLimited) -> NotionError:
    """A refusal from the shared machinery, in Notion's words."""
    if isinstance(error, RateLimited):
        return NotionError(
            429,
            "rate_limited",
            "You have been rate limited. Please try again in a few minutes.",
            headers={"Retry-After": str(error.retry_after_s or 1)},
            additional_data={"rate_limit_reason": "public_api_request_rate_limit"},
        )
    if error.kind == "invalid_json":
        return NotionError(400, "invalid_json", error.message)
    return validation(error.message)
