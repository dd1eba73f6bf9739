"""What a Notion adapter learns before its first read or write, and keeps across processes:
the deals (and contacts) data source with its properties bound to ids, the bot user, the
``NotionDiscovery`` a later process reuses; plus the lazily built client. The base the page
operations (page_store.py) and the adapter's public methods (adapter.py) build on."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import SecretStr

from crm_pipeline.crm.adapter import CRMAdapter, Discovery, discovery_basis
from crm_pipeline.crm.errors import FieldMappingError, PropertySchemaError
from crm_pipeline.crm.notion.api import NotionAPI
from crm_pipeline.crm.notion.client import NotionCaller, RateLimit, RetryPolicy, load_sdk, sdk_client
from crm_pipeline.crm.notion.errors import DataSourceConfigError
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

if TYPE_CHECKING:
    from notion_client import AsyncClient

CONTACT_PROPERTY_MAP: dict[str, PropertySpec] = {
    "name": {"notion_name": "Name", "type": "title"},
    "email": {"notion_name": "Email", "type": "email"},
    "phone": {"notion_name": "Phone", "type": "rich_text"},
    "title": {"notion_name": "Title", "type": "rich_text"},
    "company": {"notion_name": "Company", "type": "rich_text"},
}
"""Default contacts data source layout; pass ``contact_property_map`` for another one."""

SYNC_KEY_FIELD = "sync_key"
MIN_OVERLAP = timedelta(minutes=2)


@dataclass(frozen=True)
class BoundSource:
    """A data source with its mapped properties bound to ids."""

    data_source_id: str
    properties: ResolvedPropertyMap
    sync_key: NotionProperty | None
    order_key: str | None
    """The id of a unique_id property, if the data source has one: reads past a minute holding
    more pages than a query returns (see paging.py)."""

    def bindings(self) -> dict[str, str]:
        """field -> property id of every bound property, the Sync Key's included."""
        key = {SYNC_KEY_FIELD: self.sync_key} if self.sync_key is not None else {}
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


class NotionSetup(CRMAdapter):
    """The adapter's configuration and lazy set-up: client, bindings, discovery, bot user."""

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
        self._opportunities: BoundSource | None = None
        self._contacts: BoundSource | None = None
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

    async def _deals(self) -> BoundSource:
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
        self._opportunities = BoundSource(found.data_source_id, found.properties, found.sync_key, found.order_key)
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

    async def _contact_source(self) -> BoundSource:
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
            if same_notion_id(self.data_source_id, ids):
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
        for field_name, prop in {**self._property_map, SYNC_KEY_FIELD: SYNC_KEY}.items():
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
    ) -> BoundSource:
        """Bind the map to property ids; the Sync Key too (required for deals: idempotent creates)."""
        source = await self.api.retrieve_data_source(ds_id)
        schema = source["properties"]
        properties = resolve_property_ids(property_map, schema, bindings)
        key_map = {SYNC_KEY_FIELD: SYNC_KEY}
        if require_key or SYNC_KEY.name in schema:
            sync_key: NotionProperty | None = resolve_property_ids(key_map, schema, bindings)[SYNC_KEY_FIELD]
        else:
            sync_key = None
        order_key = next((entry["id"] for entry in schema.values() if entry.get("type") == "unique_id"), None)
        return BoundSource(ds_id, properties, sync_key, order_key)

    async def bot_user_id(self) -> str:
        """Our integration's user id (GET /v1/users/me, cached): tells our edits from a human's."""
        if self._bot_id is None:
            me = await self.api.me()
            self._bot_id = me["id"]
        return self._bot_id


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


def same_notion_id(candidate: str, ids: Sequence[str]) -> bool:
    """Notion ids compare equal with or without dashes."""
    plain = candidate.replace("-", "").lower()
    return any(plain == other.replace("-", "").lower() for other in ids)
