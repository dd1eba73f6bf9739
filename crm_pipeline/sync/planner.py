"""The planner: from what each side holds and the stored base, what a pass writes. Pure.

One ``decide`` call settles every (record, field) of the pass at once (docs/sync-rules.md); this
module only gathers the cells and turns the decisions into one plan per record: the fields to
write to each side, the base to record once those writes succeed, and the audit entries.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from crm_pipeline.crm.field_mapping import FieldOwnershipConfig
from crm_pipeline.models import FieldEdit, OpportunityRead, SyncError, SyncResult
from crm_pipeline.sync.entries import AuditEntry, LedgerEntry, QueuedActivity
from crm_pipeline.sync.merge import cells_frame, comparable, decide
from crm_pipeline.sync.model import EXTERNAL_TIME_PRECISION, FieldState, Outcome, Side
from crm_pipeline.sync.pass_rules import DeleteAction, Lifecycle, plan_deletes

__all__ = ["DeleteAction", "Lifecycle", "PassPlan", "RecordPlan", "RecordState", "plan_deletes", "plan_records"]


@dataclass(frozen=True)
class RecordState:
    """One linked record as the pass sees it.

    ``external`` is None when the external record was not read this pass: nothing reported it
    changed since the inbound watermark, so it still holds the base (reconciliation checks that).
    ``external_field_edits``: per field, who made its newest external edit and when, where the
    connector tells (HubSpot); a field without one takes the record's ``external_changed_at``.
    """

    record_id: UUID
    external_id: str
    base: Mapping[str, Any]
    primary: Mapping[str, Any]
    primary_changed_at: Mapping[str, datetime] = field(default_factory=dict)
    external: Mapping[str, Any] | None = None
    external_changed_at: datetime | None = None
    external_field_edits: Mapping[str, FieldEdit] = field(default_factory=dict)


@dataclass
class RecordPlan:
    """What one record's pass writes: ``push`` to the external side, ``pull`` into the primary;
    ``base`` is recorded for the settled fields at once and for the written ones once written."""

    record_id: UUID
    external_id: str
    push: dict[str, Any] = field(default_factory=dict)
    pull: dict[str, Any] = field(default_factory=dict)
    base: dict[str, Any] = field(default_factory=dict)
    audit: list[AuditEntry] = field(default_factory=list)
    conflicts: int = 0

    @property
    def changes_anything(self) -> bool:
        return bool(self.push or self.pull or self.base)


@dataclass
class PassPlan:
    """Everything one pass would write, decided before anything is written (``SyncEngine.plan``).

    ``creates``: deals without a link, to create externally under their key; ``creates_waiting``:
    how many more deals without a link a later pass creates (past the pass's ``creates_per_pass``).
    ``adoptions``: external records a human created, to become deals (external id, field values).
    ``key_writes``: linked external records still lacking their key (an earlier pass stopped
    before writing it). ``links``: external records carrying a deal's key but not linked yet.
    ``relinks``: deals whose external record a person merged into another, to link to the
    survivor (see ``PassReader``). ``duplicates``: (deal,
    external id) of second records carrying a linked deal's key, to trash.
    ``records``: the linked records' field plans. ``deletes``: archives and restores, both ways
    (a pair changing state this pass gets no field writes). ``vanished``: deals whose external
    record reconciliation could not find, for the pending-delete queue (never deleted);
    ``found_again``: ones back. ``activities``: the agent's activities to append, in order (the
    executor appends those of linked deals). ``failures``: what cannot be planned; ``notices``: what the pass
    must say without a record to retry (the mass-delete breaker).
    """

    creates: list[OpportunityRead] = field(default_factory=list)
    creates_waiting: int = 0
    adoptions: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    key_writes: list[tuple[str, UUID]] = field(default_factory=list)
    links: list[tuple[UUID, str]] = field(default_factory=list)
    relinks: list[tuple[UUID, str]] = field(default_factory=list)
    duplicates: list[tuple[UUID, str]] = field(default_factory=list)
    records: list[RecordPlan] = field(default_factory=list)
    deletes: list[DeleteAction] = field(default_factory=list)
    vanished: set[UUID] = field(default_factory=set)
    found_again: set[UUID] = field(default_factory=set)
    restores_dropped: set[UUID] = field(default_factory=set)
    """Deals whose restore waited for a person in the CRM and that are archived again."""
    activities: list[QueuedActivity] = field(default_factory=list)
    failures: list[LedgerEntry] = field(default_factory=list)
    notices: list[SyncError] = field(default_factory=list)

    def summary(self) -> SyncResult:
        """The pass's counts as if every write succeeds."""
        return SyncResult(
            pushed=sum(bool(plan.push) for plan in self.records),
            pulled=sum(bool(plan.pull) for plan in self.records),
            conflicts=sum(plan.conflicts for plan in self.records),
            created=len(self.creates) + len(self.adoptions),
            trashed=sum(d.action in (Lifecycle.TRASH, Lifecycle.ARCHIVE) for d in self.deletes) + len(self.duplicates),
            errors=[failure.as_error() for failure in self.failures] + self.notices,
            deferred=self.creates_waiting,
        )


def _cells(state: RecordState, fields: Iterable[str]) -> Iterable[tuple[str, FieldState]]:
    for name in fields:
        base = state.base.get(name)
        external = base if state.external is None else state.external.get(name)
        edit = None if state.external is None else state.external_field_edits.get(name)
        yield (
            str(state.record_id),
            FieldState(
                name,
                base,
                state.primary.get(name),
                external,
                state.primary_changed_at.get(name),
                edit.at if edit is not None else None if state.external is None else state.external_changed_at,
                external_editor=edit.actor if edit is not None else None,
            ),
        )


def plan_records(
    states: Iterable[RecordState],
    ownership: FieldOwnershipConfig,
    mapped_fields: Collection[str],
    *,
    precision: timedelta = EXTERNAL_TIME_PRECISION,
) -> list[RecordPlan]:
    """One plan per record whose pass writes or records anything, in the order given.

    Fields outside ``mapped_fields`` never travel and are not asked about. A field whose base
    already holds the common value needs nothing recorded.
    """
    states = list(states)
    fields = sorted(mapped_fields)
    cells = [cell for state in states for cell in _cells(state, fields)]
    if not cells:
        return []
    decided = decide(cells_frame(cells, ownership, fields), precision=precision)
    by_record = {str(state.record_id): state for state in states}
    plans = {key: RecordPlan(state.record_id, state.external_id) for key, state in by_record.items()}
    for (record, name, outcome, winner, value, rule), (_, cell) in zip(
        decided[["record", "field", "outcome", "winner", "value", "rule"]].itertuples(index=False, name=None),
        cells,
        strict=True,
    ):
        plan, state = plans[record], by_record[record]
        if outcome is Outcome.NOTHING:
            if name not in state.base or comparable(state.base[name]) != comparable(value):
                plan.base[name] = value
            continue
        if winner is None:  # error, unmapped: nothing written, the base stays
            continue
        if winner is Side.PRIMARY:
            plan.push[name] = value
            plan.audit.append(AuditEntry(name, cell.external, value, Side.EXTERNAL, outcome, rule))
        else:
            plan.pull[name] = value
            plan.audit.append(AuditEntry(name, cell.primary, value, Side.PRIMARY, outcome, rule))
        plan.conflicts += outcome is Outcome.CONFLICT
    return [plan for plan in plans.values() if plan.changes_anything]
