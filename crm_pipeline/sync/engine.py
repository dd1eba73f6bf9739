"""SyncEngine: two-way, field-level sync of the deal store with one external CRM.

A pass reads what changed on each side since its watermarks, asks the planner (pure, one
``decide`` over every field of every touched record) what to write, and lets the executor write
it. All state (links, bases, watermarks, the error ledger, the audit log) lives in PostgreSQL
(``SyncStatus``), so a new process continues exactly where the last one stopped; one pass per
tenant runs at a time. See docs/sync-rules.md for the rules and docs/architecture.md for the shape.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from crm_pipeline.crm.adapter import ChangeBatch, CRMAdapter
from crm_pipeline.crm.errors import FieldMappingError
from crm_pipeline.crm.field_mapping import FieldOwnershipConfig
from crm_pipeline.crm.postgres import PostgresAdapter
from crm_pipeline.models import Actor, ChangeRecord, FieldChange, OpportunityRead, RecordType, SyncResult
from crm_pipeline.sync.executor import Executor
from crm_pipeline.sync.merge import decide_record
from crm_pipeline.sync.model import EXTERNAL_TIME_PRECISION, FieldState, Outcome, Side
from crm_pipeline.sync.planner import PassPlan, RecordState, plan_records
from crm_pipeline.sync.status import Direction, LedgerEntry, SyncStatus, decode_value

__all__ = ["SyncEngine"]

logger = logging.getLogger("crm_pipeline.sync")


@dataclass
class _ExternalView:
    """The latest of an external record's changes read this pass, merged."""

    values: dict[str, Any] = field(default_factory=dict)
    changed_at: datetime | None = None
    sync_key: UUID | None = None


class SyncEngine:
    """Keeps ``primary`` (the deal store) and ``external`` (any ``CRMAdapter``) in two-way sync.

    ``field_ownership`` decides conflicts per field; ``sync_interval_seconds`` is how often the
    schedule runs a pass (``run_pass``). ``_last_sync`` is only a cache of when the last inbound
    sync finished: the watermarks in PostgreSQL are what a pass continues from.
    """

    def __init__(
        self,
        primary: PostgresAdapter,
        external: CRMAdapter | None,
        field_ownership: FieldOwnershipConfig,
        sync_interval_seconds: int = 60,
        *,
        connector: str | None = None,
    ) -> None:
        if not isinstance(primary, PostgresAdapter):
            raise TypeError("the primary must be the deal store's PostgresAdapter: the sync keeps its state there")
        self.primary = primary
        self.external = external
        self.field_ownership = field_ownership
        self.sync_interval_seconds = sync_interval_seconds
        name = connector or (type(external).__name__.removesuffix("Adapter").lower() if external else "none")
        self.status = SyncStatus(primary.repository, primary.tenant_id, name)
        self._last_sync: datetime | None = None
        self._precision = EXTERNAL_TIME_PRECISION
        if external is not None and external.capabilities.timestamp_resolution_seconds:
            self._precision = max(
                self._precision, timedelta(seconds=external.capabilities.timestamp_resolution_seconds)
            )

    def has_external(self) -> bool:
        return self.external is not None

    # --- the plan's API -----------------------------------------------------------------------

    async def run_pass(self) -> SyncResult:
        """One whole pass: the primary's changes since the outbound cursor and the external
        side's since the inbound watermark, decided together, written, and both watermarks moved.
        Returns at once, ``skipped``, when another pass of the tenant holds the lock."""
        if self.external is None:
            return SyncResult()
        async with self.status.pass_lock() as acquired:
            if not acquired:
                return SyncResult(skipped=True)
            outbound, primary_changes, batch = await self._read_both()
            result = await self._sync(primary_changes, batch.changes, unreadable=batch.unreadable)
            await self.status.set_watermark(Direction.OUTBOUND, outbound)
            await self.status.set_watermark(Direction.INBOUND, batch.cursor)
            self._last_sync = datetime.now(UTC)
            return result

    async def plan(self) -> PassPlan:
        """What ``run_pass`` would do now (create, update, which conflicts it would decide),
        writing nothing: no write to either side, no state, no watermark moved."""
        if self.external is None:
            return PassPlan()
        _, primary_changes, batch = await self._read_both()
        plan = await self._plan(primary_changes, batch.changes)
        plan.failures += _unreadable(batch.unreadable)
        return plan

    async def sync_outbound(self, changes: Sequence[ChangeRecord]) -> SyncResult:
        """Sync the records these primary changes touch; their external records are read afresh,
        so a human edit made meanwhile is decided by the rules, never overwritten."""
        if self.external is None:
            return SyncResult(pushed=0, pulled=0, conflicts=0, errors=[])
        async with self.status.pass_lock() as acquired:
            if not acquired:
                return SyncResult(skipped=True)
            return await self._sync(changes, [], read_external=True)

    async def sync_inbound(self) -> SyncResult:
        """Pull the external changes since the inbound watermark (deciding them against the
        primary's pending changes) and move the watermark; records the sync time."""
        if self.external is None:
            return SyncResult()
        async with self.status.pass_lock() as acquired:
            if not acquired:
                return SyncResult(skipped=True)
            _, pending = await self._primary_feed()
            inbound = await self.status.watermark(Direction.INBOUND)
            batch = await self.external.read_changes(inbound[0] if inbound else None)
            touched = {change.record_id for change in batch.changes}
            links = await self.status.links_by_external(touched)
            related = [change for change in pending if UUID(change.record_id) in set(links.values())]
            result = await self._sync(related, batch.changes, only_touched=True, unreadable=batch.unreadable)
            await self.status.set_watermark(Direction.INBOUND, batch.cursor)
            self._last_sync = datetime.now(UTC)
            return result

    def _resolve_conflict(self, change: ChangeRecord, other: ChangeRecord | None = None) -> ChangeRecord:
        """``change`` filtered to the fields whose value wins, by the rules.

        ``change`` comes from one side (a human's change from the external CRM, anything else
        from the primary) and carries each field's old (the base) and new value; ``other`` is the
        other side's concurrent change to the same record, if any (its fields otherwise still
        hold the base).
        """
        side = Side.EXTERNAL if change.actor is Actor.HUMAN else Side.PRIMARY
        other_changes = other.changes if other is not None else {}
        states = []
        for name, mine in change.changes.items():
            theirs = other_changes.get(name, FieldChange(old=mine.old, new=mine.old)).new
            ours_at, theirs_at = change.changed_at, other.changed_at if other is not None else None
            primary, external = (mine.new, theirs) if side is Side.PRIMARY else (theirs, mine.new)
            primary_at, external_at = (ours_at, theirs_at) if side is Side.PRIMARY else (theirs_at, ours_at)
            states.append(FieldState(name, mine.old, primary, external, primary_at, external_at))
        mapped = self.external.mapped_fields if self.external is not None else frozenset(change.changes)
        decisions = decide_record(change.record_id, states, self.field_ownership, mapped, precision=self._precision)
        winning = {d.field for d in decisions if d.winner is side and d.outcome is not Outcome.NOTHING}
        return change.model_copy(update={"changes": {k: v for k, v in change.changes.items() if k in winning}})

    # --- one pass -----------------------------------------------------------------------------

    async def _read_both(self) -> tuple[str, list[ChangeRecord], ChangeBatch]:
        """The primary's changes (and the cursor after them) and the external side's."""
        assert self.external is not None
        outbound, primary_changes = await self._primary_feed()
        inbound = await self.status.watermark(Direction.INBOUND)
        return outbound, primary_changes, await self.external.read_changes(inbound[0] if inbound else None)

    async def _primary_feed(self) -> tuple[str, list[ChangeRecord]]:
        """Every opportunity change after the outbound cursor, and the cursor after them."""
        stored = await self.status.watermark(Direction.OUTBOUND)
        cursor = stored[0] if stored else None
        changes: list[ChangeRecord] = []
        while True:
            batch = await self.primary.read_changes(cursor)
            changes += [change for change in batch.changes if change.record_type is RecordType.OPPORTUNITY]
            if batch.cursor == cursor or not batch.changes:
                return batch.cursor, changes
            cursor = batch.cursor

    async def _sync(
        self,
        primary_changes: Sequence[ChangeRecord],
        external_changes: Sequence[ChangeRecord],
        *,
        read_external: bool = False,
        only_touched: bool = False,
        unreadable: Sequence[FieldMappingError] = (),
    ) -> SyncResult:
        """Plan the records these changes touch, then carry the plan out."""
        assert self.external is not None
        plan = await self._plan(
            primary_changes, external_changes, read_external=read_external, only_touched=only_touched
        )
        plan.failures += [
            LedgerEntry(error.record_id or "", str(error), Side.EXTERNAL, error.field, error.value)
            for error in unreadable
        ]
        tally = await Executor(self.external, self.status).run(plan)
        await self.status.record_errors(tally.failures)
        return tally.result()

    async def _plan(
        self,
        primary_changes: Sequence[ChangeRecord],
        external_changes: Sequence[ChangeRecord],
        *,
        read_external: bool = False,
        only_touched: bool = False,
    ) -> PassPlan:
        """Read what the plan needs (links, bases, the touched records) and plan; writes nothing."""
        assert self.external is not None
        fields = self.external.mapped_fields
        plan = PassPlan()
        views = _external_views(external_changes, fields)
        known = await self.status.links_by_external(views)
        new_links = await self._new_links(views, known, plan)

        primary_times = _field_times(primary_changes)
        retry = (
            set() if only_touched else {UUID(e.record_id) for e in await self.status.errors() if _is_uuid(e.record_id)}
        )
        record_ids = set(primary_times) | set(known.values()) | set(new_links) | retry
        links = await self.status.links(record_ids) | new_links
        records = {r.id: r for r in await self.primary.get_opportunities([str(i) for i in sorted(record_ids)])}
        plan.creates = [
            records[i] for i in sorted(record_ids - links.keys()) if i in records and not records[i].archived_at
        ]

        by_external = {external_id: view for external_id, view in views.items() if external_id in links.values()}
        if read_external:
            fresh = await self.external.get_opportunities([links[i] for i in links if i in records])
            by_external |= {_external_id(r): _view_of(r, fields) for r in fresh}
        bases = await self.status.bases(links)
        states = [
            RecordState(
                record_id,
                external_id,
                bases.get(record_id, {}),
                {name: getattr(records[record_id], name) for name in fields},
                primary_times.get(record_id, {}),
                by_external[external_id].values if external_id in by_external else None,
                by_external[external_id].changed_at if external_id in by_external else None,
            )
            for record_id, external_id in sorted(links.items())
            if record_id in records
        ]
        plan.records = plan_records(states, self.field_ownership, fields, precision=self._precision)
        return plan

    async def _new_links(
        self, views: Mapping[str, _ExternalView], known: Mapping[str, UUID], plan: PassPlan
    ) -> dict[UUID, str]:
        """Sort the external records without a link: a human's (no key) are adopted; one carrying
        the key of a deal without a link is linked (returned, record -> external id); a key no
        deal has is an error. A linked record without its key gets the key written."""
        plan.key_writes = [(ext, known[ext]) for ext, view in views.items() if view.sync_key is None and ext in known]
        plan.adoptions = [
            (ext, view.values) for ext, view in views.items() if view.sync_key is None and ext not in known
        ]
        keyed = {view.sync_key: ext for ext, view in views.items() if view.sync_key is not None and ext not in known}
        if not keyed:
            return {}
        linked = await self.status.links(keyed)
        existing = {r.id for r in await self.primary.get_opportunities([str(k) for k in keyed])}
        plan.links = [(key, ext) for key, ext in keyed.items() if key in existing and key not in linked]
        plan.failures += [
            LedgerEntry(ext, f"carries the sync key {key}, which no deal of this tenant has", Side.EXTERNAL)
            for key, ext in keyed.items()
            if key not in existing
        ]
        return dict(plan.links)


def _external_views(changes: Iterable[ChangeRecord], fields: Iterable[str]) -> dict[str, _ExternalView]:
    """Each external record's changes merged, oldest first (later values and times win)."""
    views: dict[str, _ExternalView] = {}
    wanted = set(fields)
    for change in sorted(changes, key=lambda c: c.changed_at):
        view = views.setdefault(change.record_id, _ExternalView())
        view.values |= {k: decode_value(k, v.new) for k, v in change.changes.items() if k in wanted}
        view.changed_at = change.changed_at
        view.sync_key = UUID(change.sync_key) if change.sync_key else view.sync_key
    return views


def _view_of(record: OpportunityRead, fields: Iterable[str]) -> _ExternalView:
    sync_key = getattr(record, "sync_key", None)
    return _ExternalView({name: getattr(record, name) for name in fields}, record.updated_at, sync_key)


def _external_id(record: OpportunityRead) -> str:
    return str(getattr(record, "external_id", record.id))


def _field_times(changes: Iterable[ChangeRecord]) -> dict[UUID, dict[str, datetime]]:
    """Per primary record, each field's latest change time in these changes."""
    times: dict[UUID, dict[str, datetime]] = {}
    for change in changes:
        fields = times.setdefault(UUID(change.record_id), {})
        for name in change.changes:
            fields[name] = max(fields.get(name, change.changed_at), change.changed_at)
    return times


def _unreadable(errors: Iterable[FieldMappingError]) -> list[LedgerEntry]:
    """External records left out of a read because a value could not be mapped, as ledger entries."""
    return [LedgerEntry(e.record_id or "", str(e), Side.EXTERNAL, e.field, e.value) for e in errors]


def _is_uuid(text: str) -> bool:
    try:
        UUID(text)
    except ValueError:
        return False
    return True
