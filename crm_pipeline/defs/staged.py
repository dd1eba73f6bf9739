"""A sync pass in the stages the asset graph shows: read each side, decide, write out, write in.

``SyncEngine.run_pass`` does the same in one call under one lock; here each stage is its own
Dagster step, so the stages pass their results on and each writing stage takes the tenant's lock
and first checks that no other pass moved the watermarks since the reads (else the decisions are
stale and the next run decides again). The watermarks move only once both writing stages are
done: a run killed between two steps leaves the next run to read, decide and finish the same
changes (writes already made read back as equal and are only recorded).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from crm_pipeline.crm.errors import FieldMappingError
from crm_pipeline.models import ChangeRecord, SyncResult
from crm_pipeline.sync.engine import SyncEngine
from crm_pipeline.sync.executor import Executor
from crm_pipeline.sync.model import Side
from crm_pipeline.sync.planner import PassPlan
from crm_pipeline.sync.status import Direction, LedgerEntry


class PassRefusedError(RuntimeError):
    """This run's decisions may not be written: another pass moved on since its reads, or the schema drifted."""


@dataclass
class SideChanges:
    """One side's changes since its watermark (``since``, None before the first pass), and the
    cursor to store once they are synced."""

    direction: Direction
    since: str | None
    cursor: str
    changes: list[ChangeRecord]
    unreadable: list[FieldMappingError] = field(default_factory=list)
    schema_error: str | None = None
    """Why the side could not be read at all (its schema no longer fits the map)."""
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


class StagedSync(SyncEngine):
    """``SyncEngine`` with its pass split into stages (it reuses the engine's own reading and
    planning, so the decisions are exactly those of ``run_pass``)."""

    async def read_primary(self) -> SideChanges:
        stored = await self.status.watermark(Direction.OUTBOUND)
        cursor, changes = await self._primary_feed()
        return SideChanges(Direction.OUTBOUND, stored[0] if stored else None, cursor, changes)

    async def read_external(self) -> SideChanges:
        assert self.external is not None
        stored = await self.status.watermark(Direction.INBOUND)
        since = stored[0] if stored else None
        batch = await self.external.read_changes(since)
        return SideChanges(Direction.INBOUND, since, batch.cursor, batch.changes, batch.unreadable)

    async def decide(self, primary: SideChanges, external: SideChanges) -> Decisions:
        """The pass's plan: the engine's planner over both reads; writes nothing."""
        plan = await self._plan(primary.changes, external.changes)
        plan.failures += [
            LedgerEntry(error.record_id or "", str(error), Side.EXTERNAL, error.field, error.value)
            for error in external.unreadable
        ]
        return Decisions(plan, primary, external)

    async def write_outbound(self, decisions: Decisions) -> SyncResult:
        """The external side's writes: links, sync keys, creates and pushed fields (with their
        bases and audit entries)."""
        plan = decisions.plan
        outbound = PassPlan(
            creates=plan.creates,
            key_writes=plan.key_writes,
            links=plan.links,
            records=[replace(r, pull={}, conflicts=0) for r in plan.records if r.push or r.base],
        )
        return await self._write(decisions, outbound, finish=False)

    async def write_inbound(self, decisions: Decisions) -> SyncResult:
        """The deal store's writes: adopted pages and pulled fields; then both watermarks move."""
        plan = decisions.plan
        inbound = PassPlan(
            adoptions=plan.adoptions,
            records=[replace(r, push={}, base={}) for r in plan.records if r.pull or r.conflicts],
            failures=plan.failures,
        )
        return await self._write(decisions, inbound, finish=True)

    async def _write(self, decisions: Decisions, plan: PassPlan, *, finish: bool) -> SyncResult:
        assert self.external is not None
        if decisions.external.schema_error:
            raise PassRefusedError(
                f"nothing is written while the schema does not fit: {decisions.external.schema_error}"
            )
        async with self.status.pass_lock() as acquired:
            if not acquired:
                raise PassRefusedError(f"another pass of tenant {self.status.tenant_id!r} is running")
            await self._check_fresh(decisions)
            tally = await Executor(self.external, self.status).run(plan)
            await self.status.record_errors(tally.failures)
            if finish:
                await self.status.set_watermark(Direction.OUTBOUND, decisions.primary.cursor)
                await self.status.set_watermark(Direction.INBOUND, decisions.external.cursor)
            return tally.result()

    async def _check_fresh(self, decisions: Decisions) -> None:
        for side in (decisions.primary, decisions.external):
            stored = await self.status.watermark(side.direction)
            if (stored[0] if stored else None) != side.since:
                raise PassRefusedError(
                    f"the {side.direction} watermark moved since this run read its changes: "
                    "another pass synced them, the next run decides again"
                )
