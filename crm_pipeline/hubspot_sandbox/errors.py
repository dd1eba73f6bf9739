"""HubSpot's error envelope: ``{status, message, correlationId, category, errors[], context}``.

Every refusal is a ``HubSpotError`` raised below the routes and rendered once, so every error body
has HubSpot's shape and bad input never turns into a 500.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any


@dataclass
class HubSpotError(Exception):
    status: int
    category: str
    message: str
    errors: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. policyName on a 429
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "status": "error",
            "message": self.message,
            "correlationId": str(uuid.uuid4()),
            "category": self.category,
            **self.extra,
        }
        if self.errors:
            body["errors"] = self.errors
        return body


def validation(message: str, *errors: dict[str, Any]) -> HubSpotError:
    return HubSpotError(400, "VALIDATION_ERROR", message, list(errors))


def no_such_property(name: str, object_type: str) -> HubSpotError:
    message = f'Property "{name}" does not exist'
    return validation(
        f"Property values were not valid: {message} on {object_type}",
        {"message": message, "code": "PROPERTY_DOESNT_EXIST", "context": {"propertyName": [name]}},
    )


def invalid_value(name: str, value: str, reason: str) -> HubSpotError:
    return validation(
        f"Property values were not valid: {value!r} is not a valid value for {name}: {reason}",
        {"message": reason, "code": "INVALID_OPTION", "context": {"propertyName": [name]}},
    )


def not_found(object_type: str, object_id: str) -> HubSpotError:
    return HubSpotError(404, "OBJECT_NOT_FOUND", f"Object {object_type} {object_id} not found")
