"""SyncEngine: two-way, field-level sync of the deal store with one external CRM.

A pass is a few public stages: ``read_primary`` and ``read_external`` read what changed on each
side since its watermark; ``decide`` has ``PassReader`` read one snapshot of the touched records
and ``plan_pass`` plan it (pure: the rule families, then one ``decide`` over every field);
``write_outbound`` and ``write_inbound`` let the executor write it, and the second moves the
watermarks. ``run_pass`` is those stages under one lock; the Dagster asset graph runs each as a
step of its own. All state (links, bases, watermarks, the error ledger, the audit log) lives in
PostgreSQL (``SyncStatus``), so a new process continues exactly where the last one stopped; one
pass per tenant writes at a time. What the external adapter found out about its connection (its
``Discovery``) is kept there too, so a quiet pass in a new process asks the CRM only for changes;
a pass with something to write has the schema asked again before its first write. See
docs/sync-rules.md for the rules and docs/architecture.md for the shape.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any
from uuid import UUID

from crm_pipeline.crm.adapter import CRMAdapter, Discovery
from crm_pipeline.crm.errors import FieldMappingError, PropertySchemaError
from crm_pipeline.crm.postgres import PostgresAdapter
from crm_pipeline.models import Actor, ChangeRecord, FieldChange, RecordType, SyncResult
from crm_pipeline.sync.executor import Executor, Tally
from crm_pipeline.sync.merge import decide_record
from crm_pipeline.sync.model import EXTERNAL_TIME_PRECISION, FieldState, Outcome, Side
from crm_pipeline.sync.ownership import FieldOwnershipConfig
from crm_pipeline.sync.pass_rules import MAX_VANISHED_SHARE
from crm_pipeline.sync.planner import PassPlan, plan_pass
from crm_pipeline.sync.reader import PassReader
from crm_pipeline.sync.stages import Decisions, PassOvertakenError, PassRefusedError, SideChanges
from crm_pipeline.sync.status import ConnectionState, Direction, LedgerEntry, SyncStatus

__all__ = ["SyncEngine"]

logger = logging.getLogger("crm_pipeline.sync")

_SYNCED_RECORDS = frozenset({RecordType.OPPORTUNITY, RecordType.ACTIVITY})

TIME_BUDGET_SHARE = 0.8
"""The share of the sync interval a pass may spend starting writes (the default time budget)."""

CREATES_PER_PASS = 5_000
"""Deals without a link a pass plans to create at most (the default ``creates_per_pass``)."""

DISCOVERY_RECHECK_SECONDS = 3600.0
"""How long a kept discovery is relied on before it is asked again in full (Notion: the database,
the data source and the bot user, three requests): what writes rely on is asked before each pass
that writes anyway, so this only bounds how stale the rest may get."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


class SyncEngine:
    """Keeps ``primary`` (the deal store) and ``external`` (any ``CRMAdapter``) in two-way sync.

    ``field_ownership`` decides conflicts per field; ``sync_interval_seconds`` is how often the
    schedule runs a pass (``run_pass``). ``_last_sync`` is only a cache of when the last inbound
    sync finished: the watermarks in PostgreSQL are what a pass continues from.
    """

    def __init__(
        self,
        primary: CRMAdapter,
        external: CRMAdapter | None,
        field_ownership: FieldOwnershipConfig,
        sync_interval_seconds: int = 60,
        *,
        connector: str | None = None,
        time_budget_seconds: float | None = None,
        trash_check_seconds: float = 300,
        reconcile_seconds: float = 300,
        reconcile_per_pass: int = 50,
        max_vanished_share: float = MAX_VANISHED_SHARE,
        creates_per_pass: int = CREATES_PER_PASS,
        discovery_recheck_seconds: float = DISCOVERY_RECHECK_SECONDS,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        if external is not None and not isinstance(primary, PostgresAdapter):
            raise TypeError(
                f"the primary is a {type(primary).__name__}: with an external CRM it must be the deal store's "
                "PostgresAdapter, whose database holds the sync's state (links, bases, watermarks, the error ledger)"
            )
        self.primary = primary
        self.external = external
        self.field_ownership = field_ownership
        self.sync_interval_seconds = sync_interval_seconds
        self._connector = connector or (type(external).__name__.removesuffix("Adapter").lower() if external else "none")
        self.time_budget_seconds = (
            TIME_BUDGET_SHARE * sync_interval_seconds if time_budget_seconds is None else time_budget_seconds
        )
        """How long after its start a pass may start new writes (its reads count); what is left
        waits in the ledger for the next."""
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
        self.creates_per_pass = creates_per_pass
        """A pass plans creates for at most this many deals without a link, the first in id order
        (``SyncStatus.unlinked``); the next passes find the rest there, and the ones its time
        budget left, so a load of any size costs each pass the same and none of it waits in the
        ledger. A deal whose create failed is retried from the ledger, beside them."""
        self.discovery_recheck_seconds = discovery_recheck_seconds
        """How long what the adapter discovered (kept in the deal store) is reused before it is asked
        again in full; ``clock`` tells the time for it."""
        self.clock = clock
        self._kept: ConnectionState | None = None
        self._kept_loaded = False
        self._asking_in_full = False
        """The adapter discovers everything afresh this pass: what it finds is stamped ``checked_at``."""
        self._last_sync: datetime | None = None
        resolution = external.capabilities.timestamp_resolution_seconds if external is not None else 0
        self._precision = timedelta(seconds=resolution) if resolution else EXTERNAL_TIME_PRECISION
        """How finely the external side dates edits (Notion: a minute, HubSpot: a millisecond):
        two edits closer than this are a tie (the person's edit is kept); unknown: a minute."""

    def has_external(self) -> bool:
        return self.external is not None

    @property
    def deal_store(self) -> PostgresAdapter:
        """The primary as the deal store, which every stage of a pass reads and writes. Only an
        engine with nothing to sync (no external CRM) may have another primary."""
        if not isinstance(self.primary, PostgresAdapter):
            raise TypeError(f"the primary is a {type(self.primary).__name__}, not the deal store's PostgresAdapter")
        return self.primary

    @cached_property
    def status(self) -> SyncStatus:
        """The sync's state for this tenant and connector, in the deal store."""
        return SyncStatus(self.deal_store.repository, self.deal_store.tenant_id, self._connector)

    async def close(self) -> None:
        """Close the adapters' connections (the deal store's pool belongs to its owner)."""
        if self.external is not None:
            await self.external.aclose()

    # --- the plan's API -----------------------------------------------------------------------

    async def run_pass(self) -> SyncResult:
        """One whole pass: the stages below under one lock, held from the reads to the moved
        watermarks (so nothing can go stale), within one time budget the reads count against.
        The decisions are written whole, in one executor run (``write_outbound`` and
        ``write_inbound`` write its two halves), so each record's push and pull land together.
        Returns at once, ``skipped``, when another pass of the tenant holds the lock."""
        if self.external is None:
            return SyncResult()
        async with self.status.pass_lock() as acquired:
            if not acquired:
                return SyncResult(skipped=True)
            deadline = time.monotonic() + self.time_budget_seconds
            decisions = await self.decide(await self.read_primary(), await self.read_external())
            tally = await self._execute(decisions.plan, deadline=deadline)
            await self._finish(decisions, [*tally.failures, *tally.deferred])
            return tally.result()

    async def plan(self) -> PassPlan:
        """What ``run_pass`` would do now (create, update, which conflicts it would decide),
        writing nothing: no write to either side, no state, no watermark moved."""
        if self.external is None:
            return PassPlan()
        return (await self.decide(await self.read_primary(), await self.read_external())).plan

    async def sync_outbound(self, changes: Sequence[ChangeRecord]) -> SyncResult:
        """Sync the records these primary changes touch; their external records are read afresh,
        so a human edit made meanwhile is decided by the rules, never overwritten."""
        if self.external is None:
            return SyncResult(pushed=0, pulled=0, conflicts=0, errors=[])
        async with self.status.pass_lock() as acquired:
            if not acquired:
                return SyncResult(skipped=True)
            await self._use_discovery()
            return await self._sync(await self._plan(changes, [], read_external=True))

    async def sync_inbound(self) -> SyncResult:
        """Pull the external changes since the inbound watermark (deciding them against the
        primary's pending changes) and move the watermark; records the sync time."""
        if self.external is None:
            return SyncResult()
        async with self.status.pass_lock() as acquired:
            if not acquired:
                return SyncResult(skipped=True)
            pending = (await self.read_primary()).changes
            await self._use_discovery()
            inbound = await self.status.watermark(Direction.INBOUND)
            batch = await self.external.read_changes(inbound[0] if inbound else None)
            touched = {change.record_id for change in batch.changes}
            links = await self.status.links_by_external(touched)
            related = [change for change in pending if UUID(change.record_id) in set(links.values())]
            plan = await self._plan(related, batch.changes, batch.unreadable, only_touched=True)
            result = await self._sync(plan)
            await self.status.set_watermark(Direction.INBOUND, batch.cursor)
            self._last_sync = datetime.now(UTC)
            return result

    async def approve_pending_deletes(self, record_ids: Iterable[UUID] | None = None) -> int:
        """Archive (soft) the deals whose external record vanished (``status.pending_deletes()``),
        all or the given ones: a person's decision, never the sync's. Returns how many; a page that
        comes back later restores its deal."""
        pending = await self.status.pending_deletes()
        chosen = pending.keys() if record_ids is None else pending.keys() & set(record_ids)
        for record_id in sorted(chosen):
            async with self.status.transaction(actor=Actor.HUMAN) as connection:
                await self.deal_store.repository.set_archived_in(connection, record_id, archived=True)
                await self.status.set_archived(connection, record_id, archived=True)
        await self.status.set_vanished(chosen, vanished=False)
        return len(chosen)

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

    # --- the stages of a pass -----------------------------------------------------------------
    # ``run_pass`` runs them under one lock. The Dagster asset graph runs each as a step of its own
    # (within a time budget each), where each writing stage takes the lock itself and first checks
    # that no other pass moved the watermarks since the reads (else the decisions are stale and the
    # next run decides again). The watermarks move only once both writing stages are done: a run
    # stopped between two stages leaves the next run to read, decide and finish the same changes
    # (writes already made read back as equal and are only recorded).

    async def read_primary(self) -> SideChanges:
        """Every opportunity and activity change after the outbound watermark, and the cursor after them."""
        async with self.status.reads():
            stored = await self.status.watermark(Direction.OUTBOUND)
            since = stored[0] if stored else None
            cursor, changes = since, []
            while True:
                batch = await self.deal_store.read_changes(cursor)
                changes += [change for change in batch.changes if change.record_type in _SYNCED_RECORDS]
                if batch.cursor == cursor or not batch.changes:
                    return SideChanges(Direction.OUTBOUND, since, batch.cursor, changes)
                cursor = batch.cursor

    async def changes_waiting(self) -> bool:
        """Whether the deal store's change feed holds entries past the outbound watermark (one
        entry read): a sweep passes the tenants the agent changed first."""
        async with self.status.reads():
            stored = await self.status.watermark(Direction.OUTBOUND)
            batch = await self.deal_store.read_changes(stored[0] if stored else None, limit=1)
        return bool(batch.changes)

    async def read_external(self, *, refuse_on_drift: bool = False) -> SideChanges:
        """The external changes since the inbound watermark, and its trash when a check is due
        (every ``trash_check_seconds``: it costs a request of its own).

        A schema that no longer fits the map raises ``PropertySchemaError``; with
        ``refuse_on_drift`` it reads as no changes with ``schema_error`` set instead, and the
        writing stages refuse to write what is decided on it."""
        assert self.external is not None
        async with self.status.reads():
            stored = await self.status.watermark(Direction.INBOUND)
            mark = await self.status.watermark(Direction.TRASH)
        since = stored[0] if stored else None
        try:
            await self._use_discovery()
            batch = await self.external.read_changes(since)
            due = mark is None or datetime.now(UTC) - mark[1] >= timedelta(seconds=self.trash_check_seconds)
            trash = await self.external.read_trashed(mark[0] if mark else None) if due else None
        except PropertySchemaError as error:
            if not refuse_on_drift:
                raise
            return SideChanges(Direction.INBOUND, since, since or "", [], schema_error=str(error))
        await self._keep_discovery()
        return SideChanges(
            Direction.INBOUND,
            since,
            batch.cursor,
            batch.changes + (trash.changes if trash else []),
            batch.unreadable + (trash.unreadable if trash else []),
            trash_cursor=trash.cursor if trash else None,
        )

    async def decide(self, primary: SideChanges, external: SideChanges) -> Decisions:
        """The pass's plan: the planner over both reads, the reconciliation slice due, if any, and
        the deals without a link still to create (``creates_per_pass`` at most); writes nothing."""
        await self._use_discovery()
        async with self.status.reads():
            reconcile = await self._reconcile_slice()
            plan = await self._plan(
                primary.changes,
                external.changes,
                external.unreadable,
                reconcile=reconcile,
                creates_per_pass=self.creates_per_pass,
            )
        await self._keep_discovery()
        until = _slice_end(reconcile, self.reconcile_per_pass) if reconcile else None
        return Decisions(plan, primary, external, until)

    async def write_outbound(self, decisions: Decisions) -> Tally:
        """The external side's writes (``Decisions.outbound``): links, sync keys, creates,
        deletes, duplicates, pushed fields (with their bases and audit entries) and the agent's
        new activities. Its failures go to the ledger with the inbound stage's (a pull recorded
        there would otherwise clear a failed push's entry of the same record)."""
        async with self._writing(decisions):
            return await self._execute(decisions.outbound())

    async def write_inbound(self, decisions: Decisions, outbound_failures: Sequence[LedgerEntry]) -> SyncResult:
        """The deal store's writes (``Decisions.inbound``): adopted records and pulled fields;
        then every failure of the pass goes to the ledger and the watermarks move."""
        async with self._writing(decisions):
            tally = await self._execute(decisions.inbound())
            await self._finish(decisions, [*outbound_failures, *tally.failures, *tally.deferred])
        tally.conflicts = decisions.conflicts
        return tally.result()

    @asynccontextmanager
    async def _writing(self, decisions: Decisions) -> AsyncIterator[None]:
        """The tenant's pass lock for a writing stage, once its decisions are known to be current."""
        if decisions.external.schema_error:
            raise PassRefusedError(
                f"nothing is written while the schema does not fit: {decisions.external.schema_error}"
            )
        async with self.status.pass_lock() as acquired:
            if not acquired:
                raise PassOvertakenError(f"another pass of tenant {self.status.tenant_id!r} is running")
            sides = (decisions.primary, decisions.external)
            async with self.status.reads():
                stored = [await self.status.watermark(side.direction) for side in sides]
            for side, mark in zip(sides, stored, strict=True):
                if (mark[0] if mark else None) != side.since:
                    raise PassOvertakenError(
                        f"the {side.direction} watermark moved since this run read its changes: "
                        "another pass synced them, the next run decides again"
                    )
            yield

    async def _finish(self, decisions: Decisions, failures: Sequence[LedgerEntry]) -> None:
        """Record the pass's failures, then move the watermarks past what it synced."""
        await self.status.record_errors(failures)
        positions = {Direction.OUTBOUND: decisions.primary.cursor, Direction.INBOUND: decisions.external.cursor}
        if decisions.reconciled_until is not None:
            positions[Direction.RECONCILE] = decisions.reconciled_until
        if decisions.external.trash_cursor is not None:
            positions[Direction.TRASH] = decisions.external.trash_cursor
        await self.status.set_watermarks(positions)
        self._last_sync = datetime.now(UTC)

    # --- planning and writing -----------------------------------------------------------------

    async def _plan(
        self,
        primary_changes: Sequence[ChangeRecord],
        external_changes: Sequence[ChangeRecord],
        unreadable: Sequence[FieldMappingError] = (),
        *,
        read_external: bool = False,
        only_touched: bool = False,
        reconcile: Mapping[UUID, str] | None = None,
        creates_per_pass: int | None = None,
    ) -> PassPlan:
        """The pass's two phases before any write: read one snapshot (``PassReader.snapshot``,
        which says what each argument reads; its deal-store reads in one read-only transaction),
        then plan it, purely (``plan_pass``)."""
        assert self.external is not None
        async with self.status.reads():
            snapshot = await PassReader(self.deal_store, self.external, self.status).snapshot(
                primary_changes,
                external_changes,
                unreadable,
                read_external=read_external,
                only_touched=only_touched,
                reconcile=reconcile,
                creates_per_pass=creates_per_pass,
            )
        return plan_pass(
            snapshot, self.field_ownership, precision=self._precision, max_vanished_share=self.max_vanished_share
        )

    async def _execute(self, plan: PassPlan, *, deadline: float | None = None) -> Tally:
        """Queue the plan's activities (kept should the pass stop), then carry the plan out within
        the time budget (``deadline``, a ``time.monotonic()``; by default the budget from now)."""
        assert self.external is not None
        deadline = time.monotonic() + self.time_budget_seconds if deadline is None else deadline
        await self.status.queue_activities(plan.activities)
        await self._use_discovery()
        if plan != PassPlan():
            await self.external.rediscover(everything=False)  # a drifted schema stops the pass here
        try:
            return await Executor(self.external, self.status, deadline=deadline).run(plan)
        finally:
            await self._keep_discovery()

    # --- what the adapter discovered, kept across processes -------------------------------------

    async def _use_discovery(self) -> None:
        """Before the external side is used: let the adapter rely on what it (or an earlier
        process) discovered, kept in the deal store, unless ``discovery_recheck_seconds`` have
        passed since it was asked in full: then it asks everything again."""
        assert self.external is not None
        if not self._kept_loaded:
            self._kept, self._kept_loaded = await self.status.connection_state(), True
        kept = self._kept
        if kept is None:
            self._asking_in_full = True  # nothing kept: the adapter asks on first use
        elif self.clock() - kept.checked_at >= timedelta(seconds=self.discovery_recheck_seconds):
            self._asking_in_full = True
            await self.external.rediscover(everything=True)
        elif self.external.discovery() is None and not self.external.reuse_discovery(kept.discovery):
            self._asking_in_full = True  # kept for another configuration

    async def _keep_discovery(self) -> None:
        """After a stage: what the adapter relies on now, kept for the next process when it
        changed (stamped with the clock when it was asked in full)."""
        assert self.external is not None
        current = self.external.discovery()
        kept = self._kept
        if current is None or (not self._asking_in_full and kept is not None and _same(current, kept.discovery)):
            return
        checked_at = kept.checked_at if kept is not None and not self._asking_in_full else self.clock()
        self._kept = ConnectionState(current.model_dump(mode="json"), checked_at)
        self._asking_in_full = False
        await self.status.set_connection_state(self._kept)

    async def _sync(self, plan: PassPlan) -> SyncResult:
        """``sync_outbound``'s and ``sync_inbound``'s writes: the plan carried out, its failures
        to the ledger; no watermark moves."""
        tally = await self._execute(plan)
        await self.status.record_errors(tally.failures + tally.deferred)
        return tally.result()

    async def _reconcile_slice(self) -> dict[UUID, str]:
        """The linked records this pass reconciles: the next ones after the last pass's slice."""
        mark = await self.status.watermark(Direction.RECONCILE)
        if self.reconcile_per_pass <= 0 or (
            mark and datetime.now(UTC) - mark[1] < timedelta(seconds=self.reconcile_seconds)
        ):
            return {}
        after = UUID(mark[0]) if mark and mark[0] else None
        slice_ = await self.status.links_after(after, self.reconcile_per_pass)
        if not slice_ and after is not None:  # past the last link: start over
            slice_ = await self.status.links_after(None, self.reconcile_per_pass)
        return slice_


def _same(discovery: Discovery, kept: Mapping[str, Any]) -> bool:
    """Whether a discovery is the one kept (compared as values: JSON lists of sets have no order)."""
    return type(discovery).reusable(kept, discovery.basis) == discovery


def _slice_end(slice_: Mapping[UUID, str], size: int) -> str:
    """Where the next reconciliation slice starts: after this one, or over from the start."""
    return str(max(slice_)) if len(slice_) == size and slice_ else ""
