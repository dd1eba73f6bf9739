"""Salesforce's error shapes. A single-record call fails with an HTTP status and a list of
``{message, errorCode, fields}``; inside sObject Collections the same failure is one record's
``{statusCode, message, fields}`` in an HTTP 200. Every refusal below the routes is a
``SalesforceError``, rendered once in whichever shape the call answers with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ROLLED_BACK = "Record rolled back because not all records were valid and the request was using AllOrNone header"


@dataclass
class SalesforceError(Exception):
    status: int
    error_code: str
    message: str
    fields: list[str] | None = None
    """Named in the body when given (some codes omit the key)."""
    headers: dict[str, str] = field(default_factory=dict)
    payload: list[Any] | None = None
    """A body other than the error list (the urls of an HTTP 300)."""

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def body(self) -> list[Any]:
        if self.payload is not None:
            return self.payload
        item: dict[str, Any] = {"message": self.message, "errorCode": self.error_code}
        if self.fields is not None:
            item["fields"] = self.fields
        return [item]

    def record_error(self) -> dict[str, Any]:
        """The error as one record's result in sObject Collections."""
        return {"statusCode": self.error_code, "message": self.message, "fields": self.fields or []}


def not_found(message: str = "The requested resource does not exist") -> SalesforceError:
    return SalesforceError(404, "NOT_FOUND", message)


def bad_request(error_code: str, message: str, fields: list[str] | None = None) -> SalesforceError:
    return SalesforceError(400, error_code, message, fields)


def invalid_field(name: str, object_name: str) -> SalesforceError:
    return bad_request("INVALID_FIELD", f"No such column '{name}' on sobject of type {object_name}", [name])


def malformed_id(raw: str) -> SalesforceError:
    return bad_request("MALFORMED_ID", f"malformed id {raw}", [])


def entity_is_deleted() -> SalesforceError:
    return SalesforceError(404, "ENTITY_IS_DELETED", "entity is deleted", [])


def no_external_id_field(name: str) -> SalesforceError:
    return not_found(f"Provided external ID field does not exist or is not accessible: {name}")
