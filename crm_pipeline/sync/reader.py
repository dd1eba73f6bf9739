"""What a pass reads, and the plan it makes of it.

For the records a pass touches (changed on either side, in the ledger, or due for
reconciliation) ``PassReader`` reads the links, bases and both sides' values, sorts out the
external records without a link (adopt, link, de-duplicate), archives and restores, and vanished
records, and hands the linked ones to the pure planner. It writes nothing: the executor does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from crm_pipeline.crm.adapter import CRMAdapter
from crm_pipeline.crm.errors import FieldMappingError
from crm_pipeline.crm.field_mapping import FieldOwnershipConfig
from crm_pipeline.crm.postgres import PostgresAdapter
from crm_pipeline.models import Actor, ChangeRecord, OpportunityRead, RecordType
from crm_pipeline.sync.entries import RESTORE_BY_HAND, LedgerEntry, QueuedActivity
from crm_pipeline.sync.merge import comparable
from crm_pipeline.sync.model import Side
from crm_pipeline.sync.pass_rules import (
    ExternalView,
    crowded,
    keys_carried,
    plan_activities,
    plan_creates,
    plan_lifecycle,
    plan_merges,
    plan_vanished,
    sort_unlinked,
)
from crm_pipeline.sync.planner import PassPlan, RecordState, plan_records
from crm_pipeline.sync.status import SyncStatus, decode_value

__all__ = ["PassReader", "unreadable_entries"]


@dataclass
class _Touched:
    """What a pass has read about the records it touches, step by step."""

    fields: frozenset[str]
    views: dict[str, ExternalView]
    """Every external record read this pass, linked or not, by external id."""
    primary_times: dict[UUID, dict[str, datetime]]
    record_ids: set[UUID]
    retry_deals: set[UUID]
    new_links: dict[UUID, str]
    restore_by_hand: set[UUID]
    merged_away: set[UUID]
    """Deals whose external record was merged into one that stays another deal's: vanished."""
    """Deals whose restore waits for a person in the CRM (``RESTORE_BY_HAND``): not tried again."""
    links: dict[UUID, str] = field(default_factory=dict)
    records: dict[UUID, OpportunityRead] = field(default_factory=dict)
    linked_views: dict[str, ExternalView] = field(default_factory=dict)
    """The external side of linked records, by external id (absent: not read, holds the base)."""
    gone: set[UUID] = field(default_factory=set)


class PassReader:
    """Reads one tenant's pass and plans it (see the module docstring)."""

    def __init__(
        self,
        primary: PostgresAdapter,
        external: CRMAdapter,
        status: SyncStatus,
        ownership: FieldOwnershipConfig,
        *,
        precision: timedelta,
        max_vanished_share: float,
    ) -> None:
        self.primary = primary
        self.external = external
        self.status = status
        self.field_ownership = ownership
        self.max_vanished_share = max_vanished_share
        self._precision = precision

    async def plan(
        self,
        primary_changes: Sequence[ChangeRecord],
        external_changes: Sequence[ChangeRecord],
        *,
        read_external: bool = False,
        only_touched: bool = False,
        reconcile: Mapping[UUID, str] | None = None,
        backlog: Sequence[UUID] | None = None,
    ) -> PassPlan:
        """Read what the plan needs (links, bases, the touched records) and plan; writes nothing.

        ``read_external``: read every touched external record afresh; ``only_touched``: leave
        the ledger's records out; ``reconcile``: linked records to re-read in full; ``backlog``:
        the deals without a link to create, in place of the touched ones (a later pass creates
        those the backlog leaves out), beside those the ledger retries.
        """
        plan = PassPlan()
        touched = await self._touched(plan, primary_changes, external_changes, only_touched=only_touched)
        await self._read_afresh(plan, touched, read_external=read_external, reconcile=reconcile or {}, backlog=backlog)
        live = await self._live_pairs(plan, touched)
        await self._field_plans(plan, touched, live)
        logged = _new_activities(primary_changes)
        appended = await self.status.appended_activities(a.activity_id for a in logged) if logged else set()
        plan.activities = plan_activities(await self.status.pending_activities(), logged, appended)
        return plan

    async def _touched(
        self,
        plan: PassPlan,
        primary_changes: Sequence[ChangeRecord],
        external_changes: Sequence[ChangeRecord],
        *,
        only_touched: bool,
    ) -> _Touched:
        """The records the changes and the ledger name, their links and primary values; external
        records without a link are sorted out (adopt, link, duplicate) on the way."""
        fields = self.external.mapped_fields
        views = _external_views(external_changes, fields)
        ledger = await self.status.errors()
        waiting = {UUID(entry.record_id) for entry in ledger if entry.field == RESTORE_BY_HAND}
        retry = set() if only_touched else {entry.record_id for entry in ledger if entry.field != RESTORE_BY_HAND}
        retry_deals = {r.id for r in await self.primary.get_opportunities(sorted(filter(_is_uuid, retry)))}
        views |= await self._read_pages(retry - {str(i) for i in retry_deals}, fields, plan)
        merged_away = await self._merges(plan, views)
        known = await self.status.links_by_external(views) | {ext: record for record, ext in plan.relinks}
        new_links = await self._new_links(views, known, plan) | dict(plan.relinks)
        primary_times = _field_times(primary_changes)
        record_ids = set(primary_times) | set(known.values()) | set(new_links) | retry_deals
        return _Touched(fields, views, primary_times, record_ids, retry_deals, new_links, waiting, merged_away)

    async def _merges(self, plan: PassPlan, views: Mapping[str, ExternalView]) -> set[UUID]:
        """Re-links after a person merged external records (``plan_merges``); the deals merged away."""
        merged = {ext: view.merged_ids for ext, view in views.items() if view.merged_ids}
        if not merged:
            return set()
        absorbed = await self.status.links_by_external({i for ids in merged.values() for i in ids})
        survivors = await self.status.links_by_external(merged)
        plan.relinks, away = plan_merges(views, absorbed, survivors.keys())
        return away

    async def _read_afresh(
        self,
        plan: PassPlan,
        touched: _Touched,
        *,
        read_external: bool,
        reconcile: Mapping[UUID, str],
        backlog: Sequence[UUID] | None,
    ) -> None:
        """Load links and deals, plan creates for deals without a link, and re-read external
        records: all touched ones when asked, else those retried from the ledger (their last
        write may not have landed, a human may have changed them since) and the reconciliation
        slice. Records not found are vanished."""
        record_ids = touched.record_ids | set(reconcile)
        touched.links = await self.status.links(record_ids) | touched.new_links
        if backlog is not None:  # the deals without a link: the backlog's, and failed creates to retry
            record_ids = (record_ids & touched.links.keys()) | touched.retry_deals | set(backlog)
        deals = await self.primary.get_opportunities([str(i) for i in sorted(record_ids)])
        touched.records = {deal.id: deal for deal in deals}
        plan.creates = plan_creates(record_ids, touched.links, touched.records)
        linked_ids = set(touched.links.values())
        touched.linked_views = {ext: view for ext, view in touched.views.items() if ext in linked_ids}
        wanted = touched.records.keys() if read_external else touched.retry_deals | set(reconcile)
        reread = touched.links.keys() & wanted
        external, unreadable = await self._read_linked([touched.links[i] for i in sorted(reread)], plan)
        fresh = {_external_id(record): _view_of(record, touched.fields) for record in external}
        touched.linked_views |= fresh
        read = {i: touched.links[i] for i in reread if touched.links[i] not in unreadable}
        touched.gone = await self._vanished(plan, read, fresh) | {i for i in reread if i not in read}

    async def _read_linked(self, external_ids: Sequence[str], plan: PassPlan) -> tuple[list[OpportunityRead], set[str]]:
        """These linked records read afresh, and the ids of those that could not be read (a value
        the connector cannot map: in the ledger, neither vanished nor synced until fixed). Read
        one by one only when the batch read fails."""
        try:
            return list(await self.external.get_opportunities(external_ids)), set()
        except FieldMappingError:
            pass
        records, unreadable = [], set()
        for external_id in external_ids:
            try:
                record = await self.external.get_opportunity(external_id)
            except FieldMappingError as error:
                plan.failures += unreadable_entries([error])
                unreadable.add(external_id)
                continue
            if record is not None:
                records.append(record)
        return records, unreadable

    async def _live_pairs(self, plan: PassPlan, touched: _Touched) -> dict[UUID, str]:
        """Plan archives and restores (``plan_lifecycle``); the pairs whose fields travel this pass."""
        plan.vanished |= touched.merged_away
        waiting = (await self.status.pending_deletes()).keys() - plan.found_again
        held_back = touched.gone | touched.merged_away | waiting
        archived = await self.status.archived(i for i in touched.links if i in touched.records and i not in held_back)
        lifecycle = plan_lifecycle(
            touched.links,
            touched.records,
            {external_id: view.in_trash for external_id, view in touched.linked_views.items()},
            archived,
            held_back,
            touched.restore_by_hand,
        )
        plan.deletes, plan.restores_dropped = lifecycle.deletes, lifecycle.restores_dropped
        return lifecycle.live

    async def _field_plans(self, plan: PassPlan, touched: _Touched, links: Mapping[UUID, str]) -> None:
        """Decide every field of the live pairs in one go (a duplicate's edits count as the
        external side's, and what comes in from one goes to the kept record too)."""
        bases = await self.status.bases(links)
        views = touched.linked_views
        kept_views = {}
        for record_id, duplicate in plan.duplicates:
            # a duplicate last edited by the sync itself is a create that landed late, as sent:
            # no person set its values, so none of them is an edit
            if record_id in links and touched.views[duplicate].edited_by is not Actor.SYNC:
                kept_views[record_id] = views.get(links[record_id])
                views[links[record_id]] = _with_duplicate(
                    kept_views[record_id], touched.views[duplicate], bases.get(record_id, {})
                )
        states = [
            RecordState(
                record_id,
                external_id,
                bases.get(record_id, {}),
                {name: getattr(touched.records[record_id], name) for name in touched.fields},
                touched.primary_times.get(record_id, {}),
                views[external_id].values if external_id in views else None,
                views[external_id].changed_at if external_id in views else None,
                views[external_id].field_edits if external_id in views else {},
            )
            for record_id, external_id in sorted(links.items())
        ]
        plan.records = plan_records(states, self.field_ownership, touched.fields, precision=self._precision)
        for record_plan in plan.records:
            if record_plan.record_id in kept_views:
                kept = kept_views[record_plan.record_id]
                held = kept.values if kept is not None else {}
                record_plan.push |= {
                    name: value
                    for name, value in record_plan.pull.items()
                    if kept is None or comparable(held.get(name)) != comparable(value)
                }

    async def _vanished(self, plan: PassPlan, read: Mapping[UUID, str], found: Mapping[str, Any]) -> set[UUID]:
        """The records read and not found (``plan_vanished``: queued, or held back by the breaker)."""
        vanished = plan_vanished(read, found.keys(), await self.status.count_links(), self.max_vanished_share)
        plan.vanished, plan.found_again, plan.notices = vanished.vanished, vanished.found_again, vanished.notices
        return vanished.gone

    async def _read_pages(
        self, external_ids: Iterable[str], fields: Iterable[str], plan: PassPlan
    ) -> dict[str, ExternalView]:
        """External records named in the ledger (unreadable, or not yet made deals), read again."""
        views = {}
        for external_id in sorted(external_ids):
            try:
                record = await self.external.get_opportunity(external_id)
            except FieldMappingError as error:
                plan.failures += unreadable_entries([error])
                continue
            if record is not None:
                views[external_id] = _view_of(record, fields)
        return views

    async def _new_links(
        self, views: Mapping[str, ExternalView], known: Mapping[str, UUID], plan: PassPlan
    ) -> dict[UUID, str]:
        """Sort the external records without a link (``sort_unlinked``); the new links, record ->
        external id. Creation times are read only for keys found on several records."""
        keys = keys_carried(views, known)
        linked = await self.status.links(keys) if keys else {}
        existing = {r.id for r in await self.primary.get_opportunities([str(k) for k in keys])} if keys else set()
        ids = crowded(views, known, linked)
        created = {_external_id(r): r.created_at for r in await self.external.get_opportunities(ids)} if ids else {}
        unlinked = sort_unlinked(views, known, linked, existing, created)
        plan.adoptions, plan.key_writes, plan.links = unlinked.adoptions, unlinked.key_writes, unlinked.links
        plan.duplicates, plan.failures = unlinked.duplicates, plan.failures + unlinked.failures
        return dict(plan.links)


def _external_views(changes: Iterable[ChangeRecord], fields: Iterable[str]) -> dict[str, ExternalView]:
    """Each external record's changes merged, oldest first (later values and times win)."""
    views: dict[str, ExternalView] = {}
    wanted = set(fields)
    for change in sorted(changes, key=lambda c: c.changed_at):
        view = views.setdefault(change.record_id, ExternalView())
        view.values |= {k: decode_value(k, v.new) for k, v in change.changes.items() if k in wanted}
        view.changed_at = change.changed_at
        view.sync_key = UUID(change.sync_key) if change.sync_key else view.sync_key
        view.edited_by = change.actor
        view.merged_ids = change.merged_ids or view.merged_ids
        view.field_edits |= {k: edit for k, edit in change.field_edits.items() if k in wanted}
        if "archived_at" in change.changes:
            view.in_trash = change.changes["archived_at"].new is not None
    return views


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


def _view_of(record: OpportunityRead, fields: Iterable[str]) -> ExternalView:
    sync_key = getattr(record, "sync_key", None)
    in_trash = bool(getattr(record, "in_trash", record.archived_at is not None))
    edited_by = getattr(record, "last_edited_by", None)
    wanted = set(fields)
    return ExternalView(
        {name: getattr(record, name) for name in wanted},
        record.updated_at,
        sync_key,
        in_trash,
        edited_by,
        list(getattr(record, "merged_ids", [])),
        {name: edit for name, edit in getattr(record, "field_edits", {}).items() if name in wanted},
    )


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


def _new_activities(changes: Iterable[ChangeRecord]) -> list[QueuedActivity]:
    """The activities these primary changes created."""
    return [
        QueuedActivity(
            UUID(change.record_id),
            UUID(change.changes["opportunity_id"].new),
            datetime.fromisoformat(change.changes["occurred_at"].new),
        )
        for change in changes
        if change.record_type is RecordType.ACTIVITY and "opportunity_id" in change.changes
    ]


def unreadable_entries(errors: Iterable[FieldMappingError]) -> list[LedgerEntry]:
    """External records left out of a read because a value could not be mapped, as ledger entries."""
    return [LedgerEntry(e.record_id or "", str(e), Side.EXTERNAL, e.field, e.value) for e in errors]


def _is_uuid(text: str) -> bool:
    try:
        UUID(text)
    except ValueError:
        return False
    return True
