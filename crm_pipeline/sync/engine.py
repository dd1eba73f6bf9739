"""SyncEngine: two-way, field-level sync of the deal store with one external CRM.

A pass reads what changed on each side since its watermarks, asks the planner (pure, one
``decide`` over every field of every touched record) what to write, and lets the executor write
it. All state (links, bases, watermarks, the error ledger, the audit log) lives in PostgreSQL
(``SyncStatus``), so a new process continues exactly where the last one stopped; one pass per
tenant runs at a time. See docs/sync-rules.md for the rules and docs/architecture.md for the shape.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from crm_pipeline.crm.adapter import ChangeBatch, CRMAdapter
from crm_pipeline.crm.errors import FieldMappingError
from crm_pipeline.crm.field_mapping import FieldOwnershipConfig
from crm_pipeline.crm.postgres import PostgresAdapter
from crm_pipeline.models import Actor, ChangeRecord, FieldChange, OpportunityRead, RecordType, SyncError, SyncResult
from crm_pipeline.sync.executor import Executor
from crm_pipeline.sync.merge import comparable, decide_record
from crm_pipeline.sync.model import EXTERNAL_TIME_PRECISION, FieldState, Outcome, Side
from crm_pipeline.sync.planner import Lifecycle, PassPlan, RecordState, plan_deletes, plan_records
from crm_pipeline.sync.status import Direction, LedgerEntry, SyncStatus, decode_value

__all__ = ["SyncEngine"]

logger = logging.getLogger("crm_pipeline.sync")

_SYNCED_RECORDS = frozenset({RecordType.OPPORTUNITY, RecordType.ACTIVITY})

TIME_BUDGET_SHARE = 0.8
"""The share of the sync interval a pass may spend starting writes (the default time budget)."""


@dataclass
class _ExternalView:
    """The latest of an external record's changes read this pass, merged."""

    values: dict[str, Any] = field(default_factory=dict)
    changed_at: datetime | None = None
    sync_key: UUID | None = None
    in_trash: bool = False


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
        time_budget_seconds: float | None = None,
        trash_check_seconds: float = 300,
        reconcile_seconds: float = 300,
        reconcile_per_pass: int = 50,
        max_vanished_share: float = 0.1,
    ) -> None:
        if not isinstance(primary, PostgresAdapter):
            raise TypeError("the primary must be the deal store's PostgresAdapter: the sync keeps its state there")
        self.primary = primary
        self.external = external
        self.field_ownership = field_ownership
        self.sync_interval_seconds = sync_interval_seconds
        name = connector or (type(external).__name__.removesuffix("Adapter").lower() if external else "none")
        self.status = SyncStatus(primary.repository, primary.tenant_id, name)
        self.time_budget_seconds = (
            TIME_BUDGET_SHARE * sync_interval_seconds if time_budget_seconds is None else time_budget_seconds
        )
        """How long a pass may start new writes; what is left waits in the ledger for the next."""
        self.trash_check_seconds = trash_check_seconds
        """How often a pass also reads the external trash (deletes and restores made there)."""
        self.reconcile_seconds = reconcile_seconds
        self.reconcile_per_pass = reconcile_per_pass
        """Every ``reconcile_seconds`` a pass re-reads this many linked records in full (in id
        order, starting over after the last), to catch what the watermark missed: edits hidden by
        rounding, deletes, lost access."""
        self.max_vanished_share = max_vanished_share
        """The mass-delete breaker: when more of the linked records than this share vanish in one
        pass, none is queued for deletion and the pass says so."""
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
            outbound, primary_changes, batch, trash = await self._read_both()
            changes = batch.changes + (trash.changes if trash else [])
            unreadable = batch.unreadable + (trash.unreadable if trash else [])
            reconcile = await self._reconcile_slice()
            result = await self._sync(primary_changes, changes, unreadable=unreadable, reconcile=reconcile)
            if reconcile:
                await self.status.set_watermark(Direction.RECONCILE, _slice_end(reconcile, self.reconcile_per_pass))
            await self.status.set_watermark(Direction.OUTBOUND, outbound)
            await self.status.set_watermark(Direction.INBOUND, batch.cursor)
            if trash is not None:
                await self.status.set_watermark(Direction.TRASH, trash.cursor)
            self._last_sync = datetime.now(UTC)
            return result

    async def plan(self) -> PassPlan:
        """What ``run_pass`` would do now (create, update, which conflicts it would decide),
        writing nothing: no write to either side, no state, no watermark moved."""
        if self.external is None:
            return PassPlan()
        _, primary_changes, batch, trash = await self._read_both()
        changes = batch.changes + (trash.changes if trash else [])
        plan = await self._plan(primary_changes, changes, reconcile=await self._reconcile_slice())
        plan.failures += _unreadable(batch.unreadable + (trash.unreadable if trash else []))
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

    async def _read_both(self) -> tuple[str, list[ChangeRecord], ChangeBatch, ChangeBatch | None]:
        """The primary's changes (and the cursor after them), the external side's, and its
        trash when a check is due (every ``trash_check_seconds``: it costs a request of its own)."""
        assert self.external is not None
        outbound, primary_changes = await self._primary_feed()
        inbound = await self.status.watermark(Direction.INBOUND)
        batch = await self.external.read_changes(inbound[0] if inbound else None)
        trash_mark = await self.status.watermark(Direction.TRASH)
        due = trash_mark is None or datetime.now(UTC) - trash_mark[1] >= timedelta(seconds=self.trash_check_seconds)
        trash = await self.external.read_trashed(trash_mark[0] if trash_mark else None) if due else None
        return outbound, primary_changes, batch, trash

    async def _primary_feed(self) -> tuple[str, list[ChangeRecord]]:
        """Every opportunity and activity change after the outbound cursor, and the cursor after them."""
        stored = await self.status.watermark(Direction.OUTBOUND)
        cursor = stored[0] if stored else None
        changes: list[ChangeRecord] = []
        while True:
            batch = await self.primary.read_changes(cursor)
            changes += [change for change in batch.changes if change.record_type in _SYNCED_RECORDS]
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
        reconcile: Mapping[UUID, str] | None = None,
    ) -> SyncResult:
        """Plan the records these changes touch, then carry the plan out within the time budget."""
        assert self.external is not None
        deadline = time.monotonic() + self.time_budget_seconds
        plan = await self._plan(
            primary_changes,
            external_changes,
            read_external=read_external,
            only_touched=only_touched,
            reconcile=reconcile or {},
        )
        plan.failures += [
            LedgerEntry(error.record_id or "", str(error), Side.EXTERNAL, error.field, error.value)
            for error in unreadable
        ]
        await self.status.queue_activities(_new_activities(primary_changes))
        tally = await Executor(self.external, self.status, deadline=deadline).run(plan)
        await self.status.record_errors(tally.failures + tally.deferred)
        return tally.result()

    async def _plan(
        self,
        primary_changes: Sequence[ChangeRecord],
        external_changes: Sequence[ChangeRecord],
        *,
        read_external: bool = False,
        only_touched: bool = False,
        reconcile: Mapping[UUID, str] | None = None,
    ) -> PassPlan:
        """Read what the plan needs (links, bases, the touched records) and plan; writes nothing."""
        assert self.external is not None
        fields = self.external.mapped_fields
        plan = PassPlan()
        views = _external_views(external_changes, fields)
        retry = set() if only_touched else {entry.record_id for entry in await self.status.errors()}
        retry_deals = {r.id for r in await self.primary.get_opportunities(sorted(filter(_is_uuid, retry)))}
        views |= await self._read_pages(retry - {str(i) for i in retry_deals}, fields, plan)
        known = await self.status.links_by_external(views)
        new_links = await self._new_links(views, known, plan)

        primary_times = _field_times(primary_changes)
        reconcile = reconcile or {}
        record_ids = set(primary_times) | set(known.values()) | set(new_links) | retry_deals | set(reconcile)
        links = await self.status.links(record_ids) | new_links
        records = {r.id: r for r in await self.primary.get_opportunities([str(i) for i in sorted(record_ids)])}
        plan.creates = [
            records[i] for i in sorted(record_ids - links.keys()) if i in records and not records[i].archived_at
        ]

        by_external = {external_id: view for external_id, view in views.items() if external_id in links.values()}

        # Records retried from the ledger are read afresh: their last write may not have landed,
        # and a human may have changed them since (decided by the rules, never overwritten).
        reread = links.keys() & records.keys() if read_external else links.keys() & (retry_deals | set(reconcile))
        fresh = {
            _external_id(r): _view_of(r, fields)
            for r in await self.external.get_opportunities([links[i] for i in sorted(reread)])
        }
        by_external |= fresh
        gone = await self._vanished(plan, {i: links[i] for i in reread}, fresh)
        live = {i: e for i, e in links.items() if i in records and i not in gone}
        archived = await self.status.archived(live)
        plan.deletes = plan_deletes(
            live,
            {i: records[i].archived_at is not None for i in live},
            {external_id: view.in_trash for external_id, view in by_external.items()},
            archived,
        )
        # Fields travel between live pairs only: not while a pair is (or is becoming) archived.
        changing = {d.record_id: d.action for d in plan.deletes}
        links = {
            i: e
            for i, e in live.items()
            if changing.get(i) is Lifecycle.MARK_LIVE or (i not in changing and i not in archived)
        }
        bases = await self.status.bases(links)
        kept_views = {}
        for record_id, duplicate in plan.duplicates:
            if record_id in links:
                kept_views[record_id] = by_external.get(links[record_id])
                by_external[links[record_id]] = _with_duplicate(
                    kept_views[record_id], views[duplicate], bases.get(record_id, {})
                )
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
        ]
        plan.records = plan_records(states, self.field_ownership, fields, precision=self._precision)
        for record_plan in plan.records:
            if record_plan.record_id in kept_views:  # what came in from a duplicate goes to the kept page too
                kept = kept_views[record_plan.record_id]
                held = kept.values if kept is not None else {}
                record_plan.push |= {
                    name: value
                    for name, value in record_plan.pull.items()
                    if kept is None or comparable(held.get(name)) != comparable(value)
                }
        return plan

    async def _reconcile_slice(self) -> dict[UUID, str]:
        """The linked records this pass reconciles: the next ones after the last pass's slice."""
        mark = await self.status.watermark(Direction.RECONCILE)
        if self.reconcile_per_pass <= 0 or (
            mark and datetime.now(UTC) - mark[1] < timedelta(seconds=self.reconcile_seconds)
        ):
            return {}
        after = UUID(mark[0]) if mark and mark[0] else None
        return await self.status.links_after(after, self.reconcile_per_pass)

    async def _vanished(self, plan: PassPlan, read: Mapping[UUID, str], found: Mapping[str, Any]) -> set[UUID]:
        """The records read and not found. They go to the pending-delete queue (never straight to
        a delete), unless more than ``max_vanished_share`` of the links vanish at once: then the
        breaker holds them all back and the pass says so."""
        gone = {record_id for record_id, external_id in read.items() if external_id not in found}
        plan.found_again = set(read) - gone
        if len(gone) > max(self.max_vanished_share * await self.status.count_links(), 1):
            reason = f"mass-delete breaker: {len(gone)} linked records vanished at once; none queued for deletion"
            plan.notices.append(SyncError(record_id="*", reason=reason))
        else:
            plan.vanished = gone
        return gone

    async def _read_pages(
        self, external_ids: Iterable[str], fields: Iterable[str], plan: PassPlan
    ) -> dict[str, _ExternalView]:
        """External records named in the ledger (unreadable, or not yet made deals), read again."""
        assert self.external is not None
        views = {}
        for external_id in sorted(external_ids):
            try:
                record = await self.external.get_opportunity(external_id)
            except FieldMappingError as error:
                plan.failures += _unreadable([error])
                continue
            if record is not None:
                views[external_id] = _view_of(record, fields)
        return views

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
        keyed: dict[UUID, list[str]] = {}
        for ext, view in sorted(views.items()):
            if view.sync_key is not None and ext not in known and not view.in_trash:
                keyed.setdefault(view.sync_key, []).append(ext)
        if not keyed:
            return {}
        linked = await self.status.links(keyed)
        existing = {r.id for r in await self.primary.get_opportunities([str(k) for k in keyed])}
        plan.failures += [
            LedgerEntry(ext, f"carries the sync key {key}, which no deal of this tenant has", Side.EXTERNAL)
            for key, exts in keyed.items()
            if key not in existing
            for ext in exts
        ]
        for key, exts in keyed.items():
            if key not in existing:
                continue
            # One page per deal: the linked one stays (else the first); duplicates, from a
            # create that timed out yet landed, bring their values in as edits, then go to the trash.
            keep = linked.get(key) or exts[0]
            if key not in linked:
                plan.links.append((key, keep))
            plan.duplicates += [(key, ext) for ext in exts if ext != keep]
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
        if "archived_at" in change.changes:
            view.in_trash = change.changes["archived_at"].new is not None
    return views


def _with_duplicate(kept: _ExternalView | None, duplicate: _ExternalView, base: Mapping[str, Any]) -> _ExternalView:
    """The kept record's view with what a person changed on a duplicate: per field, the
    duplicate's value where the kept record still holds the base."""
    if kept is None:
        return duplicate
    values = {
        name: value if comparable(kept.values.get(name)) == comparable(base.get(name)) else kept.values.get(name)
        for name, value in duplicate.values.items()
    }
    changed_at = max((t for t in (kept.changed_at, duplicate.changed_at) if t is not None), default=None)
    return _ExternalView(values, changed_at, kept.sync_key, kept.in_trash)


def _view_of(record: OpportunityRead, fields: Iterable[str]) -> _ExternalView:
    sync_key = getattr(record, "sync_key", None)
    in_trash = bool(getattr(record, "in_trash", record.archived_at is not None))
    return _ExternalView({name: getattr(record, name) for name in fields}, record.updated_at, sync_key, in_trash)


def _external_id(record: OpportunityRead) -> str:
    return str(getattr(record, "external_id", record.id))


def _field_times(changes: Iterable[ChangeRecord]) -> dict[UUID, dict[str, datetime]]:
    """Per primary record, each field's latest change time in these changes."""
    times: dict[UUID, dict[str, datetime]] = {}
    for change in changes:
        if change.record_type is not RecordType.OPPORTUNITY:
            continue
        fields = times.setdefault(UUID(change.record_id), {})
        for name in change.changes:
            fields[name] = max(fields.get(name, change.changed_at), change.changed_at)
    return times


def _new_activities(changes: Iterable[ChangeRecord]) -> list[tuple[UUID, UUID, datetime]]:
    """(activity id, deal id, occurred at) of the activities these changes created."""
    return [
        (
            UUID(change.record_id),
            UUID(change.changes["opportunity_id"].new),
            datetime.fromisoformat(change.changes["occurred_at"].new),
        )
        for change in changes
        if change.record_type is RecordType.ACTIVITY and "opportunity_id" in change.changes
    ]


def _slice_end(slice_: Mapping[UUID, str], size: int) -> str:
    """Where the next reconciliation slice starts: after this one, or over from the start."""
    return str(max(slice_)) if len(slice_) == size and slice_ else ""


def _unreadable(errors: Iterable[FieldMappingError]) -> list[LedgerEntry]:
    """External records left out of a read because a value could not be mapped, as ledger entries."""
    return [LedgerEntry(e.record_id or "", str(e), Side.EXTERNAL, e.field, e.value) for e in errors]


def _is_uuid(text: str) -> bool:
    try:
        UUID(text)
    except ValueError:
        return False
    return True
