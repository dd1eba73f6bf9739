"""What the sync's state holds, as values (no SQL): field values to and from JSON, the watermarks'
directions, a connection's kept discovery, and what an operator reads about a deal's link."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import TypeAdapter
from pydantic_core import to_jsonable_python

from crm_pipeline.models import OPPORTUNITY_FIELDS, OpportunityRead
from crm_pipeline.sync.entries import AuditEntry, LedgerEntry

_FIELD_TYPES: dict[str, TypeAdapter[Any]] = {
    name: TypeAdapter(OpportunityRead.model_fields[name].rebuild_annotation()) for name in OPPORTUNITY_FIELDS
}


def encode_value(value: Any) -> Any:
    """A field value as JSON, as the change log stores it (decimals as text, dates ISO)."""
    return to_jsonable_python(value)


def decode_value(field: str, value: Any) -> Any:
    """A field value read back from JSON into the field's own type (Decimal, date …)."""
    return None if value is None else _FIELD_TYPES[field].validate_python(value)


class Direction(enum.StrEnum):
    OUTBOUND = "outbound"
    """The primary's change-feed cursor: everything before it has been planned."""
    INBOUND = "inbound"
    """The external side's change cursor (for Notion an edit time, read back with an overlap)."""
    TRASH = "trash"
    """The external side's trash cursor, read less often than every pass (a request of its own)."""
    RECONCILE = "reconcile"
    """The last deal id the rolling reconciliation read; it starts over after the last one."""


@dataclass(frozen=True)
class ConnectionState:
    """An adapter's discovery as kept (``Discovery`` as JSON) and when it was last asked in full."""

    discovery: dict[str, Any]
    checked_at: datetime


@dataclass(frozen=True)
class OpenFailure:
    """A ledger entry waiting for the next pass's retry: how often it failed, first and last when."""

    entry: LedgerEntry
    attempts: int
    first_seen_at: datetime
    last_seen_at: datetime


class LinkState(enum.StrEnum):
    """Where a deal stands with its external record, as an operator asks it."""

    LINKED = "linked"
    """Linked to its external record; nothing waits for a retry."""
    NOT_LINKED = "not yet linked"
    """No external record yet: the next pass creates (or finds) it."""
    FAILED = "failed"
    """A write of the deal or of its external record failed and waits in the ledger."""
    MISSING = "missing"
    """Reconciliation could not find the external record: queued for a person to approve a delete."""
    TRASHED = "trashed"
    """The deal is archived (its external record trashed, or about to be)."""


@dataclass(frozen=True)
class DealLink:
    """What the sync's state holds of one deal: its link, if any, and its open ledger entries
    (the deal's own and its external record's)."""

    record_id: UUID
    external_id: str | None = None
    linked_at: datetime | None = None
    archived: bool = False
    vanished_at: datetime | None = None
    failures: tuple[OpenFailure, ...] = ()

    def state(self, *, deal_archived: bool) -> LinkState:
        if self.archived or deal_archived:
            return LinkState.TRASHED
        if self.vanished_at is not None:
            return LinkState.MISSING
        if self.failures:
            return LinkState.FAILED
        return LinkState.LINKED if self.external_id is not None else LinkState.NOT_LINKED


@dataclass(frozen=True)
class SyncedField:
    """One field of one deal as the sync last left it: its base (the value both sides last agreed
    on; ``has_base`` False before any) and the newest write the sync decided for it, if any."""

    field: str
    has_base: bool = False
    base: Any = None
    synced_at: datetime | None = None
    last_write: AuditEntry | None = None
    written_at: datetime | None = None
