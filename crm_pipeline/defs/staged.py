"""A sync pass in the stages the asset graph shows: read each side, decide, write out, write in.

``SyncEngine.run_pass`` does the same in one call under one lock; here each stage is its own
Dagster step, so the stages pass their results on and each writing stage takes the tenant's lock
and first checks that no other pass moved the watermarks since the reads (else the decisions are
stale and the next run decides again). The watermarks move only once both writing stages are
done: a run killed between two steps leaves the next run to read, decide and finish the same
changes (writes already made read back as equal and are only recorded).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from crm_pipeline.crm.errors import FieldMappingError
from crm_pipeline.models import ChangeRecord, SyncResult
from crm_pipeline.sync.engine import SyncEngine, _new_activities, _slice_end
from crm_pipeline.sync.executor import Executor, Tally
from crm_pipeline.sync.planner import PassPlan
from crm_pipeline.sync.reader import unreadable_entries
from crm_pipeline.sync.status import Direction, LedgerEntry


class PassRefusedError(RuntimeError):
    """This run's decisions may not be written: another pass moved on since its reads, or the schema drifted."""


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
    read_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def lag_seconds(self) -> float:
        """How long the oldest change read has waited to be synced (0 with none)."""
        oldest = min((change.changed_at for change in self.changes), default=self.read_at)
        return max((self.read_at - oldest).total_seconds(), 0.0)


@dataclass
class Decisions:
    """What the resolution decided for one pass, with the reads it decided on."""

    plan: PassPlan
    primary: SideChanges
    external: SideChanges
    reconciled_until: str | None = None
    """Where the next reconciliation slice starts, when this pass reconciled one."""


OUTBOUND_PARTS = frozenset(
    {
        "creates",
        "key_writes",
        "links",
        "relinks",
        "duplicates",
        "deletes",
        "restores_dropped",
        "vanished",
        "found_again",
    }
)
"""The plan's parts written by the outbound step (each writes the external side first; a delete
then archives or restores the deal in the same step, as the executor pairs them). Re-links after
a merge go with the links (the step's pushes to a survivor need the deal linked to it), and
restores the external side cannot take with the deletes they change."""
INBOUND_PARTS = frozenset({"adoptions", "failures", "notices"})
"""The plan's parts written by the inbound step. ``records`` is split: pushes out, pulls in."""


class StagedSync(SyncEngine):
    """``SyncEngine`` with its pass split into stages. It reuses the engine's own reading,
    planning and executor, so the decisions and writes are exactly those of ``run_pass``."""

    async def read_primary(self) -> SideChanges:
        stored = await self.status.watermark(Direction.OUTBOUND)
        cursor, changes = await self._primary_feed()
        return SideChanges(Direction.OUTBOUND, stored[0] if stored else None, cursor, changes)

    async def read_external(self) -> SideChanges:
        """The external changes since the inbound watermark, and its trash when a check is due."""
        assert self.external is not None
        stored = await self.status.watermark(Direction.INBOUND)
        since = stored[0] if stored else None
        batch = await self.external.read_changes(since)
        mark = await self.status.watermark(Direction.TRASH)
        due = mark is None or datetime.now(UTC) - mark[1] >= timedelta(seconds=self.trash_check_seconds)
        trash = await self.external.read_trashed(mark[0] if mark else None) if due else None
        return SideChanges(
            Direction.INBOUND,
            since,
            batch.cursor,
            batch.changes + (trash.changes if trash else []),
            batch.unreadable + (trash.unreadable if trash else []),
            trash_cursor=trash.cursor if trash else None,
        )

    async def decide(self, primary: SideChanges, external: SideChanges) -> Decisions:
        """The pass's plan: the engine's planner over both reads (and the reconciliation slice
        due, if any); writes nothing."""
        reconcile = await self._reconcile_slice()
        plan = await self._reader().plan(primary.changes, external.changes, reconcile=reconcile)
        plan.failures += unreadable_entries(external.unreadable)
        until = _slice_end(reconcile, self.reconcile_per_pass) if reconcile else None
        return Decisions(plan, primary, external, until)

    async def write_outbound(self, decisions: Decisions) -> Tally:
        """The external side's writes: links, sync keys, creates, deletes, duplicates, pushed
        fields (with their bases and audit entries) and the agent's new activities. Its failures
        go to the ledger with the inbound step's (a pull recorded there would otherwise clear a
        failed push's entry of the same record)."""
        plan = decisions.plan
        parts = {name: getattr(plan, name) for name in OUTBOUND_PARTS}
        records = [replace(r, pull={}, conflicts=0) for r in plan.records if r.push or r.base]
        await self.status.queue_activities(_new_activities(decisions.primary.changes))
        async with self._writing(decisions):
            return await self._executor().run(PassPlan(**parts, records=records))

    async def write_inbound(self, decisions: Decisions, outbound_failures: Sequence[LedgerEntry]) -> SyncResult:
        """The deal store's writes: adopted records and pulled fields; then every failure of the
        pass goes to the ledger and the watermarks move."""
        plan = decisions.plan
        parts = {name: getattr(plan, name) for name in INBOUND_PARTS}
        records = [replace(r, push={}, base={}, conflicts=0) for r in plan.records if r.pull]
        async with self._writing(decisions):
            tally = await self._executor().run(PassPlan(**parts, records=records))
            await self.status.record_errors([*outbound_failures, *tally.failures, *tally.deferred])
            await self._finish(decisions)
        tally.conflicts = sum(record.conflicts for record in plan.records)
        return tally.result()

    def _executor(self) -> Executor:
        assert self.external is not None
        return Executor(self.external, self.status, deadline=time.monotonic() + self.time_budget_seconds)

    @asynccontextmanager
    async def _writing(self, decisions: Decisions) -> AsyncIterator[None]:
        """The tenant's pass lock, once this run's decisions are known to be current."""
        if decisions.external.schema_error:
            raise PassRefusedError(
                f"nothing is written while the schema does not fit: {decisions.external.schema_error}"
            )
        async with self.status.pass_lock() as acquired:
            if not acquired:
                raise PassRefusedError(f"another pass of tenant {self.status.tenant_id!r} is running")
            await self._check_fresh(decisions)
            yield

    async def _finish(self, decisions: Decisions) -> None:
        """Move the watermarks past what this pass synced, as ``run_pass`` does at its end."""
        if decisions.reconciled_until is not None:
            await self.status.set_watermark(Direction.RECONCILE, decisions.reconciled_until)
        await self.status.set_watermark(Direction.OUTBOUND, decisions.primary.cursor)
        await self.status.set_watermark(Direction.INBOUND, decisions.external.cursor)
        if decisions.external.trash_cursor is not None:
            await self.status.set_watermark(Direction.TRASH, decisions.external.trash_cursor)

    async def _check_fresh(self, decisions: Decisions) -> None:
        for side in (decisions.primary, decisions.external):
            stored = await self.status.watermark(side.direction)
            if (stored[0] if stored else None) != side.since:
                raise PassRefusedError(
                    f"the {side.direction} watermark moved since this run read its changes: "
                    "another pass synced them, the next run decides again"
                )
