"""What a pass reads, and the plan it makes of it.

For the records a pass touches (changed on either side, in the ledger, or due for
reconciliation) ``PassReader`` reads the links, bases and both sides' values, sorts out the
external records without a link (adopt, link, de-duplicate), archives and restores, and vanished
records, and hands the linked ones to the pure planner. It writes nothing: the executor does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from crm_pipeline.crm.adapter import CRMAdapter
from crm_pipeline.crm.errors import FieldMappingError
from crm_pipeline.crm.field_mapping import FieldOwnershipConfig
from crm_pipeline.crm.postgres import PostgresAdapter
from crm_pipeline.models import Actor, ChangeRecord, FieldEdit, OpportunityRead, RecordType, SyncError
from crm_pipeline.sync.entries import RESTORE_BY_HAND, LedgerEntry
from crm_pipeline.sync.merge import comparable
from crm_pipeline.sync.model import Side
from crm_pipeline.sync.planner import Lifecycle, PassPlan, RecordState, plan_deletes, plan_records
from crm_pipeline.sync.status import SyncStatus, decode_value

__all__ = ["PassReader", "unreadable_entries"]


@dataclass
class _ExternalView:
    """The latest of an external record's changes read this pass, merged."""

    values: dict[str, Any] = field(default_factory=dict)
    changed_at: datetime | None = None
    sync_key: UUID | None = None
    in_trash: bool = False
    edited_by: Actor | None = None
    """Who made the record's latest edit, when the external side says (None: unknown)."""
    merged_ids: list[str] = field(default_factory=list)
    """The external records a person merged into this one (their links move to it)."""
    field_edits: dict[str, FieldEdit] = field(default_factory=dict)
    """Per field, who made its newest edit and when, where the external side tells per field."""


@dataclass
class _Touched:
    """What a pass has read about the records it touches, step by step."""

    fields: frozenset[str]
    views: dict[str, _ExternalView]
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
    linked_views: dict[str, _ExternalView] = field(default_factory=dict)
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

    async def _merges(self, plan: PassPlan, views: Mapping[str, _ExternalView]) -> set[UUID]:
        """Links to records a person merged into another (``merged_ids``) move to the survivor:
        for the deal whose key it carries (or, carrying none and linked to none, the first deal).
        Other deals linked to merged records lost theirs: they are returned, for the
        pending-delete queue (the person's merge says they were one deal; archiving is theirs to
        approve), and get no writes, which the CRM would put on the survivor."""
        merged = {ext: view.merged_ids for ext, view in views.items() if view.merged_ids}
        if not merged:
            return set()
        absorbed = await self.status.links_by_external({i for ids in merged.values() for i in ids})
        survivors = await self.status.links_by_external(merged)
        away: set[UUID] = set()
        for survivor, ids in sorted(merged.items()):
            deals = sorted(absorbed[i] for i in ids if i in absorbed)
            key = views[survivor].sync_key
            keep = key if key in deals else None
            if keep is None and key is None and survivor not in survivors and deals:
                keep = deals[0]
            if keep is not None:
                plan.relinks.append((keep, survivor))
            away |= set(deals) - {keep}
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
        unlinked = sorted(record_ids - touched.links.keys())
        plan.creates = [
            touched.records[i] for i in unlinked if i in touched.records and not touched.records[i].archived_at
        ]
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
        """Plan archives and restores; the pairs whose fields travel this pass (live ones only)."""
        plan.vanished |= touched.merged_away
        plan.restores_dropped = {
            i for i in touched.restore_by_hand if i in touched.records and touched.records[i].archived_at is not None
        }
        waiting = (await self.status.pending_deletes()).keys() - plan.found_again
        live = {
            i: e
            for i, e in touched.links.items()
            if i in touched.records and i not in touched.gone | touched.merged_away | waiting
        }
        archived = await self.status.archived(live)
        plan.deletes = [
            action
            for action in plan_deletes(
                live,
                {i: touched.records[i].archived_at is not None for i in live},
                {external_id: view.in_trash for external_id, view in touched.linked_views.items()},
                archived,
            )
            if not (action.action is Lifecycle.RESTORE_EXTERNAL and action.record_id in touched.restore_by_hand)
        ]
        changing = {d.record_id: d.action for d in plan.deletes}
        return {
            i: e
            for i, e in live.items()
            if changing.get(i) is Lifecycle.MARK_LIVE or (i not in changing and i not in archived)
        }

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
        crowded = [ext for key, exts in keyed.items() if key not in linked and len(exts) > 1 for ext in exts]
        created = await self._created_times(crowded)
        for key, exts in keyed.items():
            if key not in existing:
                continue
            # One page per deal: the linked one stays (docs/architecture.md says why), else the
            # first created; duplicates, from a create that timed out yet landed, bring their
            # values in as edits, then go to the trash.
            keep = linked.get(key) or min(exts, key=lambda ext: (created.get(ext, _NEVER), ext))
            if key not in linked:
                plan.links.append((key, keep))
            plan.duplicates += [(key, ext) for ext in exts if ext != keep]
        return dict(plan.links)

    async def _created_times(self, external_ids: Sequence[str]) -> dict[str, datetime]:
        """When each of these external records was created (a change read does not say), read
        only for keys found on several records, so a pass without duplicates pays nothing. Ties
        within the external side's precision go to the lower id."""
        if not external_ids:
            return {}
        records = await self.external.get_opportunities(external_ids)
        return {_external_id(record): record.created_at for record in records}


_NEVER = datetime.max.replace(tzinfo=UTC)
"""The creation time of a record that could not be read: after every other."""


def _external_views(changes: Iterable[ChangeRecord], fields: Iterable[str]) -> dict[str, _ExternalView]:
    """Each external record's changes merged, oldest first (later values and times win)."""
    views: dict[str, _ExternalView] = {}
    wanted = set(fields)
    for change in sorted(changes, key=lambda c: c.changed_at):
        view = views.setdefault(change.record_id, _ExternalView())
        view.values |= {k: decode_value(k, v.new) for k, v in change.changes.items() if k in wanted}
        view.changed_at = change.changed_at
        view.sync_key = UUID(change.sync_key) if change.sync_key else view.sync_key
        view.edited_by = change.actor
        view.merged_ids = change.merged_ids or view.merged_ids
        view.field_edits |= {k: edit for k, edit in change.field_edits.items() if k in wanted}
        if "archived_at" in change.changes:
            view.in_trash = change.changes["archived_at"].new is not None
    return views


def _with_duplicate(kept: _ExternalView | None, duplicate: _ExternalView, base: Mapping[str, Any]) -> _ExternalView:
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
    return _ExternalView(values, changed_at, kept.sync_key, kept.in_trash)


def _view_of(record: OpportunityRead, fields: Iterable[str]) -> _ExternalView:
    sync_key = getattr(record, "sync_key", None)
    in_trash = bool(getattr(record, "in_trash", record.archived_at is not None))
    edited_by = getattr(record, "last_edited_by", None)
    wanted = set(fields)
    return _ExternalView(
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


def unreadable_entries(errors: Iterable[FieldMappingError]) -> list[LedgerEntry]:
    """External records left out of a read because a value could not be mapped, as ledger entries."""
    return [LedgerEntry(e.record_id or "", str(e), Side.EXTERNAL, e.field, e.value) for e in errors]


def _is_uuid(text: str) -> bool:
    try:
        UUID(text)
    except ValueError:
        return False
    return True
