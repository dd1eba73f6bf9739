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
The engine is layered: its sides, settings and kept discovery (``engine_setup``), the stages of
a pass (``engine_stages``), and here the whole pass (``run_pass``) and the rest of the plan's API.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from uuid import UUID

from crm_pipeline.models import Actor, ChangeRecord, FieldChange, SyncResult
from crm_pipeline.sync.engine_setup import CREATES_PER_PASS, DISCOVERY_RECHECK_SECONDS, TIME_BUDGET_SHARE
from crm_pipeline.sync.engine_stages import PassStages
from crm_pipeline.sync.merge import decide_record
from crm_pipeline.sync.model import FieldState, Outcome, Side
from crm_pipeline.sync.planner import PassPlan
from crm_pipeline.sync.status import Direction

__all__ = ["CREATES_PER_PASS", "DISCOVERY_RECHECK_SECONDS", "TIME_BUDGET_SHARE", "SyncEngine"]


class SyncEngine(PassStages):
    """Keeps ``primary`` (the deal store) and ``external`` (any ``CRMAdapter``) in two-way sync.

    ``field_ownership`` decides conflicts per field; ``sync_interval_seconds`` is how often the
    schedule runs a pass (``run_pass``). ``_last_sync`` is only a cache of when the last inbound
    sync finished: the watermarks in PostgreSQL are what a pass continues from.
    """

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

    async def _sync(self, plan: PassPlan) -> SyncResult:
        """``sync_outbound``'s and ``sync_inbound``'s writes: the plan carried out, its failures
        to the ledger; no watermark moves."""
        tally = await self._execute(plan)
        await self.status.record_errors(tally.failures + tally.deferred)
        return tally.result()
