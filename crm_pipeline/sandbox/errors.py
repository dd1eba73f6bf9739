"""Notion error bodies.

Every failure the sandbox reports is a `NotionError` raised anywhere below the routes and rendered
once, so bad input can never turn into a 500 and every body has Notion's shape
(`object`, `status`, `code`, `message`, `request_id`).
"""

from __future__ import annotations

import json
import uuid
from typing import Any


class NotionError(Exception):
    """An API error with Notion's status, code and message."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        additional_data: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.additional_data = additional_data

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "object": "error",
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "request_id": str(uuid.uuid4()),
        }
        if self.additional_data:
            body["additional_data"] = self.additional_data
        return body


def validation(message: str) -> NotionError:
    return NotionError(400, "validation_error", message)


def body_validation(path: str, expectation: str, actual: Any) -> NotionError:
    """Notion's wording for a request body that fails its schema, naming the field by path."""
    shown = "undefined" if actual is MISSING else json.dumps(actual, ensure_ascii=False)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return validation(f"body failed validation: {path} {expectation}, instead was `{shown}`.")


def too_long(path: str, limit: int, actual: int) -> NotionError:
    return validation(f"body failed validation: {path}.length should be ≤ `{limit}`, instead was `{actual}`.")


class NotFound(NotionError):
    """404 `object_not_found`. Notion names the asking integration in it, so `/v1` answers it
    through `for_integration`; the control surface, which has none, as it is."""

    def __init__(self, kind: str, object_id: str) -> None:
        super().__init__(404, "object_not_found", self._message(kind, object_id, ""))
        self.kind, self.object_id = kind, object_id

    @staticmethod
    def _message(kind: str, object_id: str, integration: str) -> str:
        return (
            f"Could not find {kind} with ID: {object_id}. "
            f"Make sure the relevant pages and databases are shared with your integration{integration}."
        )

    def for_integration(self, name: str, integration_id: str) -> NotionError:
        """As recorded from Notion: the integration's name in the message, its id in `additional_data`."""
        return NotionError(
            404,
            "object_not_found",
            self._message(self.kind, self.object_id, f' "{name}"'),
            additional_data={"integration_id": integration_id},
        )


def not_found(kind: str, object_id: str) -> NotFound:
    return NotFound(kind, object_id)


def invalid_url() -> NotionError:
    return NotionError(400, "invalid_request_url", "Invalid request URL.")


MISSING: Any = object()
"""Sentinel for an absent body field, distinct from an explicit JSON null."""
