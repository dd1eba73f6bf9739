"""NotionAdapter: deals as pages of a Notion data source (API 2025-09-03), via notion-client.

Every request goes through ``NotionCaller`` (pacing + retries, see client.py). Creates are made
idempotent with the Sync Key property: a keyed create first looks its key up and returns the page
already holding it, and after an uncertain failure the key is looked up again before anything is
sent again. Activities carry a reference derived from their id, matched the same way. Reads
page past the 10,000-row query cap with created_time windows, and past a minute holding more
pages than that by a unique_id property when there is one (paging.py). Property ids are bound
against the data source schema once, so renamed columns keep mapping. What binding found (the data
source, the bound properties, the bot user) is a ``NotionDiscovery`` a later process reuses
instead of asking again; a page read that no longer fits it has the schema asked again.

The class is layered: set-up and discovery (setup.py), page operations (page_store.py), contacts
and activities (activities.py), then here the deals' reads, writes and changes. Each layer is a
base class of the next, so all share one object's caches and lock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from crm_pipeline.batches import drain
from crm_pipeline.crm.adapter import (
    AdapterCapabilities,
    ChangeBatch,
    UpsertOutcome,
    activity_ref,
    batch_ids,
    snapshot_change,
)
from crm_pipeline.crm.errors import FieldMappingError, RecordGoneError, UncertainWriteError
from crm_pipeline.crm.notion.activities import NotionContactsAndActivities
from crm_pipeline.crm.notion.api import Parent
from crm_pipeline.crm.notion.client import has_code, is_retryable, is_uncertain, status_of
from crm_pipeline.crm.notion.codecs import sync_key_property, to_notion_properties
from crm_pipeline.crm.notion.errors import PageTrashedError
from crm_pipeline.crm.notion.page_store import is_trashed
from crm_pipeline.crm.notion.paging import all_of, timestamp_on_or_after
from crm_pipeline.crm.notion.setup import CONTACT_PROPERTY_MAP, BoundSource, NotionDiscovery, same_notion_id
from crm_pipeline.models import (
    ChangeRecord,
    ExternalOpportunityRead,
    OpportunityCreate,
    OpportunityFilter,
    OpportunityRead,
    OpportunityUpdate,
)

# Other code imports these from this module (they live in setup.py and activities.py).
__all__ = ["CONTACT_PROPERTY_MAP", "NotionAdapter", "NotionDiscovery", "activity_ref"]


class NotionAdapter(NotionContactsAndActivities):
    """A Notion database of deals as a CRM backend; ids are Notion page ids.

    Nothing touches the network before the first call: the data source, the property ids and the
    bot user are resolved then, once. ``aclose()`` closes the HTTP client.
    """

    capabilities = AdapterCapabilities(
        per_field_timestamps=False,
        old_values_in_changes=False,
        timestamp_resolution_seconds=60,
        bulk_writes=True,
    )

    # --- opportunities ------------------------------------------------------------------------------

    async def create_opportunity(self, opportunity: OpportunityCreate) -> str:
        return await self._create_record(await self._deals(), opportunity)

    async def update_opportunity(self, external_id: str, data: OpportunityUpdate) -> None:
        await self._update_record(await self._deals(), external_id, data.changes())

    async def get_opportunity(self, external_id: str) -> ExternalOpportunityRead | None:
        """The page as a deal; None when it does not exist, is not shared, is not a deal page, or
        the id is not a page id at all (Notion's ``object_not_found`` and ``validation_error``)."""
        from notion_client import APIErrorCode

        deals = await self._deals()
        try:
            page = await self.api.retrieve_page(external_id)
        except Exception as error:
            if has_code(error, APIErrorCode.ObjectNotFound) or has_code(error, APIErrorCode.ValidationError):
                return None
            raise
        if not same_notion_id((page.get("parent") or Parent()).get("data_source_id", ""), [deals.data_source_id]):
            return None
        return self._to_opportunity(page, deals, await self.bot_user_id())

    async def list_opportunities(self, filters: OpportunityFilter) -> list[OpportunityRead]:
        """Deals (``ExternalOpportunityRead``) matching ``filters``. Stage, updated_since and archived are sent to Notion;
        sorting, offset and limit are applied after every match has been read.

        ``updated_since`` is widened to the start of its minute (Notion's resolution), so a deal
        edited in that minute but before the instant may be included.
        """
        deals = await self._deals()
        filter_ = all_of(
            _stage_filter(deals, filters.deal_stage),
            _updated_filter(filters.updated_since),
        )
        trash_modes = {False: [False], True: [True], None: [False, True]}[filters.archived]
        pages = [page for in_trash in trash_modes for page in await self._query(deals, filter_, in_trash=in_trash)]
        records = await self._to_opportunities(pages, deals)
        ordered = _ordered(records, filters.order_by, descending=filters.descending)
        return list[OpportunityRead](ordered[filters.offset : filters.offset + filters.limit])

    async def archive_opportunity(self, external_id: str) -> ExternalOpportunityRead:
        """Move the page to Notion's trash (the API cannot delete); returns the trashed deal."""
        deals = await self._deals()
        page = await self._update_page(external_id, in_trash=True)
        return self._to_opportunity(page, deals, await self.bot_user_id())

    async def upsert_opportunities(self, records: Sequence[OpportunityCreate]) -> list[UpsertOutcome]:
        """Write a batch concurrently under the rate limit: create unknown sync keys, update known ones.

        A new page takes every field (model defaults included); an existing page takes only the
        fields explicitly set on the record (``record.changes()``), as the deal store's bulk upsert
        does, so a record carrying one changed field leaves the page's other properties alone.

        One record's mapping error or non-retryable API error becomes its failed outcome; every
        other record still goes through. Outcomes are in the order of ``records``. Keys are looked
        up in the trash too, so a deal trashed in Notion is reported, not created again. The same
        id twice in one batch is a ValueError before anything is sent (it would create two pages).
        """
        keys = batch_ids(records)
        deals = await self._deals()
        await self._find_pages_by_keys(deals, keys, include_trash=True)
        return list(await asyncio.gather(*(self._upsert_one(deals, record) for record in records)))

    async def _upsert_one(self, deals: BoundSource, record: OpportunityCreate) -> UpsertOutcome:
        if record.id is None:
            return UpsertOutcome(
                "",
                "failed",
                reason="a record needs an id (its sync key) to be upserted",
            )
        record_id = str(record.id)
        try:
            page_id = self._page_by_key.get(record_id)
            if page_id is None:
                properties = to_notion_properties(record, deals.properties, record_id=record_id)
                created = await self._create_page(deals, properties, record_id)
                return UpsertOutcome(record_id, "created", created)
            properties = to_notion_properties(record.changes(), deals.properties, record_id=record_id)
            if properties:  # nothing mapped was set: nothing to send
                await self._update_page(page_id, properties=properties)
            return UpsertOutcome(record_id, "updated", page_id)
        except FieldMappingError as error:
            return UpsertOutcome(
                record_id,
                "failed",
                property_name=error.property_name,
                reason=str(error),
            )
        except PageTrashedError as error:
            return UpsertOutcome(record_id, "failed", error.page_id, reason=str(error))
        except Exception as error:
            if status_of(error) is None and not is_retryable(error):
                raise
            return UpsertOutcome(record_id, "failed", reason=f"Notion refused the write: {error}")

    # --- changes ------------------------------------------------------------------------------------

    async def get_changes_since(self, since: datetime) -> list[ChangeRecord]:
        """Every deal page edited since ``since - overlap`` (at least two minutes: Notion rounds
        edit times down to the minute), once per page, oldest edit first.

        Notion keeps no old values, so each mapped field's current value is reported as ``new``;
        a change seen in an earlier call may be reported again and callers compare values.
        """
        deals = await self._deals()
        start = since - self.overlap
        pages = await self._query(deals, timestamp_on_or_after("last_edited_time", start))
        records = await self._to_opportunities(pages, deals)
        # each record let go once it is a change, as each page once it is a record
        changes = [snapshot_change(self.tenant_id, record, deals.properties) for record in drain(records)]
        return sorted(changes, key=lambda change: change.changed_at)

    async def read_changes(self, cursor: str | None) -> ChangeBatch:
        """Pages edited since the cursor (an edit time) less the overlap, as ``get_changes_since``
        reads them (one query when few changed); the next cursor is the latest edit time read
        (or the same cursor when nothing was)."""
        since = _cursor_time(cursor)
        changes = await self.get_changes_since(since)
        return _change_batch(changes, since, self.read_errors)

    async def read_trashed(self, cursor: str | None) -> ChangeBatch:
        """Pages moved to (or edited in) the trash since the cursor less the overlap; each change
        carries ``archived_at`` (Notion's queries leave trashed pages out unless asked)."""
        since = _cursor_time(cursor)
        deals = await self._deals()
        pages = await self._query(deals, timestamp_on_or_after("last_edited_time", since - self.overlap), in_trash=True)
        trashed = []
        for record in await self._to_opportunities(pages, deals):
            trashed.append(snapshot_change(self.tenant_id, record, [*deals.properties, "archived_at"]))
        return _change_batch(trashed, since, self.read_errors)

    async def get_opportunities(self, external_ids: Sequence[str]) -> list[OpportunityRead]:
        """The deal pages with these ids, read concurrently under the rate limit; missing ones left out."""
        found = await asyncio.gather(*(self.get_opportunity(external_id) for external_id in external_ids))
        return [record for record in found if record is not None]

    async def write_opportunity(self, external_id: str, data: OpportunityUpdate) -> ExternalOpportunityRead:
        """Update the page; the deal as written, from Notion's answer (no extra request). Nothing
        mapped to write: the page is read instead."""
        deals = await self._deals()
        properties = to_notion_properties(data.changes(), deals.properties, record_id=external_id)
        if not properties:
            current = await self.get_opportunity(external_id)
            if current is None:
                raise RecordGoneError(external_id, "no such deal page")
            return current
        from notion_client import APIErrorCode

        try:
            page = await self.api.update_page(external_id, properties=properties, resend_when_uncertain=False)
        except Exception as error:
            if is_uncertain(error):
                return await self._landed(external_id, properties, deals, error)
            if has_code(error, APIErrorCode.ObjectNotFound):
                raise RecordGoneError(external_id, "no such page, or it is no longer shared") from error
            if has_code(error, APIErrorCode.ValidationError) and is_trashed(await self.api.retrieve_page(external_id)):
                raise PageTrashedError(external_id) from error
            raise
        return self._to_opportunity(page, deals, await self.bot_user_id())

    async def _landed(
        self, external_id: str, sent: Mapping[str, Any], deals: BoundSource, error: BaseException
    ) -> ExternalOpportunityRead:
        """After a PATCH whose answer was lost: the page as written if every value landed (compared
        as property JSON), else UncertainWriteError: never a blind resend, which could overwrite a
        human's edit made meanwhile."""
        current = await self.get_opportunity(external_id)
        if current is None:
            raise RecordGoneError(external_id, "no such deal page") from error
        held = to_notion_properties(current, deals.properties, record_id=external_id)
        if all(held.get(key) == value for key, value in sent.items()):
            return current
        raise UncertainWriteError(external_id, error) from error

    async def restore_opportunity(self, external_id: str) -> ExternalOpportunityRead:
        """Take the page out of Notion's trash; returns the restored deal."""
        deals = await self._deals()
        page = await self.api.update_page(external_id, in_trash=False)
        return self._to_opportunity(page, deals, await self.bot_user_id())

    async def link_opportunity(self, external_id: str, sync_key: UUID) -> None:
        """Write the Sync Key onto a page a human created, so it is linked to its new deal."""
        deals = await self._deals()
        assert deals.sync_key is not None
        await self._update_page(external_id, properties=sync_key_property(sync_key, deals.sync_key))
        self._page_by_key[str(sync_key)] = external_id


def _cursor_time(cursor: str | None) -> datetime:
    return datetime.fromisoformat(cursor) if cursor is not None else datetime(1970, 1, 1, tzinfo=UTC)


def _change_batch(changes: list[ChangeRecord], since: datetime, unreadable: list[FieldMappingError]) -> ChangeBatch:
    latest = max((change.changed_at for change in changes), default=since)
    return ChangeBatch(sorted(changes, key=lambda c: c.changed_at), max(latest, since).isoformat(), list(unreadable))


def _stage_filter(deals: BoundSource, stage: str | list[str] | None) -> dict[str, Any] | None:
    if stage is None:
        return None
    stages = [stage] if isinstance(stage, str) else stage
    key = deals.properties["deal_stage"].key
    conditions = [{"property": key, "select": {"equals": name}} for name in stages]
    return conditions[0] if len(conditions) == 1 else {"or": conditions}


def _updated_filter(since: datetime | None) -> dict[str, Any] | None:
    return None if since is None else timestamp_on_or_after("last_edited_time", since)


def _ordered(records: list[ExternalOpportunityRead], field: str, *, descending: bool) -> list[ExternalOpportunityRead]:
    """Sorted by ``field``; records without a value come last in either direction."""
    valued = [record for record in records if getattr(record, field) is not None]
    empty = [record for record in records if getattr(record, field) is None]
    return sorted(valued, key=lambda record: getattr(record, field), reverse=descending) + empty
