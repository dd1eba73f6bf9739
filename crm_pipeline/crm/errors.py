"""Errors shared by the CRM adapters and the sync engine."""

from __future__ import annotations

from typing import Any

_MAX_VALUE_CHARS = 80


def _shorten(value: Any) -> str:
    """repr() of a value, cut so a 200 KB note cannot flood a log line."""
    text = repr(value)
    if len(text) <= _MAX_VALUE_CHARS:
        return text
    return f"{text[:_MAX_VALUE_CHARS]}… ({len(text)} chars)"


class FieldMappingError(ValueError):
    """One value of one record cannot be mapped to or from an external CRM property.

    It names the record, field, property and value, so one bad record can be reported and
    skipped while the rest of the batch syncs.
    """

    def __init__(
        self,
        record_id: str | None,
        field: str,
        property_name: str,
        value: Any,
        reason: str,
    ) -> None:
        self.record_id = record_id
        self.field = field
        self.property_name = property_name
        self.value = value
        self.reason = reason
        record = f"record {record_id}" if record_id is not None else "record (no id)"
        super().__init__(f"{record}: field {field!r} (property {property_name!r}) value {_shorten(value)}: {reason}")


class PropertySchemaError(ValueError):
    """The external CRM's schema does not fit the property map (missing property, wrong type).

    Unlike FieldMappingError this concerns every record, so a sync pass should stop and report it.
    """

    def __init__(self, field: str, property_name: str, reason: str) -> None:
        self.field = field
        self.property_name = property_name
        self.reason = reason
        super().__init__(f"field {field!r} (property {property_name!r}): {reason}")


class RecordGoneError(LookupError):
    """The record no longer exists in the backend, or is in its trash: a deletion, not a transient
    failure. Every backend raises this (or a subclass) for a write to such a record."""

    def __init__(self, external_id: str, reason: str = "the record is gone") -> None:
        self.external_id = external_id
        super().__init__(f"{external_id}: {reason}")


class UncertainWriteError(RuntimeError):
    """A write's answer was lost and a read-back shows it did not land. It is not resent: someone
    may have changed the record meanwhile, so the caller decides again from a fresh read."""

    def __init__(self, external_id: str, cause: BaseException) -> None:
        self.external_id = external_id
        super().__init__(f"{external_id}: the write's answer was lost and it did not land ({cause}); not resent")


class WriteRefusedError(RuntimeError):
    """A CRM refused a record's write for a reason other than one of its values (a key whose record
    is in the CRM's trash, a unique value another record holds)."""

    def __init__(self, record_id: str, reason: str) -> None:
        self.record_id = record_id
        super().__init__(f"record {record_id}: {reason}")
