"""Deal and contact pages in Notion: created idempotently by sync key, updated (a trashed page
refused as such), found by key through a cache filled 50 keys a query, queried past the query
cap, and mapped to deals. The page-level steps every public adapter method (adapter.py,
activities.py) is made of."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from typing import Any
from uuid import UUID

from pydantic import ValidationError

from crm_pipeline.batches import chunks, drain
from crm_pipeline.crm.errors import FieldMappingError
from crm_pipeline.crm.notion.api import Page
from crm_pipeline.crm.notion.client import has_code
from crm_pipeline.crm.notion.codecs import (
    from_notion_properties,
    read_sync_key,
    sync_key_property,
    to_notion_properties,
)
from crm_pipeline.crm.notion.errors import OpportunityPageNotFoundError, PageTrashedError
from crm_pipeline.crm.notion.paging import parse_time, query_all
from crm_pipeline.crm.notion.setup import BoundSource, NotionSetup
from crm_pipeline.models import Actor, ContactCreate, ExternalOpportunityRead, OpportunityCreate

logger = logging.getLogger("crm_pipeline.crm.notion")

_KEYS_PER_LOOKUP = 50  # two conditions per key (lower and upper case); Notion allows 100 per compound filter


class NotionPageStore(NotionSetup):
    """Pages of the bound data sources: create, update, find by sync key, query, read as deals."""

    # --- pages: create, update, find ----------------------------------------------------------------

    async def _create_record(self, source: BoundSource, data: OpportunityCreate | ContactCreate) -> str:
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

    async def _update_record(self, source: BoundSource, external_id: str, changes: Mapping[str, Any]) -> None:
        """Write the changed mapped fields; nothing is sent when none of them is mapped."""
        properties = to_notion_properties(changes, source.properties, record_id=external_id)
        if properties:
            await self._update_page(external_id, properties=properties)

    async def _create_page(self, source: BoundSource, properties: dict[str, Any], key: str | None) -> str:
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
            if has_code(error, APIErrorCode.ValidationError) and is_trashed(await self.api.retrieve_page(page_id)):
                raise PageTrashedError(page_id) from error
            raise

    async def _page_for_key(self, deals: BoundSource, key: str) -> str:
        """The page holding `key` (from the cache, else one lookup), or OpportunityPageNotFoundError."""
        page_id = await self._find_page_by_key(deals, key)
        if page_id is None:
            raise OpportunityPageNotFoundError(key)
        return page_id

    async def _find_page_by_key(self, source: BoundSource, key: str) -> str | None:
        """The id of the page holding ``key`` (from the cache, else one lookup), or None."""
        key = _normal_key(key)
        await self._find_pages_by_keys(source, [key])
        return self._page_by_key.get(key)

    async def _find_pages_by_keys(
        self, source: BoundSource, keys: Sequence[str], *, include_trash: bool = False
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

    def _remember(self, page: Page, source: BoundSource) -> None:
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
        source: BoundSource,
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

    async def _to_opportunities(self, pages: list[Page], deals: BoundSource) -> list[ExternalOpportunityRead]:
        """Map pages to deals, in order; a page that cannot be mapped is left out and kept in
        ``read_errors``. Takes the pages out of ``pages`` as it goes, so each page's JSON is let
        go once mapped: a change read's overlap can hold tens of thousands.

        A page lacking a bound property, or holding it with another type, shows the schema drifted
        since the bindings were reused: it is asked again first (``PropertySchemaError`` when it no
        longer fits)."""
        if not self._schema_asked and any(_drifted(page, deals) for page in pages):
            await self.rediscover(everything=False)
            deals = await self._deals()
        bot_id = await self.bot_user_id()
        self.read_errors = []
        records = []
        for page in drain(pages):
            try:
                records.append(self._to_opportunity(page, deals, bot_id))
            except FieldMappingError as error:
                logger.warning("Notion page skipped: %s", error)
                self.read_errors.append(error)
        return records

    def _to_opportunity(self, page: Page, deals: BoundSource, bot_id: str) -> ExternalOpportunityRead:
        page_id = page["id"]
        fields = from_notion_properties(page["properties"], deals.properties, record_id=page_id)
        sync_key = read_sync_key(page["properties"], deals.sync_key, record_id=page_id) if deals.sync_key else None
        in_trash = is_trashed(page)
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


def _drifted(page: Page, deals: BoundSource) -> bool:
    """Whether a page read lacks a bound property or holds it with another type (a page carries
    every property of its data source, keyed by name, each with its id and type)."""
    held = {value.get("id"): value.get("type") for value in page["properties"].values() if isinstance(value, dict)}
    bound = [*deals.properties.values(), *([deals.sync_key] if deals.sync_key else [])]
    return any(prop.id is not None and held.get(prop.id) != prop.type for prop in bound)


def _normal_key(key: str) -> str:
    """A sync key as ``read_sync_key`` returns it (canonical lower-case UUID) when it is a UUID."""
    try:
        return str(UUID(key))
    except ValueError:
        return key


def is_trashed(page: Page) -> bool:
    """``in_trash``, or its deprecated alias ``archived`` (still sent under API 2025-09-03)."""
    return page.get("in_trash", page.get("archived", False))


def _as_mapping_error(
    error: ValidationError, page_id: str, fields: Mapping[str, Any], deals: BoundSource
) -> FieldMappingError:
    """A page whose mapped values break the deal model (e.g. no title) as a per-record error."""
    first = error.errors()[0]
    field = str(first["loc"][0]) if first["loc"] else "?"
    prop = deals.properties.get(field)
    return FieldMappingError(page_id, field, prop.name if prop else field, fields.get(field), first["msg"])
