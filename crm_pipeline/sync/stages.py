"""What the stages of a pass hand each other: each side's read, the decisions, and the refusal.

``SyncEngine.run_pass`` runs the stages in one call under one lock; the Dagster asset graph runs
each as a step of its own (``read_primary``, ``read_external``, ``decide``, ``write_outbound``,
``write_inbound``), so these values are plain data that cross process boundaries.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from crm_pipeline.crm.errors import FieldMappingError
from crm_pipeline.models import ChangeRecord
from crm_pipeline.sync.planner import PassPlan, RecordPlan
from crm_pipeline.sync.status import Direction

__all__ = ["INBOUND_PARTS", "OUTBOUND_PARTS", "Decisions", "PassOvertakenError", "PassRefusedError", "SideChanges"]


class PassRefusedError(RuntimeError):
    """This run's decisions may not be written: another pass moved on since its reads, or the schema drifted."""


class PassOvertakenError(PassRefusedError):
    """Another pass of the tenant is writing, or has synced since this run's reads. Nothing is
    lost by stopping: the watermarks move only past what a pass wrote, so the next pass reads
    whatever this one would have written."""


@dataclass
class SideChanges:
    """One side's changes since its watermark (``since``, None before the first pass), and the
    cursor to store once they are synced. The external side's include its trash when a trash
    read was due (``trash_cursor`` set)."""

    direction: Direction
    since: str | None
    cursor: str
    changes: list[ChangeRecord]
    unreadable: list[FieldMappingError] = field(default_factory=list)
    schema_error: str | None = None
    """Why the side could not be read at all (its schema no longer fits the map)."""
    trash_cursor: str | None = None
    passed_over: int = 0
    """The deal store's changes of deals without a link, counted and not held (``read_primary``)."""
    passed_over_since: datetime | None = None
    """When the oldest of them was made."""
    read_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def lag_seconds(self) -> float:
        """How long the oldest change read (held or passed over) has waited to be synced (0 with none)."""
        times = [self.passed_over_since, *(change.changed_at for change in self.changes)]
        oldest = min(filter(None, times), default=self.read_at)
        return max((self.read_at - oldest).total_seconds(), 0.0)


OUTBOUND_PARTS = frozenset(
    {
        "creates",
        "creates_waiting",
        "key_writes",
        "links",
        "relinks",
        "duplicates",
        "deletes",
        "restores_dropped",
        "vanished",
        "found_again",
        "activities",
    }
)
"""The plan's parts written by the outbound stage (each writes the external side first; a delete
then archives or restores the deal in the same stage, as the executor pairs them). Re-links after
a merge go with the links (the stage's pushes to a survivor need the deal linked to it), and
restores the external side cannot take with the deletes they change; activities go out after the
creates that link their deals."""
INBOUND_PARTS = frozenset({"adoptions", "failures", "notices"})
"""The plan's parts written by the inbound stage. ``records`` is split: pushes out, pulls in."""


@dataclass
class Decisions:
    """What the resolution decided for one pass, with the reads it decided on."""

    plan: PassPlan
    primary: SideChanges
    external: SideChanges
    reconciled_until: str | None = None
    """Where the next reconciliation slice starts, when this pass reconciled one."""

    @property
    def conflicts(self) -> int:
        return sum(record.conflicts for record in self.plan.records)

    def outbound(self) -> PassPlan:
        """The external side's half of the plan: ``OUTBOUND_PARTS`` and the records' pushes
        (with the bases they settle)."""
        return self._half(
            OUTBOUND_PARTS, [replace(r, pull={}, conflicts=0) for r in self.plan.records if r.push or r.base]
        )

    def inbound(self) -> PassPlan:
        """The deal store's half of the plan: ``INBOUND_PARTS`` and the records' pulls."""
        return self._half(
            INBOUND_PARTS, [replace(r, push={}, base={}, conflicts=0) for r in self.plan.records if r.pull]
        )

    def _half(self, parts: frozenset[str], records: list[RecordPlan]) -> PassPlan:
        return PassPlan(**{name: getattr(self.plan, name) for name in parts}, records=records)
