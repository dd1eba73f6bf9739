"""What the sync writes down besides the values: audit and ledger entries, queued activities. Pure.

The planner decides them and the status store keeps them (``sync/status.py``); they live here so
the planner needs nothing of the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from crm_pipeline.models import SyncError
from crm_pipeline.sync.model import Outcome, Rule, Side

__all__ = ["RESTORE_BY_HAND", "AuditEntry", "LedgerEntry", "QueuedActivity"]


@dataclass(frozen=True)
class AuditEntry:
    """One write the sync decided: the field, its value before and after, the side written, why."""

    field: str
    old: Any
    new: Any
    side: Side
    outcome: Outcome
    rule: Rule


RESTORE_BY_HAND = "archived_at"
"""The ledger field of a restore the connector cannot make (HubSpot's API has none): a person
restores the record in the CRM. Not retried: the pass that reads the record back restored clears
it, as does archiving the deal again."""


@dataclass(frozen=True)
class LedgerEntry:
    """A record (and field, '' for the whole record) that could not sync, and why."""

    record_id: str
    reason: str
    side: Side
    field: str = ""
    value: Any = None

    def as_error(self) -> SyncError:
        return SyncError(record_id=self.record_id, reason=self.reason, field=self.field or None)


@dataclass(frozen=True)
class QueuedActivity:
    """An activity the agent logged on a deal, to append to its external record once, in order.

    ``attempted``: a send was started before (a crash may have come between the append and its
    record), so the external record is asked first whether it landed."""

    activity_id: UUID
    deal_id: UUID
    occurred_at: datetime
    attempted: bool = False
