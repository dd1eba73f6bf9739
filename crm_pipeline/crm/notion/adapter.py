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
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

import httpx
from pydantic import SecretStr, ValidationError

from crm_pipeline.batches import chunks
from crm_pipeline.crm.adapter import (
    AdapterCapabilities,
    ChangeBatch,
    CRMAdapter,
    Discovery,
    UpsertOutcome,
    batch_ids,
    discovery_basis,
    snapshot_change,
)
from crm_pipeline.crm.errors import FieldMappingError, PropertySchemaError, RecordGoneError, UncertainWriteError
from crm_pipeline.crm.notion.api import NotionAPI, Page, Parent
from crm_pipeline.crm.notion.client import (
    NotionCaller,
    RateLimit,
    RetryPolicy,
    has_code,
    is_retryable,
    is_uncertain,
    load_sdk,
    sdk_client,
    status_of,
)
from crm_pipeline.crm.notion.codecs import (
    from_notion_properties,
    read_sync_key,
    sync_key_property,
    to_notion_properties,
)
from crm_pipeline.crm.notion.errors import (
    DataSourceConfigError,
    OpportunityPageNotFoundError,
    PageTrashedError,
)
from crm_pipeline.crm.notion.paging import (
    all_of,
    parse_time,
    query_all,
    timestamp_on_or_after,
)
from crm_pipeline.crm.notion.properties import (
    NOTION_PROPERTY_MAP,
    SYNC_KEY,
    NotionProperty,
    PropertyMap,
    PropertySpec,
    ResolvedPropertyMap,
    as_property_map,
    property_bindings,
    resolve_property_ids,
)
from crm_pipeline.crm.retrying import token_digest
from crm_pipeline.models import (
    ActivityCreate,
    Actor,
    ChangeRecord,
    ContactCreate,
    ContactUpdate,
    ExternalOpportunityRead,
    OpportunityCreate,
    OpportunityFilter,
    OpportunityRead,
    OpportunityUpdate,
)

if TYPE_CHECKING:
    from notion_client import AsyncClient

logger = logging.getLogger("crm_pipeline.crm.notion")

CONTACT_PROPERTY_MAP: dict[str, PropertySpec] = {
    "name": {"notion_name": "Name", "type": "title"},
    "email": {"notion_name": "Email", "type": "email"},
    "phone": {"notion_name": "Phone", "type": "rich_text"},
    "title": {"notion_name": "Title", "type": "rich_text"},
    "company": {"notion_name": "Company", "type": "rich_text"},
}
"""Default contacts data source layout; pass ``contact_property_map`` for another one."""

_ACTIVITY_TEXT = NotionProperty("Activity", "rich_text")
_SYNC_KEY_FIELD = "sync_key"
_KEYS_PER_LOOKUP = 50  # two conditions per key (lower and upper case); Notion allows 100 per compound filter
MIN_OVERLAP = timedelta(minutes=2)


@dataclass(frozen=True)
class _BoundSource:
    """A data source with its mapped properties bound to ids."""

    data_source_id: str
    properties: ResolvedPropertyMap
    sync_key: NotionProperty | None
    order_key: str | None
    """The id of a unique_id property, if the data source has one: reads past a minute holding
    more pages than a query returns (see paging.py)."""

    def bindings(self) -> dict[str, str]:
        """field -> property id of every bound property, the Sync Key's included."""
        key = {_SYNC_KEY_FIELD: self.sync_key} if self.sync_key is not None else {}
        return property_bindings({**self.properties, **key})


class NotionDiscovery(Discovery):
    """What a Notion adapter asks before it can read or write deals: the database's data source,
    the mapped properties bound to ids (with their types and a closed select's options: the
    schema's fingerprint), the ordering property, and the integration's bot user."""

    data_source_id: str
    bot_user_id: str
    properties: dict[str, NotionProperty]
    sync_key: NotionProperty
    order_key: str | None


class NotionAdapter(CRMAdapter):
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

    def __init__(
        self,
        token: str | SecretStr,
        database_id: str,
        *,
        data_source_id: str | None = None,
        base_url: str | None = None,
        tenant_id: str = "default",
        contacts_data_source_id: str | None = None,
        property_map: PropertyMap = NOTION_PROPERTY_MAP,
        contact_property_map: PropertyMap = CONTACT_PROPERTY_MAP,
        bindings: Mapping[str, str] | None = None,
        retry: RetryPolicy | None = None,
        rate_limit: RateLimit | None = None,
        overlap: timedelta = MIN_OVERLAP,
        timeout_s: float = 30.0,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        load_sdk()  # a missing notion-client fails here, not at the first call
        self._token = token if isinstance(token, SecretStr) else SecretStr(token)
        self.database_id = database_id
        self.data_source_id = data_source_id
        self.base_url = base_url
        self.tenant_id = tenant_id
        self.contacts_data_source_id = contacts_data_source_id
        self.overlap = max(overlap, MIN_OVERLAP)
        self._property_map = as_property_map(property_map)
        self._contact_property_map = as_property_map(contact_property_map)
        self._bindings = dict(bindings or {})
        self._basis = _basis(database_id, data_source_id, base_url, self._property_map, self._bindings)
        self._configured_data_source_id = data_source_id
        self._timeout_s = timeout_s
        self._http_client = http_client
        self._caller = NotionCaller(
            token_digest(self._token.get_secret_value()),
            retry or RetryPolicy(),
            rate_limit or RateLimit(),
        )
        self._client: AsyncClient | None = None
        self._api: NotionAPI | None = None
        self._opportunities: _BoundSource | None = None
        self._contacts: _BoundSource | None = None
        self._bot_id: str | None = None
        self._schema_asked = False
        """Whether the deals' bindings were asked for in this process (not reused from an earlier one)."""
        self._setup = asyncio.Lock()
        self._page_by_key: dict[str, str] = {}
        self.read_errors: list[FieldMappingError] = []
        """Pages the last list/changes call left out because a value could not be mapped."""

    def __repr__(self) -> str:
        return (
            f"NotionAdapter(database_id={self.database_id!r}, data_source_id={self.data_source_id!r}, "
            f"base_url={self.base_url!r}, tenant_id={self.tenant_id!r})"
        )

    @property
    def mapped_fields(self) -> frozenset[str]:
        """The fields of the property map: only these have a Notion property."""
        return frozenset(self._property_map)

    # --- lifecycle and lazy set-up ----------------------------------------------------------------

    @property
    def client(self) -> AsyncClient:
        """The notion_client.AsyncClient, built on first use (one per adapter)."""
        if self._client is None:
            self._client = sdk_client(
                self._token.get_secret_value(),
                base_url=self.base_url,
                timeout_s=self._timeout_s,
                http_client=self._http_client,
            )
        return self._client

    @property
    def api(self) -> NotionAPI:
        """The endpoints in use, typed, paced and retried (see api.py)."""
        if self._api is None:
            self._api = NotionAPI(self.client, self._caller)
        return self._api

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
            self._api = None

    @property
    def bindings(self) -> dict[str, str]:
        """field -> property id, once resolved: persist and pass back as ``bindings=``."""
        return property_bindings(self._opportunities.properties) if self._opportunities else dict(self._bindings)

    async def _deals(self) -> _BoundSource:
        """The deals data source, resolved and bound on first use (or reused: ``reuse_discovery``)."""
        async with self._setup:
            if self._opportunities is None:
                ds_id = await self._pick_data_source()
                self._opportunities = await self._bind(ds_id, self._property_map, self._bindings, require_key=True)
                self.data_source_id = ds_id
                self._schema_asked = True
        return self._opportunities

    # --- discovery kept across processes ----------------------------------------------------------

    def discovery(self) -> NotionDiscovery | None:
        deals = self._opportunities
        if deals is None or deals.sync_key is None or self._bot_id is None:
            return None
        return NotionDiscovery(
            basis=self._basis,
            data_source_id=deals.data_source_id,
            bot_user_id=self._bot_id,
            properties=deals.properties,
            sync_key=deals.sync_key,
            order_key=deals.order_key,
        )

    def reuse_discovery(self, discovery: Mapping[str, Any]) -> bool:
        found = NotionDiscovery.reusable(discovery, self._basis)
        if found is None:
            return False
        self._opportunities = _BoundSource(found.data_source_id, found.properties, found.sync_key, found.order_key)
        self.data_source_id = found.data_source_id
        self._bot_id = found.bot_user_id
        self._schema_asked = False
        return True

    async def rediscover(self, *, everything: bool) -> None:
        """``everything``: the database, data source, bindings and bot user asked again, now.
        Otherwise the data source's schema, when the bindings were reused: one request. Both bind
        by the ids already known, so a renamed column still maps and a property deleted (or made
        again under its old name) is a ``PropertySchemaError``."""
        async with self._setup:
            known = self._opportunities
            if known is None or (self._schema_asked and not everything):
                return
            bindings = {**self._bindings, **known.bindings()}
            if everything:
                self.data_source_id = self._configured_data_source_id
            ds_id = await self._pick_data_source() if everything else known.data_source_id
            self._opportunities = None  # a schema that no longer fits leaves nothing bound
            self._opportunities = await self._bind(ds_id, self._property_map, bindings, require_key=True)
            self.data_source_id = ds_id
            self._schema_asked = True
            if everything:
                self._bot_id = (await self.api.me())["id"]

    async def _contact_source(self) -> _BoundSource:
        if self.contacts_data_source_id is None:
            raise DataSourceConfigError("create_contact needs contacts_data_source_id")
        async with self._setup:
            if self._contacts is None:
                self._contacts = await self._bind(
                    self.contacts_data_source_id,
                    self._contact_property_map,
                    {},
                    require_key=False,
                )
        return self._contacts

    async def _pick_data_source(self) -> str:
        """The configured data source, checked to belong to the database, or its only one.

        Several data sources and none chosen is an error: taking the first would silently write
        to whichever one Notion lists first.
        """
        database = await self.api.retrieve_database(self.database_id)
        sources = database["data_sources"]
        ids = [source["id"] for source in sources]
        if self.data_source_id is not None:
            if _same_id(self.data_source_id, ids):
                return self.data_source_id
            raise DataSourceConfigError(
                f"data source {self.data_source_id} is not in database {self.database_id} (it has {ids})"
            )
        if len(ids) == 1:
            return ids[0]
        listing = ", ".join(f"{s['id']} ({s.get('name', '')})" for s in sources) or "none"
        raise DataSourceConfigError(
            f"database {self.database_id} has {len(ids)} data sources ({listing}); pass data_source_id= to choose"
        )

    async def schema_problems(self) -> list[PropertySchemaError]:
        """Every mapped property (the Sync Key included) the deals data source lacks or has with
        another type, as binding would report it; empty when the adapter can use the data source."""
        ds_id = await self._pick_data_source()
        self.data_source_id = ds_id
        schema = (await self.api.retrieve_data_source(ds_id))["properties"]
        problems = []
        for field_name, prop in {**self._property_map, _SYNC_KEY_FIELD: SYNC_KEY}.items():
            try:
                resolve_property_ids({field_name: prop}, schema, self._bindings)
            except PropertySchemaError as error:
                problems.append(error)
        return problems

    async def _bind(
        self,
        ds_id: str,
        property_map: ResolvedPropertyMap,
        bindings: Mapping[str, str],
        *,
        require_key: bool,
    ) -> _BoundSource:
        """Bind the map to property ids; the Sync Key too (required for deals: idempotent creates)."""
        source = await self.api.retrieve_data_source(ds_id)
        schema = source["properties"]
        properties = resolve_property_ids(property_map, schema, bindings)
        key_map = {_SYNC_KEY_FIELD: SYNC_KEY}
        if require_key or SYNC_KEY.name in schema:
            sync_key: NotionProperty | None = resolve_property_ids(key_map, schema, bindings)[_SYNC_KEY_FIELD]
        else:
            sync_key = None
        order_key = next((entry["id"] for entry in schema.values() if entry.get("type") == "unique_id"), None)
        return _BoundSource(ds_id, properties, sync_key, order_key)

    async def bot_user_id(self) -> str:
        """Our integration's user id (GET /v1/users/me, cached): tells our edits from a human's."""
        if self._bot_id is None:
            me = await self.api.me()
            self._bot_id = me["id"]
        return self._bot_id

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
        if not _same_id((page.get("parent") or Parent()).get("data_source_id", ""), [deals.data_source_id]):
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

    async def _upsert_one(self, deals: _BoundSource, record: OpportunityCreate) -> UpsertOutcome:
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
        changes = [snapshot_change(self.tenant_id, record, deals.properties) for record in records]
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
            if has_code(error, APIErrorCode.ValidationError) and _in_trash(await self.api.retrieve_page(external_id)):
                raise PageTrashedError(external_id) from error
            raise
        return self._to_opportunity(page, deals, await self.bot_user_id())

    async def _landed(
        self, external_id: str, sent: Mapping[str, Any], deals: _BoundSource, error: BaseException
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

    # --- contacts and activities --------------------------------------------------------------------

    async def create_contact(self, contact: ContactCreate) -> str:
        return await self._create_record(await self._contact_source(), contact)

    async def update_contact(self, external_id: str, data: ContactUpdate) -> None:
        await self._update_record(await self._contact_source(), external_id, data.changes())

    async def create_activity(self, activity: ActivityCreate) -> str:
        """Append the activity as one paragraph to its deal's page; returns the block id.

        The deal page is found by sync key (cached). The paragraph's first line ends with a short
        reference derived from ``activity.id`` (``· ref 1a2b3c4d5e6f``; an id is generated for the
        call when missing). After an uncertain failure the page's blocks are searched for that
        reference before appending again, so an activity lands once, and a distinct activity with
        the same text is never taken for it.
        """
        deals = await self._deals()
        page_id = await self._page_for_key(deals, str(activity.opportunity_id))
        ref = activity_ref(activity.id or uuid4())
        paragraph = {
            "object": "block",
            "type": "paragraph",
            "paragraph": {"rich_text": _activity_rich_text(activity, ref)},
        }
        return await self.api.append_block_children(
            page_id, [paragraph], recover=lambda: self._find_paragraph(page_id, ref)
        )

    async def find_activity(self, activity: ActivityCreate) -> str | None:
        """The paragraph an earlier ``create_activity`` of this activity appended, if any."""
        if activity.id is None:
            return None
        page_id = await self._find_page_by_key(await self._deals(), str(activity.opportunity_id))
        return None if page_id is None else await self._find_paragraph(page_id, activity_ref(activity.id))

    async def _find_paragraph(self, page_id: str, ref: str) -> str | None:
        """The id of the page's paragraph carrying this activity reference, if an earlier append
        landed. The reference is read from the whole text (all rich-text items)."""
        cursor: str | None = None
        while True:
            response = await self.api.list_block_children(page_id, cursor)
            for block in response["results"]:
                paragraph = block.get("paragraph") or {}
                text = "".join(item.get("plain_text", "") for item in paragraph.get("rich_text", []))
                if ref in _refs_in(text):
                    return block["id"]
            cursor = response.get("next_cursor")
            if not response.get("has_more") or cursor is None:
                return None

    # --- pages: create, update, find ----------------------------------------------------------------

    async def _create_record(self, source: _BoundSource, data: OpportunityCreate | ContactCreate) -> str:
        """Create a page; with a sync key, return the page already holding the key instead.

        The key is checked in the cache, then looked up with one query, before the first POST: an
        earlier call (or an earlier run whose answer was lost) may already have created the page.
        """
        record_id = str(data.id) if data.id is not None else None
        properties = to_notion_properties(data, source.properties, record_id=record_id)
        if record_id is not None and source.sync_key is not None:
            existing = await self._find_page_by_key(source, record_id)
            if existing is not None:
                return existing
        return await self._create_page(source, properties, record_id)

    async def _update_record(self, source: _BoundSource, external_id: str, changes: Mapping[str, Any]) -> None:
        """Write the changed mapped fields; nothing is sent when none of them is mapped."""
        properties = to_notion_properties(changes, source.properties, record_id=external_id)
        if properties:
            await self._update_page(external_id, properties=properties)

    async def _create_page(self, source: _BoundSource, properties: dict[str, Any], key: str | None) -> str:
        """Create a page, stamped with its sync key when there is one; returns its id.

        With a key, an uncertain failure (timeout, dropped connection, 5xx/529/409) is followed by
        a lookup of the key before creating again; without one, such a failure is not retried.
        """
        recover: Callable[[], Awaitable[str | None]] | None = None
        if key is not None and source.sync_key is not None:
            properties = {**properties, **sync_key_property(key, source.sync_key)}
            recover = partial(self._find_page_by_key, source, key)
        page_id = await self.api.create_page(source.data_source_id, properties, recover=recover)
        if key is not None:
            self._page_by_key[key] = page_id
        return page_id

    async def _update_page(
        self, page_id: str, *, properties: Mapping[str, Any] | None = None, in_trash: bool | None = None
    ) -> Page:
        """PATCH a page; a trashed page becomes PageTrashedError.

        Notion refuses to edit a trashed page with a plain ``validation_error``, the same code as
        for a bad value, so on that code the page is read back to see whether it is in the trash.
        """
        from notion_client import APIErrorCode

        try:
            return await self.api.update_page(page_id, properties=properties, in_trash=in_trash)
        except Exception as error:
            if has_code(error, APIErrorCode.ValidationError) and _in_trash(await self.api.retrieve_page(page_id)):
                raise PageTrashedError(page_id) from error
            raise

    async def _page_for_key(self, deals: _BoundSource, key: str) -> str:
        """The page holding `key` (from the cache, else one lookup), or OpportunityPageNotFoundError."""
        page_id = await self._find_page_by_key(deals, key)
        if page_id is None:
            raise OpportunityPageNotFoundError(key)
        return page_id

    async def _find_page_by_key(self, source: _BoundSource, key: str) -> str | None:
        """The id of the page holding ``key`` (from the cache, else one lookup), or None."""
        key = _normal_key(key)
        await self._find_pages_by_keys(source, [key])
        return self._page_by_key.get(key)

    async def _find_pages_by_keys(
        self, source: _BoundSource, keys: Sequence[str], *, include_trash: bool = False
    ) -> None:
        """Fill the sync-key cache for ``keys`` not yet in it, 50 keys per query.

        ``rich_text equals`` is case-sensitive while a key reads back normalised, so each key is
        looked up both lower- and upper-cased (a page stamped by another tool with ``UUID.upper()``
        is still found); the pages found are cached under their normalised key.
        """
        assert source.sync_key is not None
        missing = [key for key in dict.fromkeys(map(_normal_key, keys)) if key not in self._page_by_key]
        for chunk in chunks(missing, _KEYS_PER_LOOKUP):
            spellings = dict.fromkeys(spelling for key in chunk for spelling in (key.lower(), key.upper()))
            conditions = [{"property": source.sync_key.key, "rich_text": {"equals": text}} for text in spellings]
            filter_ = conditions[0] if len(conditions) == 1 else {"or": conditions}
            for in_trash in (False, True) if include_trash else (False,):
                for page in await self._query(source, filter_, in_trash=in_trash):
                    self._remember(page, source)

    def _remember(self, page: Page, source: _BoundSource) -> None:
        """Cache the page's sync key (a malformed key is simply not cached)."""
        if source.sync_key is None:
            return
        try:
            key = read_sync_key(page["properties"], source.sync_key)
        except FieldMappingError:
            return
        if key is not None:
            self._page_by_key.setdefault(key, page["id"])

    async def _query(
        self,
        source: _BoundSource,
        filter_: dict[str, Any] | None,
        *,
        in_trash: bool = False,
    ) -> list[Page]:
        return await query_all(
            partial(self.api.query_data_source, source.data_source_id),
            filter_,
            in_trash=in_trash,
            order_key=source.order_key,
        )

    # --- pages -> records ---------------------------------------------------------------------------

    async def _to_opportunities(self, pages: list[Page], deals: _BoundSource) -> list[ExternalOpportunityRead]:
        """Map pages to deals; a page that cannot be mapped is left out and kept in ``read_errors``.

        A page lacking a bound property, or holding it with another type, shows the schema drifted
        since the bindings were reused: it is asked again first (``PropertySchemaError`` when it no
        longer fits)."""
        if not self._schema_asked and any(_drifted(page, deals) for page in pages):
            await self.rediscover(everything=False)
            deals = await self._deals()
        bot_id = await self.bot_user_id()
        self.read_errors = []
        records = []
        for page in pages:
            try:
                records.append(self._to_opportunity(page, deals, bot_id))
            except FieldMappingError as error:
                logger.warning("Notion page skipped: %s", error)
                self.read_errors.append(error)
        return records

    def _to_opportunity(self, page: Page, deals: _BoundSource, bot_id: str) -> ExternalOpportunityRead:
        page_id = page["id"]
        fields = from_notion_properties(page["properties"], deals.properties, record_id=page_id)
        sync_key = read_sync_key(page["properties"], deals.sync_key, record_id=page_id) if deals.sync_key else None
        in_trash = _in_trash(page)
        edited = parse_time(page["last_edited_time"])
        editor = page["last_edited_by"]["id"] if "last_edited_by" in page else None
        try:
            record = ExternalOpportunityRead(
                **fields,
                id=page_id,
                external_id=page_id,
                tenant_id=self.tenant_id,
                sync_key=UUID(sync_key) if sync_key else None,
                created_at=parse_time(page["created_time"]),
                updated_at=edited,
                archived_at=edited if in_trash else None,
                in_trash=in_trash,
                last_edited_by=Actor.SYNC if editor == bot_id else Actor.HUMAN,
            )
        except ValidationError as error:
            raise _as_mapping_error(error, page_id, fields, deals) from error
        self._remember(page, deals)
        return record


# --- helpers --------------------------------------------------------------------------------------


def _basis(
    database_id: str,
    data_source_id: str | None,
    base_url: str | None,
    property_map: ResolvedPropertyMap,
    bindings: Mapping[str, str],
) -> str:
    """A digest of what an adapter is configured to bind: a discovery made for another database,
    data source, API or property map is not reused."""
    config = {
        "database_id": database_id,
        "data_source_id": data_source_id,
        "base_url": base_url,
        "properties": {name: [prop.name, prop.type, prop.closed, prop.id] for name, prop in property_map.items()},
        "bindings": dict(bindings),
    }
    return discovery_basis(config)


def _drifted(page: Page, deals: _BoundSource) -> bool:
    """Whether a page read lacks a bound property or holds it with another type (a page carries
    every property of its data source, keyed by name, each with its id and type)."""
    held = {value.get("id"): value.get("type") for value in page["properties"].values() if isinstance(value, dict)}
    bound = [*deals.properties.values(), *([deals.sync_key] if deals.sync_key else [])]
    return any(prop.id is not None and held.get(prop.id) != prop.type for prop in bound)


def _cursor_time(cursor: str | None) -> datetime:
    return datetime.fromisoformat(cursor) if cursor is not None else datetime(1970, 1, 1, tzinfo=UTC)


def _change_batch(changes: list[ChangeRecord], since: datetime, unreadable: list[FieldMappingError]) -> ChangeBatch:
    latest = max((change.changed_at for change in changes), default=since)
    return ChangeBatch(sorted(changes, key=lambda c: c.changed_at), max(latest, since).isoformat(), list(unreadable))


def _normal_key(key: str) -> str:
    """A sync key as ``read_sync_key`` returns it (canonical lower-case UUID) when it is a UUID."""
    try:
        return str(UUID(key))
    except ValueError:
        return key


def _in_trash(page: Page) -> bool:
    """``in_trash``, or its deprecated alias ``archived`` (still sent under API 2025-09-03)."""
    return page.get("in_trash", page.get("archived", False))


def _same_id(candidate: str, ids: Sequence[str]) -> bool:
    """Notion ids compare equal with or without dashes."""
    plain = candidate.replace("-", "").lower()
    return any(plain == other.replace("-", "").lower() for other in ids)


def _stage_filter(deals: _BoundSource, stage: str | list[str] | None) -> dict[str, Any] | None:
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


def activity_ref(activity_id: UUID) -> str:
    """The short reference an activity's paragraph carries: 12 hex digits of a hash of its id.

    Hashed rather than cut from the id, so ids sharing a prefix (time-ordered UUIDs) still differ.
    """
    return hashlib.blake2b(activity_id.bytes, digest_size=6).hexdigest()


_REF_MARK = " · ref "
_REF_AT_LINE_END = re.compile(re.escape(_REF_MARK) + r"([0-9a-f]{12})$", re.MULTILINE)


def _refs_in(text: str) -> set[str]:
    """The activity references ending a line of ``text``.

    Every line is read, not only the first, so a subject spanning lines cannot hide the header's
    reference; a reference is a hash of a fresh id, so no other activity carries it by chance.
    """
    return set(_REF_AT_LINE_END.findall(text))


def _activity_rich_text(activity: ActivityCreate, ref: str) -> list[dict[str, Any]]:
    """The paragraph text, split into rich-text items of at most 2,000 characters by the mapping layer.

    The header line is ``Kind: subject (when) · ref <ref>``; the body, if any, follows on the next
    lines.
    """
    when = f" ({activity.occurred_at:%Y-%m-%d %H:%M %Z})".replace(" )", ")") if activity.occurred_at else ""
    text = f"{activity.kind.capitalize()}: {activity.subject}{when}{_REF_MARK}{ref}"
    if activity.body:
        text += f"\n{activity.body}"
    record_id = str(activity.id) if activity.id else None
    encoded = to_notion_properties({"text": text}, {"text": _ACTIVITY_TEXT}, record_id=record_id)
    rich_text: list[dict[str, Any]] = encoded[_ACTIVITY_TEXT.name]["rich_text"]
    return rich_text


def _as_mapping_error(
    error: ValidationError, page_id: str, fields: Mapping[str, Any], deals: _BoundSource
) -> FieldMappingError:
    """A page whose mapped values break the deal model (e.g. no title) as a per-record error."""
    first = error.errors()[0]
    field = str(first["loc"][0]) if first["loc"] else "?"
    prop = deals.properties.get(field)
    return FieldMappingError(page_id, field, prop.name if prop else field, fields.get(field), first["msg"])
