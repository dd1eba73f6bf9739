"""The planner: from what a pass read, everything it writes. Pure.

``plan_pass`` takes the ``PassSnapshot`` the read phase froze (``PassReader``) and applies the
rule families of ``pass_rules`` (merges, records without a link, creates, vanished records,
archive and restore, activities), then settles every (record, field) of the live pairs in one
``decide`` call (docs/sync-rules.md): per record the fields to write to each side, the base to
record once those writes succeed, and the audit entries.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from crm_pipeline.models import Actor, FieldEdit, OpportunityRead, SyncError, SyncResult
from crm_pipeline.sync.entries import AuditEntry, LedgerEntry, QueuedActivity
from crm_pipeline.sync.merge import cells_frame, comparable, decide
from crm_pipeline.sync.model import EXTERNAL_TIME_PRECISION, FieldState, Outcome, Side
from crm_pipeline.sync.ownership import FieldOwnershipConfig
from crm_pipeline.sync.pass_rules import (
    MAX_VANISHED_SHARE,
    DeleteAction,
    ExternalView,
    Lifecycle,
    Unlinked,
    links_after_merges,
    plan_activities,
    plan_creates,
    plan_deletes,
    plan_lifecycle,
    plan_vanished,
    sort_unlinked,
)

__all__ = [
    "DeleteAction",
    "Lifecycle",
    "PassPlan",
    "PassSnapshot",
    "RecordPlan",
    "RecordState",
    "deals_to_read",
    "plan_deletes",
    "plan_pass",
    "plan_records",
    "records_to_reread",
    "touched_records",
]


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
    survivor (``pass_rules.plan_merges``). ``duplicates``: (deal,
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


# --- the whole pass ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PassSnapshot:
    """Everything one pass read, frozen: with the ownership, all ``plan_pass`` needs.

    ``views``: the external records the changes and the ledger name; ``external_links``: the
    stored links of those and of the records merged into them; ``key_links``, ``key_deals`` and
    ``created``: for the keys records without a link carry, those deals' links, which deals exist,
    and the creation times of records crowding one key. ``links``: the stored links of the touched
    deals; ``deals``: the deals read (the touched ones, or with ``backlog`` the first deals without
    a link and the linked touched ones); ``fresh``: the linked records read afresh, by external
    id, and ``unreadable`` those that could not be. ``bases`` and ``link_archived`` cover every
    pair. ``new_activities``: those the primary changes logged, ``appended_activities`` the ones of
    them appended already; ``failures``: what could not be read.
    """

    fields: frozenset[str]
    views: Mapping[str, ExternalView] = field(default_factory=dict)
    primary_times: Mapping[UUID, Mapping[str, datetime]] = field(default_factory=dict)
    retry_deals: frozenset[UUID] = frozenset()
    restore_by_hand: frozenset[UUID] = frozenset()
    external_links: Mapping[str, UUID] = field(default_factory=dict)
    key_links: Mapping[UUID, str] = field(default_factory=dict)
    key_deals: frozenset[UUID] = frozenset()
    created: Mapping[str, datetime] = field(default_factory=dict)
    reconcile: Mapping[UUID, str] = field(default_factory=dict)
    read_external: bool = False
    backlog: tuple[UUID, ...] | None = None
    creates_waiting: int = 0
    links: Mapping[UUID, str] = field(default_factory=dict)
    deals: Mapping[UUID, OpportunityRead] = field(default_factory=dict)
    fresh: Mapping[str, ExternalView] = field(default_factory=dict)
    unreadable: frozenset[str] = frozenset()
    link_count: int = 0
    pending_deletes: frozenset[UUID] = frozenset()
    link_archived: frozenset[UUID] = frozenset()
    bases: Mapping[UUID, Mapping[str, Any]] = field(default_factory=dict)
    queued_activities: tuple[QueuedActivity, ...] = ()
    new_activities: tuple[QueuedActivity, ...] = ()
    appended_activities: frozenset[UUID] = frozenset()
    failures: tuple[LedgerEntry, ...] = ()


def touched_records(
    primary_times: Mapping[UUID, Any],
    known: Mapping[str, UUID],
    new_links: Mapping[UUID, str],
    retry_deals: Collection[UUID],
    reconcile: Mapping[UUID, str],
) -> set[UUID]:
    """The deals a pass touches: changed in the store, linked to a changed external record, linked
    this pass, retried from the ledger, or in the reconciliation slice."""
    return set(primary_times) | set(known.values()) | set(new_links) | set(retry_deals) | set(reconcile)


def deals_to_read(
    touched: set[UUID], links: Mapping[UUID, str], retry_deals: Collection[UUID], backlog: Sequence[UUID] | None
) -> set[UUID]:
    """The deals a pass reads: the touched ones; with a ``backlog`` (the deals without a link to
    create) the linked touched ones, the backlog's and those the ledger retries."""
    return touched if backlog is None else (touched & links.keys()) | set(retry_deals) | set(backlog)


def records_to_reread(
    links: Mapping[UUID, str],
    deals: Mapping[UUID, OpportunityRead],
    retry_deals: Collection[UUID],
    reconcile: Mapping[UUID, str],
    *,
    read_external: bool,
) -> dict[UUID, str]:
    """The linked records read afresh: every deal's read when asked, else those retried from the
    ledger (their last write may not have landed, a person may have changed them since) and the
    reconciliation slice."""
    wanted = deals.keys() if read_external else set(retry_deals) | reconcile.keys()
    return {i: links[i] for i in sorted(links.keys() & wanted)}


def plan_pass(
    snapshot: PassSnapshot,
    ownership: FieldOwnershipConfig,
    *,
    precision: timedelta = EXTERNAL_TIME_PRECISION,
    max_vanished_share: float = MAX_VANISHED_SHARE,
) -> PassPlan:
    """Everything a pass writes, from what it read: the rule families in order, then the fields
    of the pairs left live (``precision``: the external side's time precision; ``max_vanished_share``:
    the mass-delete breaker's share)."""
    s = snapshot
    known, relinks, away = links_after_merges(s.views, s.external_links)
    unlinked = sort_unlinked(s.views, known, s.key_links, s.key_deals, s.created)
    new_links = dict(unlinked.links) | dict(relinks)
    links = {**s.links, **new_links}
    touched = touched_records(s.primary_times, known, new_links, s.retry_deals, s.reconcile)
    reread = records_to_reread(links, s.deals, s.retry_deals, s.reconcile, read_external=s.read_external)
    read = {i: e for i, e in reread.items() if e not in s.unreadable}
    vanished = plan_vanished(read, s.fresh.keys(), s.link_count, max_vanished_share)
    waiting = s.pending_deletes - vanished.found_again
    linked_ids = set(links.values())
    views = {ext: view for ext, view in s.views.items() if ext in linked_ids} | dict(s.fresh)
    trashed = {ext: view.in_trash for ext, view in views.items()}
    held_back = vanished.gone | (reread.keys() - read.keys()) | away | waiting
    lifecycle = plan_lifecycle(links, s.deals, trashed, s.link_archived, held_back, s.restore_by_hand)
    return PassPlan(
        creates=plan_creates(deals_to_read(touched, links, s.retry_deals, s.backlog), links, s.deals),
        creates_waiting=s.creates_waiting,
        adoptions=unlinked.adoptions,
        key_writes=unlinked.key_writes,
        links=unlinked.links,
        relinks=relinks,
        duplicates=unlinked.duplicates,
        records=_field_plans(s, views, lifecycle.live, unlinked, ownership, precision),
        deletes=lifecycle.deletes,
        vanished=vanished.vanished | away,
        found_again=vanished.found_again,
        restores_dropped=lifecycle.restores_dropped,
        activities=plan_activities(s.queued_activities, s.new_activities, s.appended_activities),
        failures=_distinct([*s.failures, *unlinked.failures]),
        notices=vanished.notices,
    )


def _field_plans(
    snapshot: PassSnapshot,
    linked_views: Mapping[str, ExternalView],
    live: Mapping[UUID, str],
    unlinked: Unlinked,
    ownership: FieldOwnershipConfig,
    precision: timedelta,
) -> list[RecordPlan]:
    """Decide every field of the live pairs in one go (rule *trash-duplicate*: a duplicate's
    edits count as the external side's, and what comes in from one goes to the kept record too)."""
    views, kept_views = dict(linked_views), {}
    for record_id, duplicate in unlinked.duplicates:
        # a duplicate last edited by the sync itself is a create that landed late, as sent:
        # no person set its values, so none of them is an edit
        if record_id in live and snapshot.views[duplicate].edited_by is not Actor.SYNC:
            kept_views[record_id] = views.get(live[record_id])
            views[live[record_id]] = _with_duplicate(
                kept_views[record_id], snapshot.views[duplicate], snapshot.bases.get(record_id, {})
            )
    states = [
        RecordState(
            record_id,
            external_id,
            snapshot.bases.get(record_id, {}),
            {name: getattr(snapshot.deals[record_id], name) for name in snapshot.fields},
            snapshot.primary_times.get(record_id, {}),
            views[external_id].values if external_id in views else None,
            views[external_id].changed_at if external_id in views else None,
            views[external_id].field_edits if external_id in views else {},
        )
        for record_id, external_id in sorted(live.items())
    ]
    plans = plan_records(states, ownership, snapshot.fields, precision=precision)
    for plan in plans:
        if plan.record_id in kept_views:
            _pull_to_kept(plan, kept_views[plan.record_id])
    return plans


def _pull_to_kept(plan: RecordPlan, kept: ExternalView | None) -> None:
    """What a duplicate brings in goes to the kept record too: each pulled value the kept record
    does not hold yet is pushed to it as well."""
    held = kept.values if kept is not None else {}
    plan.push |= {
        name: value
        for name, value in plan.pull.items()
        if kept is None or comparable(held.get(name)) != comparable(value)
    }


def _with_duplicate(kept: ExternalView | None, duplicate: ExternalView, base: Mapping[str, Any]) -> ExternalView:
    """The kept record's view with what a person changed on a duplicate: per field, the
    duplicate's value where the kept record still holds the base. Dated and attributed as a whole
    (no per-field edits): the values mix two records."""
    if kept is None:
        return duplicate
    values = {
        name: value if comparable(kept.values.get(name)) == comparable(base.get(name)) else kept.values.get(name)
        for name, value in duplicate.values.items()
    }
    changed_at = max((t for t in (kept.changed_at, duplicate.changed_at) if t is not None), default=None)
    return ExternalView(values, changed_at, kept.sync_key, kept.in_trash)


def _distinct(entries: Iterable[LedgerEntry]) -> list[LedgerEntry]:
    """One entry per record and field (a record unreadable in the changes and again when re-read)."""
    return list({(entry.record_id, entry.field): entry for entry in entries}.values())
