"""What a HubSpot adapter sets up before its first read or write, and keeps across processes:
the SDK client behind the paced caller, the pipeline's stage ids, the custom deal properties
(created when missing, refused when of another type) and the tag options, as the
``HubSpotDiscovery`` a later process reuses. The base the deal reads (deal_reads.py), contacts and
activities (activities.py) and the adapter's deal writes (adapter.py) build on."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import Any

from pydantic import SecretStr

from crm_pipeline.crm.adapter import CRMAdapter, Discovery, discovery_basis
from crm_pipeline.crm.errors import FieldMappingError, PropertySchemaError
from crm_pipeline.crm.hubspot.api import HubSpotAPI
from crm_pipeline.crm.hubspot.client import HubSpotCaller, RateLimit, RetryPolicy
from crm_pipeline.crm.hubspot.errors import PipelineConfigError
from crm_pipeline.crm.hubspot.mapping import (
    DEFAULT_STAGE_LABELS,
    HUBSPOT_PROPERTY_MAP,
    SYNC_KEY,
    HubSpotProperty,
    encode,
)
from crm_pipeline.crm.retrying import token_digest

DEALS, CONTACTS, NOTES = "deals", "contacts", "notes"
SEARCH_RESULT_CAP = 10_000


class HubSpotDiscovery(Discovery):
    """What a HubSpot adapter asks before it can read or write deals: our stages' ids in the
    pipeline, and the options of the multi-checkbox properties (the deal properties were checked
    to exist with their types when it was asked)."""

    stage_ids: dict[str, str]
    options: dict[str, list[str]]


class HubSpotSetup(CRMAdapter):
    """The adapter's configuration and lazy set-up: API client, stages, properties, options."""

    def __init__(
        self,
        token: str | SecretStr,
        *,
        base_url: str | None = None,
        tenant_id: str = "default",
        pipeline: str = "default",
        property_map: Mapping[str, HubSpotProperty] = HUBSPOT_PROPERTY_MAP,
        stage_labels: Mapping[str, str] = DEFAULT_STAGE_LABELS,
        retry: RetryPolicy | None = None,
        rate_limit: RateLimit | None = None,
        overlap: timedelta = timedelta(seconds=60),
        app_source_id: str | None = None,
        search_result_cap: int = SEARCH_RESULT_CAP,
        timeout_s: float = 30.0,
        on_request: Callable[[], None] | None = None,
    ) -> None:
        from hubspot import HubSpot

        secret = token if isinstance(token, SecretStr) else SecretStr(token)
        options: dict[str, Any] = {"access_token": secret.get_secret_value(), "retry": False}
        if base_url is not None:
            options["host"] = base_url.rstrip("/")
        self.api = HubSpotAPI(
            HubSpot(**options),
            HubSpotCaller(
                token_digest(secret.get_secret_value()), retry or RetryPolicy(), rate_limit or RateLimit(), on_request
            ),
            timeout_s,
        )
        self.base_url = base_url
        self.tenant_id = tenant_id
        self.pipeline = pipeline
        self.property_map = dict(property_map)
        self.stage_labels = dict(stage_labels)
        self.overlap = overlap
        self.app_source_id = app_source_id
        self.search_result_cap = search_result_cap
        self.read_errors: list[FieldMappingError] = []
        self.merged: dict[str, str] = {}
        """Absorbed record id -> the id of the record it was merged into, as reads found them."""
        self._stage_ids: dict[str, str] | None = None
        self._options: dict[str, list[str]] = {}  # multi-checkbox property -> its option values
        self._schema_asked = False
        """Whether the properties and stages were asked for in this process (not reused)."""
        self._basis = _basis(base_url, pipeline, self.property_map, self.stage_labels)
        self._deal_by_key: dict[str, str] = {}
        self._ready = asyncio.Lock()

    def __repr__(self) -> str:
        return f"HubSpotAdapter(base_url={self.base_url!r}, tenant_id={self.tenant_id!r}, pipeline={self.pipeline!r})"

    @property
    def mapped_fields(self) -> frozenset[str]:
        return frozenset(self.property_map)

    @property
    def requests_sent(self) -> int:
        """HTTP requests this adapter has sent, retries included (what it spent of the app's budget)."""
        return self.api.caller.requests_sent

    async def aclose(self) -> None:
        """Close the SDK clients' connection pools."""
        self.api.close()

    # --- schema ---------------------------------------------------------------------------------

    async def _stages(self) -> dict[str, str]:
        """Our stage -> the pipeline's stage id; custom properties are created on the way."""
        async with self._ready:
            if self._stage_ids is None:
                await self._ask_schema()
            assert self._stage_ids is not None
            return self._stage_ids

    async def _ask_schema(self) -> None:
        self._stage_ids = None  # a schema that no longer fits leaves nothing resolved
        await self._ensure_properties()
        self._stage_ids = await self._resolve_stages()
        self._schema_asked = True

    def discovery(self) -> HubSpotDiscovery | None:
        if self._stage_ids is None:
            return None
        return HubSpotDiscovery(basis=self._basis, stage_ids=self._stage_ids, options=self._options)

    def reuse_discovery(self, discovery: Mapping[str, Any]) -> bool:
        found = HubSpotDiscovery.reusable(discovery, self._basis)
        if found is None:
            return False
        self._stage_ids, self._options = dict(found.stage_ids), {k: list(v) for k, v in found.options.items()}
        self._schema_asked = False
        return True

    async def rediscover(self, *, everything: bool) -> None:
        """The deal properties and the pipeline asked again (two requests), when reused from an
        earlier process (or ``everything``): a property gone or of another type is a
        ``PropertySchemaError``, a stage gone a ``PipelineConfigError``, and the tag options are
        current before a write adds to them."""
        async with self._ready:
            if self._stage_ids is not None and (everything or not self._schema_asked):
                await self._ask_schema()

    async def _resolve_stages(self) -> dict[str, str]:
        pipelines = {pid: (label, stages) for pid, label, stages in await self.api.pipelines()}
        if self.pipeline not in pipelines:
            raise PipelineConfigError(f"HubSpot has no deal pipeline with id {self.pipeline!r}")
        by_label = {label.casefold(): stage_id for stage_id, label in pipelines[self.pipeline][1]}
        ids = {stage_id for stage_id, _ in pipelines[self.pipeline][1]}
        resolved = {}
        for ours, theirs in self.stage_labels.items():
            stage_id = theirs if theirs in ids else by_label.get(theirs.casefold())
            if stage_id is None:
                raise PipelineConfigError(f"pipeline {self.pipeline!r} has no stage {theirs!r} (for {ours!r})")
            resolved[ours] = stage_id
        return resolved

    async def _ensure_properties(self) -> None:
        """Create the custom deal properties HubSpot lacks; refuse ones of the wrong type."""
        held = await self.api.properties(DEALS)
        for field, prop in [*self.property_map.items(), ("sync_key", SYNC_KEY)]:
            found = held.get(prop.name)
            if found is None and prop.custom:
                label = field.replace("_", " ").capitalize()
                await self.api.create_property(
                    DEALS, prop.name, label, prop.hubspot_type, prop.field_type, prop is SYNC_KEY
                )
                found = {"type": prop.hubspot_type, "read_only": False, "unique": prop is SYNC_KEY, "options": []}
            if found is None:
                raise PropertySchemaError(field, prop.name, "HubSpot has no such deal property")
            if found["type"] != prop.hubspot_type or found["read_only"]:
                raise PropertySchemaError(
                    field, prop.name, f"is a {found['type']} property; {prop.hubspot_type} expected"
                )
            if prop is SYNC_KEY and not found["unique"]:
                raise PropertySchemaError(
                    field, prop.name, "must have unique values (hasUniqueValue), so upserts can key on it"
                )
            if prop.codec == "tags":
                self._options[prop.name] = list(found["options"])

    async def _add_options(self, properties: Iterable[Mapping[str, str]]) -> None:
        """Add the tags a write uses that a multi-checkbox property has no option for yet
        (HubSpot refuses a value that is not one of its options)."""
        for name, options in self._options.items():
            wanted = [tag for values in properties for tag in values.get(name, "").split(";") if tag]
            new = [tag for tag in dict.fromkeys(wanted) if tag not in options]
            if new:
                await self.api.set_options(DEALS, name, options + new)
                options += new

    def _properties(
        self, values: Mapping[str, Any], stages: Mapping[str, str], record_id: str | None
    ) -> dict[str, str]:
        return {
            prop.name: encode(values[field], field, prop, stages, record_id)
            for field, prop in self.property_map.items()
            if field in values
        }


def _basis(
    base_url: str | None, pipeline: str, property_map: Mapping[str, HubSpotProperty], stage_labels: Mapping[str, str]
) -> str:
    """A digest of what an adapter is configured to resolve: a discovery made for another portal
    address, pipeline, property map or stage labels is not reused."""
    config = {
        "base_url": base_url,
        "pipeline": pipeline,
        "properties": {field: [prop.name, prop.codec, prop.custom] for field, prop in property_map.items()},
        "stages": dict(stage_labels),
    }
    return discovery_basis(config)
