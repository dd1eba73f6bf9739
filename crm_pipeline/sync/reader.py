"""The read phase of a pass: everything the plan needs, read once and frozen.

For the records a pass touches (changed on either side, in the ledger, due for reconciliation, or
waiting to be created) ``PassReader`` reads the ledger, the links, the deals, the external records
to read afresh, the bases, the link states and the queued activities, into one ``PassSnapshot``.
What to read next depends on what was read (a key found on an external record names a deal to
read): those steps ask the planner's pure functions, so the reads and the plan agree. It decides
and writes nothing: ``plan_pass`` plans over the snapshot, the executor writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from uuid import UUID

from crm_pipeline.crm.adapter import CRMAdapter
from crm_pipeline.crm.errors import FieldMappingError
from crm_pipeline.crm.postgres import PostgresAdapter
from crm_pipeline.models import ChangeRecord, OpportunityRead, RecordType
from crm_pipeline.sync.entries import RESTORE_BY_HAND, LedgerEntry, QueuedActivity
from crm_pipeline.sync.model import Side
from crm_pipeline.sync.pass_rules import (
    ExternalView,
    crowded,
    keys_carried,
    links_after_merges,
    merged_into_others,
    settled_candidates,
    sort_unlinked,
)
from crm_pipeline.sync.planner import PassSnapshot, deals_to_read, records_to_reread, touched_records
from crm_pipeline.sync.status import SyncStatus, decode_value

__all__ = ["PassReader", "unreadable_entries"]


class PassReader:
    """Reads one tenant's pass into a ``PassSnapshot`` (see the module docstring)."""

    def __init__(self, primary: PostgresAdapter, external: CRMAdapter, status: SyncStatus) -> None:
        self.primary = primary
        self.external = external
        self.status = status

    async def snapshot(
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
    ) -> PassSnapshot:
        """Read what the plan needs; writes nothing. External records that only re-read what was
        synced are left out (``settled_candidates``).

        ``unreadable``: the changed external records the change read could not map;
        ``read_external``: read every touched external record afresh; ``only_touched``: leave
        the ledger's records out; ``reconcile``: linked records to re-read in full;
        ``creates_per_pass``: create the first this many deals without a link (``SyncStatus.unlinked``)
        in place of the touched ones, beside those the ledger retries (None: the touched ones);
        ``feed``: the stretch of the change feed (since, until) ``primary_changes`` were read from,
        leaving out deals without a link (``read_primary``): the changes of those this pass links
        by key are read back from it, since they are decided as a first link.
        """
        fields = self.external.mapped_fields
        ledger = await self.status.errors()
        retry = set() if only_touched else {entry.record_id for entry in ledger if entry.field != RESTORE_BY_HAND}
        retry_deals = frozenset(r.id for r in await self.primary.get_opportunities(sorted(filter(_is_uuid, retry))))
        pages, failures = await self._read_pages(retry - {str(i) for i in retry_deals}, fields)
        views = _external_views(external_changes, fields) | pages
        external_links = await self.status.links_by_external(views.keys() | merged_into_others(views))
        held_back = {entry.record_id for entry in ledger}
        settled = await self.status.settled(settled_candidates(views, external_links, held_back), fields)
        views = {ext: view for ext, view in views.items() if external_links.get(ext) not in settled}
        external_links = {ext: deal for ext, deal in external_links.items() if deal not in settled}
        known, relinks, _ = links_after_merges(views, external_links)
        key_links, key_deals, created = await self._key_reads(views, known)
        by_key = dict(sort_unlinked(views, known, key_links, key_deals, created).links)
        new_links = by_key | dict(relinks)
        passed_over = await self.primary.read_changes_of(by_key, *feed) if feed and by_key else []
        primary_times = _field_times([*primary_changes, *passed_over])
        reconcile = reconcile or {}
        touched = touched_records(primary_times, known, new_links, retry_deals, reconcile)
        links = await self.status.links(touched)
        backlog, unlinked = await self.status.unlinked(creates_per_pass) if creates_per_pass is not None else (None, 0)
        to_read = deals_to_read(touched, links | new_links, retry_deals, backlog)
        deals = {deal.id: deal for deal in await self.primary.get_opportunities([str(i) for i in sorted(to_read)])}
        reread = records_to_reread(links | new_links, deals, retry_deals, reconcile, read_external=read_external)
        fresh, missing = await self._read_linked(list(reread.values()))
        pairs = (links | new_links).keys()
        logged = _new_activities(primary_changes)
        return PassSnapshot(
            fields=fields,
            views=views,
            primary_times=primary_times,
            retry_deals=retry_deals,
            restore_by_hand=frozenset(UUID(entry.record_id) for entry in ledger if entry.field == RESTORE_BY_HAND),
            external_links=external_links,
            key_links=key_links,
            key_deals=frozenset(key_deals),
            created=created,
            reconcile=reconcile,
            read_external=read_external,
            backlog=tuple(backlog) if backlog is not None else None,
            creates_waiting=unlinked - len(backlog or ()),
            links=links,
            deals=deals,
            fresh={_external_id(record): _view_of(record, fields) for record in fresh},
            unreadable=frozenset(external_id for external_id, _ in missing),
            link_count=await self.status.count_links(),
            pending_deletes=frozenset(await self.status.pending_deletes()),
            link_archived=frozenset(await self.status.archived(pairs)),
            bases=await self.status.bases(pairs),
            queued_activities=tuple(await self.status.pending_activities()),
            new_activities=tuple(logged),
            appended_activities=frozenset(
                await self.status.appended_activities(a.activity_id for a in logged) if logged else ()
            ),
            failures=(*failures, *unreadable_entries(e for _, e in missing), *unreadable_entries(unreadable)),
        )

    async def _key_reads(
        self, views: Mapping[str, ExternalView], known: Mapping[str, UUID]
    ) -> tuple[dict[UUID, str], set[UUID], dict[str, datetime]]:
        """For the keys that records without a link carry: those deals' links, which deals exist,
        and the creation times of records crowding one key (read only then: a pass without
        duplicates pays nothing)."""
        keys = keys_carried(views, known)
        if not keys:
            return {}, set(), {}
        links = await self.status.links(keys)
        deals = {r.id for r in await self.primary.get_opportunities([str(k) for k in keys])}
        ids = crowded(views, known, links)
        created = {_external_id(r): r.created_at for r in await self.external.get_opportunities(ids)} if ids else {}
        return links, deals, created

    async def _read_linked(
        self, external_ids: Sequence[str]
    ) -> tuple[list[OpportunityRead], list[tuple[str, FieldMappingError]]]:
        """These linked records read afresh, and those that could not be read with why (a value
        the connector cannot map: in the ledger, neither vanished nor synced until fixed). Read
        one by one only when the batch read fails."""
        try:
            return list(await self.external.get_opportunities(external_ids)), []
        except FieldMappingError:
            pass
        records, errors = [], []
        for external_id in external_ids:
            try:
                record = await self.external.get_opportunity(external_id)
            except FieldMappingError as error:
                errors.append((external_id, error))
                continue
            if record is not None:
                records.append(record)
        return records, errors

    async def _read_pages(
        self, external_ids: Iterable[str], fields: Iterable[str]
    ) -> tuple[dict[str, ExternalView], list[LedgerEntry]]:
        """External records named in the ledger (unreadable, or not yet made deals), read again."""
        views, failures = {}, []
        for external_id in sorted(external_ids):
            try:
                record = await self.external.get_opportunity(external_id)
            except FieldMappingError as error:
                failures += unreadable_entries([error])
                continue
            if record is not None:
                views[external_id] = _view_of(record, fields)
        return views, failures


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
