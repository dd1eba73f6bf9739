"""The executor: carries out a pass's plans, record by record, and records what it did.

Thin on purpose: every decision is the planner's. The external writes go first, a batch of
records at a time (``CRMAdapter.write_opportunities``); then, per record, one transaction writes
the pulled values into the deal store (as the human's edit), the record's new base and its audit
entries, so a crash leaves either the old base (the next pass decides again and finds the write's
echo equal) or the new one. A record that fails goes to the error ledger and
``SyncResult.errors``; the others carry on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from uuid import UUID, uuid4

from pydantic import ValidationError

from crm_pipeline.batches import chunks
from crm_pipeline.crm.adapter import CRMAdapter, WriteOutcome
from crm_pipeline.crm.errors import FieldMappingError, PropertySchemaError
from crm_pipeline.models import (
    ActivityCreate,
    ActivityRead,
    Actor,
    OpportunityCreate,
    OpportunityRead,
    OpportunityUpdate,
    SyncError,
    SyncResult,
)
from crm_pipeline.sync.entries import RESTORE_BY_HAND, LedgerEntry, QueuedActivity
from crm_pipeline.sync.model import Side
from crm_pipeline.sync.planner import DeleteAction, Lifecycle, PassPlan, RecordPlan
from crm_pipeline.sync.status import SyncStatus

__all__ = ["Executor", "Tally"]

logger = logging.getLogger("crm_pipeline.sync")

T = TypeVar("T")

FATAL_ERRORS: tuple[type[BaseException], ...] = (PropertySchemaError,)
"""Errors that concern every record (a drifted schema): they stop the pass instead of one record."""


@dataclass
class Tally:
    """Counts and failures of a pass, turned into its ``SyncResult`` at the end."""

    pushed: int = 0
    pulled: int = 0
    created: int = 0
    trashed: int = 0
    conflicts: int = 0
    failures: list[LedgerEntry] = field(default_factory=list)
    deferred: list[LedgerEntry] = field(default_factory=list)
    """Records left for the next pass when the time budget ran out (in the ledger, not errors)."""
    creates_left: int = 0
    """Creates left for a later pass, past the plan's or the time budget's: not in the ledger, a
    later pass finds their deals without a link (``SyncStatus.unlinked``)."""
    notices: list[SyncError] = field(default_factory=list)
    """What the pass must report that is no record's failure (the mass-delete breaker)."""

    def result(self) -> SyncResult:
        errors = [failure.as_error() for failure in self.failures] + self.notices
        return SyncResult(
            pushed=self.pushed,
            pulled=self.pulled,
            conflicts=self.conflicts,
            created=self.created,
            trashed=self.trashed,
            errors=errors,
            deferred=len(self.deferred) + self.creates_left,
        )


CREATE_BATCH = 20
"""Deals created per ``upsert_opportunities`` call: one key lookup each on Notion (two requests,
live pages and the trash: 9% of a batch's), and the time budget is checked between batches, so a
batch started just before the deadline ends a few seconds after it at 3 requests/s, well inside
the interval."""
DEFERRED = "deferred: the pass's time budget ran out"
_ACTIVITY_FIELDS = set(ActivityCreate.model_fields)


class Executor:
    """Writes plans to both sides, at most ``concurrency`` records at a time (the adapters pace
    their own requests under the backend's rate limit)."""

    def __init__(
        self, external: CRMAdapter, status: SyncStatus, *, deadline: float | None = None, concurrency: int = 8
    ) -> None:
        self.external = external
        self.status = status
        self.repository = status.repository
        self.deadline = deadline
        """``time.monotonic()`` after which no record is started; the rest waits in the ledger."""
        self._slots = asyncio.Semaphore(concurrency)

    def _out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    async def _each(self, items: Sequence[T], work: Callable[[T], Awaitable[None]]) -> None:
        async def slot(item: T) -> None:
            async with self._slots:
                await work(item)

        await asyncio.gather(*(slot(item) for item in items))

    async def run(self, plan: PassPlan) -> Tally:
        """Carry out a pass's plan: links first, then adoptions and creates, then field writes."""
        tally = Tally(failures=list(plan.failures), notices=list(plan.notices), creates_left=plan.creates_waiting)
        await self.status.set_vanished(plan.vanished, vanished=True)
        await self.status.set_vanished(plan.found_again, vanished=False)
        await self.status.drop_waiting_restores(plan.restores_dropped)
        await self.status.relink(plan.relinks)
        await self.link(plan.links)
        await self.adopt(plan.adoptions, tally)
        await self._each(plan.key_writes, lambda pair: self._write_key(pair[0], pair[1], tally))
        await self.create_external(plan.creates, self.external.mapped_fields, tally)
        await self._each(plan.deletes, lambda action: self._lifecycle(action, tally))
        await self._each(plan.duplicates, lambda pair: self._trash_duplicate(pair[0], pair[1], tally))
        await self.apply(plan.records, tally)
        await self.append_activities(plan.activities, tally)
        return tally

    async def _trash_duplicate(self, record_id: UUID, external_id: str, tally: Tally) -> None:
        try:
            await self.external.archive_opportunity(external_id)
        except FATAL_ERRORS:
            raise
        except Exception as error:
            reason = _reason(f"trashing the duplicate {external_id} failed", error)
            tally.failures.append(LedgerEntry(str(record_id), reason, Side.EXTERNAL))
            return
        tally.trashed += 1

    async def _lifecycle(self, action: DeleteAction, tally: Tally) -> None:
        """Archive or restore one pair (the external side first, then the deal and the link's
        state in one transaction). Nothing is ever deleted: a deal is archived, a page trashed."""
        kind, record_id = action.action, action.record_id
        try:
            if kind is Lifecycle.TRASH:
                await self.external.archive_opportunity(action.external_id)
            elif kind is Lifecycle.RESTORE_EXTERNAL:
                await self.external.restore_opportunity(action.external_id)
        except FATAL_ERRORS:
            raise
        except NotImplementedError as error:  # the CRM's API cannot restore: a person does it there
            reason = _reason(f"{kind} failed", error) + " (waiting for that: not retried)"
            tally.failures.append(LedgerEntry(str(record_id), reason, Side.EXTERNAL, RESTORE_BY_HAND))
            return
        except Exception as error:
            tally.failures.append(LedgerEntry(str(record_id), _reason(f"{kind} failed", error), Side.EXTERNAL))
            return
        archived = kind in (Lifecycle.TRASH, Lifecycle.ARCHIVE, Lifecycle.MARK_ARCHIVED)
        async with self.status.transaction(actor=Actor.HUMAN) as connection:
            if kind in (Lifecycle.ARCHIVE, Lifecycle.RESTORE_PRIMARY):
                await self.repository.set_archived_in(connection, record_id, archived=archived)
            await self.status.set_archived(connection, record_id, archived=archived)
        tally.trashed += kind in (Lifecycle.TRASH, Lifecycle.ARCHIVE)

    # --- linked records -----------------------------------------------------------------------

    async def apply(self, plans: Sequence[RecordPlan], tally: Tally) -> None:
        """Push in batches of the adapter's ``write_batch_size`` (one ``write_opportunities`` call
        each, the time budget checked before each), then record each record of the batch; records
        with nothing to push are only recorded."""
        pushing = [plan for plan in plans if plan.push]
        for batch in chunks(pushing, self.external.capabilities.write_batch_size):
            if self._out_of_time():
                tally.deferred += [LedgerEntry(str(plan.record_id), DEFERRED, Side.EXTERNAL) for plan in batch]
                continue
            outcomes = await self._push(batch)
            await self._each(
                list(zip(batch, outcomes, strict=True)), lambda pair: self._record(pair[0], pair[1], tally)
            )
        await self._each([plan for plan in plans if not plan.push], lambda plan: self._pull_only(plan, tally))

    async def _push(self, batch: Sequence[RecordPlan]) -> list[WriteOutcome]:
        """The batch's external writes, one outcome per record: an update the model refuses fails
        its record alone, a batch that fails as a whole fails each of its records (as their single
        writes would), and an error that concerns every record (``FATAL_ERRORS``) stops the pass."""
        updates: dict[int, tuple[str, OpportunityUpdate]] = {}
        outcomes: dict[int, WriteOutcome] = {}
        for index, plan in enumerate(batch):
            try:
                updates[index] = (plan.external_id, OpportunityUpdate(**plan.push))
            except ValidationError as error:
                outcomes[index] = WriteOutcome(plan.external_id, error)
        if updates:
            try:
                written = await self.external.write_opportunities(list(updates.values()))
            except FATAL_ERRORS:
                raise
            except Exception as error:  # a request of the batch failed after the adapter's retries
                written = [WriteOutcome(external_id, error) for external_id, _ in updates.values()]
            outcomes |= dict(zip(updates, written, strict=True))
        for outcome in outcomes.values():
            if isinstance(outcome.result, FATAL_ERRORS):
                raise outcome.result
        return [outcomes[index] for index in range(len(batch))]

    async def _pull_only(self, plan: RecordPlan, tally: Tally) -> None:
        if self._out_of_time():
            tally.deferred.append(LedgerEntry(str(plan.record_id), DEFERRED, Side.EXTERNAL))
            return
        await self._record(plan, None, tally)

    async def _record(self, plan: RecordPlan, pushed: WriteOutcome | None, tally: Tally) -> None:
        """One transaction: the pulled values into the deal store, the new base (with the values
        as written, when the push landed) and the audit entries."""
        base = dict(plan.base)
        audit = [entry for entry in plan.audit if entry.side is Side.PRIMARY]
        record = str(plan.record_id)
        if pushed is not None:
            if isinstance(pushed.result, Exception):
                tally.failures.append(_write_failure(record, pushed.result))
            else:
                base |= {name: getattr(pushed.result, name) for name in plan.push}
                audit += [entry for entry in plan.audit if entry.side is Side.EXTERNAL]
                tally.pushed += 1
        pull = self._valid_pull(plan, tally)
        async with self.status.transaction(actor=Actor.HUMAN) as connection:
            if pull:
                await self.repository.update_opportunity_in(connection, plan.record_id, OpportunityUpdate(**pull))
            base |= pull
            audit = [entry for entry in audit if entry.side is Side.EXTERNAL or entry.field in pull]
            await self.status.record_synced(connection, plan.record_id, plan.external_id, base, audit)
        tally.pulled += bool(pull)
        tally.conflicts += plan.conflicts

    @staticmethod
    def _valid_pull(plan: RecordPlan, tally: Tally) -> dict[str, Any]:
        """The pulled values the store accepts; each refused one (an unknown stage, a cleared
        name) goes to the ledger and the store keeps its value until it is fixed externally."""
        pull = dict(plan.pull)
        while pull:
            try:
                OpportunityUpdate(**pull)
            except ValidationError as error:
                refused = {str(problem["loc"][0]) for problem in error.errors() if problem["loc"]}
                if not refused & pull.keys():
                    raise
                for name in refused & pull.keys():
                    reason = f"the deal store refuses the external value: {_first_message(error, name)}"
                    tally.failures.append(LedgerEntry(str(plan.record_id), reason, Side.PRIMARY, name, pull.pop(name)))
            else:
                break
        return pull

    # --- records on one side only -------------------------------------------------------------

    async def create_external(self, records: Sequence[OpportunityRead], fields: frozenset[str], tally: Tally) -> None:
        """Create deals without a link on the external side, keyed by their id (idempotent there),
        and link each with the values sent as its base."""
        for start in range(0, len(records), CREATE_BATCH):
            batch = records[start : start + CREATE_BATCH]
            if self._out_of_time():
                tally.creates_left += len(batch)
                continue
            await self._create_batch(batch, fields, tally)

    async def _create_batch(self, records: Sequence[OpportunityRead], fields: frozenset[str], tally: Tally) -> None:
        sent = {record.id: {name: getattr(record, name) for name in fields} for record in records}
        creates = [OpportunityCreate(id=record.id, **sent[record.id]) for record in records]
        outcomes = await self.external.upsert_opportunities(creates)
        for record, outcome in zip(records, outcomes, strict=True):
            if not outcome.ok or outcome.external_id is None:
                reason = outcome.reason or "the external create failed"
                tally.failures.append(LedgerEntry(str(record.id), reason, Side.EXTERNAL))
                continue
            async with self.status.transaction() as connection:
                await self.status.record_synced(connection, record.id, outcome.external_id, sent[record.id])
            tally.created += 1

    async def adopt(self, pages: Sequence[tuple[str, dict[str, Any]]], tally: Tally) -> None:
        """Make deals of external records a human created (no sync key, no link), each with its
        link and base in the same transaction, then write each one's key back."""
        await self._each(pages, lambda page: self._adopt_one(page[0], page[1], tally))

    async def _adopt_one(self, external_id: str, values: dict[str, Any], tally: Tally) -> None:
        try:
            deal = OpportunityCreate(id=uuid4(), **{name: value for name, value in values.items() if value is not None})
        except ValidationError as error:
            reason = _reason("the external record cannot become a deal", error)
            tally.failures.append(LedgerEntry(external_id, reason, Side.PRIMARY))
            return
        assert deal.id is not None
        async with self.status.transaction(actor=Actor.HUMAN) as connection:
            await self.repository.create_opportunity_in(connection, self.status.tenant_id, deal)
            await self.status.record_synced(connection, deal.id, external_id, values)
        tally.created += 1
        await self._write_key(external_id, deal.id, tally)

    async def _write_key(self, external_id: str, record_id: UUID, tally: Tally) -> None:
        """Stamp the external record with its deal's key. A failure is retried next pass: the
        link exists, so the record is not adopted twice."""
        try:
            await self.external.link_opportunity(external_id, record_id)
        except FATAL_ERRORS:
            raise
        except Exception as error:
            tally.failures.append(
                LedgerEntry(str(record_id), _reason("writing the sync key failed", error), Side.EXTERNAL)
            )

    async def append_activities(self, activities: Sequence[QueuedActivity], tally: Tally) -> None:
        """Append the planned activities of linked deals (linked now: creates of this pass count),
        once each and in order per deal.

        Each send is marked attempted first; an attempted one is looked up on the external side
        before it is sent again (a crash may have come between the append and its record). A
        failure stops that deal's sequence until the next pass, so order holds.
        """
        linked = await self.status.links({a.deal_id for a in activities}) if activities else {}
        pending = [activity for activity in activities if activity.deal_id in linked]
        by_deal: dict[UUID, list[tuple[UUID, bool]]] = {}
        for activity in pending:
            by_deal.setdefault(activity.deal_id, []).append((activity.activity_id, activity.attempted))
        ids = (activity.activity_id for activity in pending)
        found = {a.id: a for a in await self.repository.get_activities(self.status.tenant_id, ids)}
        await self._each(list(by_deal.items()), lambda item: self._append_in_order(item[0], item[1], found, tally))

    async def _append_in_order(
        self, deal_id: UUID, queue: Sequence[tuple[UUID, bool]], found: Mapping[UUID, ActivityRead], tally: Tally
    ) -> None:
        for activity_id, attempted in queue:
            activity = ActivityCreate.model_validate(found[activity_id].model_dump(include=_ACTIVITY_FIELDS))
            try:
                landed = await self.external.find_activity(activity) if attempted else None
                if landed is None:
                    await self.status.activity_attempted(activity_id)
                    landed = await self.external.create_activity(activity)
            except FATAL_ERRORS:
                raise
            except Exception as error:
                reason = _reason(f"appending activity {activity_id} failed", error)
                tally.failures.append(LedgerEntry(str(deal_id), reason, Side.EXTERNAL, "activities"))
                return
            await self.status.activity_attempted(activity_id, landed)

    async def link(self, pairs: Sequence[tuple[UUID, str]]) -> None:
        """Link external records that carry a deal's key but have no link yet; no base yet, so
        the planner decides their fields as a first link."""
        for record_id, external_id in pairs:
            async with self.status.transaction() as connection:
                await self.status.record_synced(connection, record_id, external_id, {})


def _write_failure(record: str, error: Exception) -> LedgerEntry:
    """A refused external write in the ledger; one the backend refused for a value names its field."""
    reason = _reason("the external write failed", error)
    if isinstance(error, FieldMappingError):
        return LedgerEntry(record, reason, Side.EXTERNAL, error.field, error.value)
    return LedgerEntry(record, reason, Side.EXTERNAL)


def _first_message(error: ValidationError, name: str) -> str:
    return next((problem["msg"] for problem in error.errors() if problem["loc"][:1] == (name,)), str(error))


def _reason(what: str, error: BaseException) -> str:
    logger.warning("%s: %s", what, error)
    return f"{what}: {type(error).__name__}: {error}"
