"""The stages of a ``SyncEngine`` pass: read each side, decide, write out, write in and move the
watermarks, each of which the Dagster asset graph runs as a step of its own; and the planning and
executing every stage and the engine's other entry points share."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from uuid import UUID

from crm_pipeline.crm.errors import FieldMappingError, PropertySchemaError
from crm_pipeline.models import ChangeRecord, RecordType, SyncResult
from crm_pipeline.sync.engine_setup import EngineSetup
from crm_pipeline.sync.executor import Executor, Tally
from crm_pipeline.sync.planner import PassPlan, plan_pass
from crm_pipeline.sync.reader import PassReader
from crm_pipeline.sync.stages import Decisions, PassOvertakenError, PassRefusedError, SideChanges
from crm_pipeline.sync.status import Direction, LedgerEntry

_SYNCED_RECORDS = frozenset({RecordType.OPPORTUNITY, RecordType.ACTIVITY})


class PassStages(EngineSetup):
    """A pass's public stages, and the planning and executing they share."""

    # --- the stages of a pass -----------------------------------------------------------------
    # ``run_pass`` runs them under one lock. The Dagster asset graph runs each as a step of its own
    # (within a time budget each), where each writing stage takes the lock itself and first checks
    # that no other pass moved the watermarks since the reads (else the decisions are stale and the
    # next run decides again). The watermarks move only once both writing stages are done: a run
    # stopped between two stages leaves the next run to read, decide and finish the same changes
    # (writes already made read back as equal and are only recorded).

    async def read_primary(self) -> SideChanges:
        """The opportunity and activity changes after the outbound watermark, and the cursor after
        them, read a page of the feed at a time. Those of deals without a link are only counted
        (``SideChanges.passed_over``): such a deal is created from its current row, so its changes
        decide nothing, and a first load's hundred thousand changes need not be held. The reader
        reads back those of the few deals a pass links by key (``PassReader.snapshot``'s ``feed``)."""
        async with self.status.reads():
            stored = await self.status.watermark(Direction.OUTBOUND)
            since = stored[0] if stored else None
            cursor, held, passed_over, oldest = since, [], 0, None
            while True:
                batch = await self.deal_store.read_changes(cursor)
                linked, unlinked = await self._by_link(batch.changes)
                held += linked
                passed_over += len(unlinked)
                oldest = min(filter(None, [oldest, *(change.changed_at for change in unlinked)]), default=None)
                if batch.cursor == cursor or not batch.changes:
                    return SideChanges(
                        Direction.OUTBOUND, since, batch.cursor, held, passed_over=passed_over, passed_over_since=oldest
                    )
                cursor = batch.cursor

    async def _by_link(self, changes: Sequence[ChangeRecord]) -> tuple[list[ChangeRecord], list[ChangeRecord]]:
        """The synced changes split: activities' and linked deals' (held), and those of deals without
        a link (passed over)."""
        synced = [change for change in changes if change.record_type in _SYNCED_RECORDS]
        deals = {UUID(change.record_id) for change in synced if change.record_type is RecordType.OPPORTUNITY}
        links = await self.status.links(deals) if deals else {}
        held: list[ChangeRecord] = []
        passed_over: list[ChangeRecord] = []
        for change in synced:
            linked = change.record_type is not RecordType.OPPORTUNITY or UUID(change.record_id) in links
            (held if linked else passed_over).append(change)
        return held, passed_over

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
                feed=(primary.since, primary.cursor),
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
        feed: tuple[str | None, str] | None = None,
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
                feed=feed,
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


def _slice_end(slice_: Mapping[UUID, str], size: int) -> str:
    """Where the next reconciliation slice starts: after this one, or over from the start."""
    return str(max(slice_)) if len(slice_) == size and slice_ else ""
