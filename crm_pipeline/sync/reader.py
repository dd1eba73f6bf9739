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
from crm_pipeline.models import ChangeRecord, OpportunityRead, RecordType, SyncError
from crm_pipeline.sync.merge import comparable
from crm_pipeline.sync.model import Side
from crm_pipeline.sync.planner import Lifecycle, PassPlan, RecordState, plan_deletes, plan_records
from crm_pipeline.sync.status import LedgerEntry, SyncStatus, decode_value

__all__ = ["PassReader", "unreadable_entries"]


@dataclass
class _ExternalView:
    """The latest of an external record's changes read this pass, merged."""

    values: dict[str, Any] = field(default_factory=dict)
    changed_at: datetime | None = None
    sync_key: UUID | None = None
    in_trash: bool = False


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
    ) -> PassPlan:
        """Read what the plan needs (links, bases, the touched records) and plan; writes nothing."""
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


def unreadable_entries(errors: Iterable[FieldMappingError]) -> list[LedgerEntry]:
    """External records left out of a read because a value could not be mapped, as ledger entries."""
    return [LedgerEntry(e.record_id or "", str(e), Side.EXTERNAL, e.field, e.value) for e in errors]


def _is_uuid(text: str) -> bool:
    try:
        UUID(text)
    except ValueError:
        return False
    return True
