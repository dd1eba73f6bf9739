"""Reading deals from HubSpot: by id in batches with property history (merged ids answering as
their survivor, the recycling bin asked for ids not found live), by sync key, every deal page by
page, and the changes since a cursor by search on the last-modified date; each deal mapped to
an ``ExternalOpportunityRead`` whose editors come from the history. Apart from the writes
(adapter.py) because reading past search's lag and cap is most of the connector."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid5

from pydantic import ValidationError

from crm_pipeline.batches import chunks
from crm_pipeline.crm.adapter import ChangeBatch, snapshot_change
from crm_pipeline.crm.errors import FieldMappingError, RecordGoneError
from crm_pipeline.crm.hubspot.api import MAX_BATCH, MAX_BATCH_WITH_HISTORY, MAX_SEARCH_PAGE, HubSpotObject, Version
from crm_pipeline.crm.hubspot.mapping import SYNC_KEY, decode, epoch_ms, parse_time
from crm_pipeline.crm.hubspot.setup import DEALS, HubSpotSetup
from crm_pipeline.models import Actor, ExternalOpportunityRead, FieldEdit

logger = logging.getLogger("crm_pipeline.crm.hubspot")

LAST_MODIFIED = "hs_lastmodifieddate"
MERGED_IDS = "hs_merged_object_ids"
HUMAN_SOURCES = frozenset({"CRM_UI", "IMPORT", "MOBILE_IOS", "MOBILE_ANDROID", "EMAIL", "SALES"})
"""History source types that are a person's doing; API and INTEGRATION writes are apps'."""
_ID_NAMESPACE = UUID("4b1f6c3e-2d8a-4e57-9c0b-7a3e5d9f1c26")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class HubSpotDealReads(HubSpotSetup):
    """Deals read by id, by sync key, all of them, or changed since a cursor."""

    async def _by_ids(self, external_ids: Sequence[str]) -> list[ExternalOpportunityRead]:
        """Live deals first; ids not found live are looked for in the recycling bin (one more
        request, only then), so a deleted deal reads as deleted (``in_trash``), not as gone. A deal
        that cannot be mapped raises ``FieldMappingError``, as on Notion: left out, it would read
        as deleted. An id merged into another deal answers as that deal (``self.merged`` remembers
        the pair)."""
        wanted = {i: n for n, i in enumerate(external_ids)}
        found: dict[str, ExternalOpportunityRead] = {}
        for record in await self._read(external_ids):
            found |= dict.fromkeys(self._answers_for(record.external_id, wanted), record)
        unreadable = self.read_errors
        missing = [i for i in external_ids if i not in found and i not in {e.record_id for e in unreadable}]
        for record in await self._read(missing, archived=True) if missing else []:
            found |= dict.fromkeys(self._answers_for(record.external_id, wanted), record)
        if unreadable or self.read_errors:  # asked for by id, an unreadable deal is no missing one
            raise (unreadable or self.read_errors)[0]
        return [found[i] for i in external_ids if i in found]

    async def _read(
        self, external_ids: Iterable[str], *, archived: bool = False, history: bool = True
    ) -> list[ExternalOpportunityRead]:
        """The deals' values and, with ``history``, their per-field editors (50 deals a request;
        without, 100 and no editors)."""
        stages = await self._stages()
        names = {stage_id: ours for ours, stage_id in stages.items()}
        ids = list(dict.fromkeys(external_ids))
        edits = self._history_properties() if history else []
        answers = await asyncio.gather(
            *(
                self.api.batch_read(DEALS, chunk, self._read_properties(), history=edits, archived=archived)
                for chunk in chunks(ids, MAX_BATCH_WITH_HISTORY if history else MAX_BATCH)
            )
        )
        self.read_errors = []
        records = []
        for answer in answers:
            for deal in answer.results:
                self._note_merges(deal, ids)
                try:
                    records.append(self._to_opportunity(deal, names))
                except FieldMappingError as error:
                    logger.warning("HubSpot deal skipped: %s", error)
                    self.read_errors.append(error)
        return records

    def _answers_for(self, external_id: str, wanted: Mapping[str, int]) -> list[str]:
        """The asked ids a record answers for: its own, and those merged into it."""
        merged = [old for old, new in self.merged.items() if new == external_id]
        return [i for i in [external_id, *merged] if i in wanted]

    def _note_merges(self, deal: HubSpotObject, asked: Sequence[str]) -> None:
        for absorbed in (deal.properties.get(MERGED_IDS) or "").split(";"):
            if absorbed and absorbed != deal.id and absorbed in asked:
                self.merged[absorbed] = deal.id

    def _read_properties(self) -> list[str]:
        return [p.name for p in self.property_map.values()] + [SYNC_KEY.name, LAST_MODIFIED, MERGED_IDS]

    def _history_properties(self) -> list[str]:
        return [p.name for p in self.property_map.values()] + [SYNC_KEY.name]

    async def _deal_for_key(self, key: str) -> str:
        found = await self._find_deal_by_key(key)
        if found is None:
            raise RecordGoneError(key, "no HubSpot deal holds this sync key")
        return found

    async def _find_deal_by_key(self, key: str) -> str | None:
        if key not in self._deal_by_key:
            answer = await self.api.batch_read(DEALS, [key], [SYNC_KEY.name], id_property=SYNC_KEY.name)
            for deal in answer.results:
                self._deal_by_key[key] = deal.id
        return self._deal_by_key.get(key)

    # --- changes ------------------------------------------------------------------------------------

    async def read_changes(self, cursor: str | None) -> ChangeBatch:
        """Deals modified since the cursor less the overlap, found by search (sorted by the
        last-modified date, re-anchored on the last date read before the 10,000-result cap), then
        read with history. The next cursor is the latest modification the search saw: the index
        lags writes, and what it had not seen yet lies after that mark."""
        since = _cursor_time(cursor)
        modified = await self._modified_since(max(0, epoch_ms(since - self.overlap)))
        latest = max(modified.values(), default=epoch_ms(since))
        records = await self._read(modified)
        changes = sorted(
            (snapshot_change(self.tenant_id, r, self.property_map) for r in records), key=lambda c: c.changed_at
        )
        mark = max(datetime.fromtimestamp(latest / 1000, tz=UTC), since)
        return ChangeBatch(changes, mark.isoformat(), list(self.read_errors))

    async def _modified_since(self, start_ms: int) -> dict[str, int]:
        """Id -> last-modified ms of every live deal modified at or after ``start_ms``."""
        found: dict[str, int] = {}
        anchor = start_ms
        while True:
            last = await self._search_window([_filter(LAST_MODIFIED, "GTE", anchor)], LAST_MODIFIED, found)
            if last is None:
                return found
            if found[last] == anchor:  # one millisecond holds more than a query returns
                await self._read_millisecond(anchor, found)
                anchor += 1
            else:
                anchor = found[last]

    async def _read_millisecond(self, moment: int, found: dict[str, int]) -> None:
        after_id = 0
        while True:
            filters = [_filter(LAST_MODIFIED, "EQ", moment), _filter("hs_object_id", "GT", after_id)]
            last = await self._search_window(filters, "hs_object_id", found)
            if last is None:
                return
            after_id = int(last)

    async def _search_window(self, filters: list[dict[str, str]], sort: str, found: dict[str, int]) -> str | None:
        """Page one query to its end, or to the result cap: then the last id read (None when the
        query was read to its end)."""
        after: str | None = None
        last: str | None = None
        while True:
            body: dict[str, Any] = {
                "filter_groups": [{"filters": filters}],
                "sorts": [{"propertyName": sort, "direction": "ASCENDING"}],
                "properties": [LAST_MODIFIED],
                "limit": MAX_SEARCH_PAGE,
            }
            if after is not None:
                body["after"] = after
            page = await self.api.search(DEALS, body)
            for deal in page.results:
                found[deal.id] = epoch_ms(
                    parse_time(deal.properties.get(LAST_MODIFIED) or "0", "updated_at", LAST_MODIFIED, deal.id)
                )
                last = deal.id
            if page.after is None:
                return None
            if int(page.after) + MAX_SEARCH_PAGE > self.search_result_cap:
                return last
            after = page.after

    async def read_trashed(self, cursor: str | None) -> ChangeBatch:
        """The recycling bin swept (search never shows archived deals): deals archived since the
        cursor less the overlap, each change carrying ``archived_at``."""
        since = _cursor_time(cursor)
        start = since - self.overlap
        archived = [r for r in await self._list_all(archived=True) if r.archived_at and r.archived_at >= start]
        changes = []
        for record in archived:
            change = snapshot_change(self.tenant_id, record, [*self.property_map, "archived_at"])
            changes.append(change.model_copy(update={"changed_at": record.archived_at}))
        latest = max((r.archived_at for r in archived if r.archived_at), default=since)
        return ChangeBatch(
            sorted(changes, key=lambda c: c.changed_at), max(latest, since).isoformat(), list(self.read_errors)
        )

    async def _list_all(self, archived: bool) -> list[ExternalOpportunityRead]:
        """Every live (or archived) deal: ids listed page by page (lists have no result cap, unlike
        search), then read with history."""
        ids: list[str] = []
        after: str | None = None
        while True:
            page = await self.api.list_page(DEALS, [LAST_MODIFIED], after=after, archived=archived)
            ids += [deal.id for deal in page.results]
            if page.after is None:
                break
            after = page.after
        return await self._read(ids, archived=archived)

    # --- records ------------------------------------------------------------------------------------

    def _to_opportunity(self, deal: HubSpotObject, stage_names: Mapping[str, str]) -> ExternalOpportunityRead:
        fields = {
            field: decode(deal.properties.get(prop.name), field, prop, stage_names, deal.id)
            for field, prop in self.property_map.items()
        }
        key = deal.properties.get(SYNC_KEY.name)
        try:
            sync_key = UUID(key) if key else None
        except ValueError:
            raise FieldMappingError(deal.id, "sync_key", SYNC_KEY.name, key, "not a UUID") from None
        try:
            record = ExternalOpportunityRead(
                **fields,
                id=uuid5(_ID_NAMESPACE, deal.id),
                external_id=deal.id,
                tenant_id=self.tenant_id,
                sync_key=sync_key,
                created_at=deal.created_at,
                updated_at=deal.updated_at,
                archived_at=deal.archived_at if deal.archived else None,
                in_trash=deal.archived,
                last_edited_by=self._editor(deal.history),
                field_edits=self._field_edits(deal.history),
                merged_ids=[i for i in (deal.properties.get(MERGED_IDS) or "").split(";") if i and i != deal.id],
            )
        except ValidationError as error:
            first = error.errors()[0]
            field = str(first["loc"][0]) if first["loc"] else "?"
            prop = self.property_map.get(field)
            raise FieldMappingError(
                deal.id, field, prop.name if prop else field, fields.get(field), first["msg"]
            ) from error
        if sync_key is not None:
            self._deal_by_key[str(sync_key)] = deal.id
        return record

    def _field_edits(self, history: Mapping[str, list[Version]]) -> dict[str, FieldEdit]:
        """Each mapped field's newest edit (its property's first history entry): who made it and when."""
        own = self._own_source(history)
        return {
            field: FieldEdit(actor=self._actor(versions[0], own), at=versions[0].timestamp)
            for field, prop in self.property_map.items()
            if (versions := history.get(prop.name))
        }

    def _editor(self, history: Mapping[str, list[Version]]) -> Actor:
        """Who made the newest edit to a mapped property (the record's last editor)."""
        newest = max(
            (versions[0] for versions in history.values() if versions), key=lambda v: v.timestamp, default=None
        )
        return Actor.HUMAN if newest is None else self._actor(newest, self._own_source(history))

    def _own_source(self, history: Mapping[str, list[Version]]) -> str | None:
        """This app's history ``sourceId``: ``app_source_id`` when set, else the source of the deal's
        newest sync-key value, which only the sync writes (None when a person wrote it, or no key
        was written yet: then no edit is taken for the sync's own)."""
        if self.app_source_id is not None:
            return self.app_source_id
        newest = next(iter(history.get(SYNC_KEY.name) or ()), None)
        if newest is None or newest.source_type in HUMAN_SOURCES:
            return None
        return newest.source_id or None

    @staticmethod
    def _actor(version: Version, own: str | None) -> Actor:
        """The sync for this app's own writes (source ``own``); anyone else's edit, a person's or
        another app's, is the external side's (``Actor.HUMAN``): taking another app's write for
        ours would let the deal store overwrite it."""
        ours = own is not None and version.source_type not in HUMAN_SOURCES and version.source_id == own
        return Actor.SYNC if ours else Actor.HUMAN


def _filter(name: str, operator: str, value: int) -> dict[str, str]:
    return {"propertyName": name, "operator": operator, "value": str(value)}


def _cursor_time(cursor: str | None) -> datetime:
    return datetime.fromisoformat(cursor) if cursor else _EPOCH
