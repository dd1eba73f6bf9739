"""A quiet pass in a new process costs one request: what the adapter discovered about its
connection (Notion: the data source, the bound properties, the bot user; HubSpot: the pipeline's
stages, the checked properties) is kept in the deal store, and drift is still refused before any
write. Each engine here gets a fresh adapter, as a new process would; the real deal store and the
local CRMs over HTTP, requests counted by the CRMs' own statistics."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from notion_client import AsyncClient
from sqlalchemy import text

from crm_pipeline.crm import PostgresAdapter
from crm_pipeline.crm.errors import PropertySchemaError
from crm_pipeline.crm.hubspot import HubSpotAdapter, RateLimit
from crm_pipeline.crm.notion.properties import SYNCED_PROPERTY_MAP
from crm_pipeline.emulation.control_client import ControlClient
from crm_pipeline.hubspot_sandbox import DEFAULT_TOKEN as HUBSPOT_TOKEN
from crm_pipeline.hubspot_sandbox import HubSpotControl, RunningHubSpot
from crm_pipeline.models import OpportunityCreate, OpportunityUpdate, SyncResult
from crm_pipeline.sandbox import DEFAULT_TOKEN as NOTION_TOKEN
from crm_pipeline.store import Database, DealRepository
from crm_pipeline.sync import Direction, SyncEngine
from crm_pipeline.sync.ownership import DEFAULT_FIELD_OWNERSHIP
from crm_pipeline.tenants import TenantRegistry
from crm_pipeline_tests.crm.conftest import Workspace

pytestmark = pytest.mark.integration

QUERY = "POST /v1/data_sources/{data_source_id}/query"
SCHEMA = "GET /v1/data_sources/{data_source_id}"
DATABASE = "GET /v1/databases/{database_id}"
ME = "GET /v1/users/me"
PAGE_WRITE = "PATCH /v1/pages/{page_id}"
SEARCH = "POST /crm/v3/objects/{object_type}/search"
PROPERTIES = "GET /crm/v3/properties/{object_type}"
PIPELINES = "GET /crm/v3/pipelines/{object_type}"
READ = "POST /crm/v3/objects/{object_type}/batch/read"
QUIET_HUBSPOT = {SEARCH: 1, READ: 1}
"""The change search, and the read (with history) of the deals it finds in its overlap before the
cursor: the last one written is always there."""


def requests_by_route(control: ControlClient) -> dict[str, int]:
    """The requests the CRM answered since its statistics were last reset, by route."""
    return {route: sum(statuses.values()) for route, statuses in control.stats()["by_route"].items()}


class SandboxClock:
    """The CRM's settable clock, which the engines read too (for the slow re-check)."""

    def __init__(self, control: ControlClient) -> None:
        self.control = control
        # Pinned to the real now, so the CRM's dates and the deal store's (real time) keep their order.
        self.now = datetime.fromisoformat(control.set_clock(datetime.now(UTC))["now"])

    def advance(self, seconds: float) -> None:
        self.now = datetime.fromisoformat(self.control.advance_clock(seconds)["now"])

    def __call__(self) -> datetime:
        return self.now


@dataclasses.dataclass
class NotionProcesses:
    """Engines over one tenant and one Deals database, each with a fresh adapter."""

    repository: DealRepository
    tenant: str
    workspace: Workspace
    clock: SandboxClock

    def engine(self) -> SyncEngine:
        adapter = self.workspace.adapter(property_map=SYNCED_PROPERTY_MAP, contacts_data_source_id=None)
        return SyncEngine(
            PostgresAdapter(self.repository, self.tenant), adapter, DEFAULT_FIELD_OWNERSHIP, clock=self.clock
        )

    async def run(self, action: Callable[[SyncEngine], Any] = SyncEngine.run_pass) -> tuple[Any, dict[str, int]]:
        """One pass (or ``action``) in a new process: its result and the requests it sent."""
        self.workspace.control.reset_stats()
        engine = self.engine()
        try:
            result = await action(engine)
        finally:
            await engine.close()
        return result, requests_by_route(self.workspace.control)

    async def change_schema(self, properties: dict[str, Any]) -> None:
        """A person changes the Deals data source in Notion (through the API, as Notion's UI would)."""
        async with AsyncClient(auth=NOTION_TOKEN, base_url=self.workspace.base_url) as client:
            await client.data_sources.update(self.workspace.data_source_id, properties=properties)

    async def read_past_every_page(self) -> None:
        """Move the inbound watermark past every page's last edit, as when the page edited last
        went to the trash since: the next change read returns no page, so no page shows drift."""
        engine = self.engine()
        await engine.status.set_watermark(Direction.INBOUND, (self.clock.now + timedelta(hours=1)).isoformat())
        await engine.close()

    def page(self) -> dict[str, Any]:
        [page] = self.workspace.control.all_pages(self.workspace.data_source_id)
        return page


@pytest.fixture
async def notion_processes(
    repository: DealRepository, tenant: str, workspace: Workspace
) -> AsyncIterator[NotionProcesses]:
    """One deal, synced by a first pass (which discovered the connection and kept it) and
    reconciled by a second; the next reconciliation is minutes away."""
    processes = NotionProcesses(repository, tenant, workspace, SandboxClock(workspace.control))
    try:
        await repository.create_opportunity(tenant, OpportunityCreate(name="Acme", estimated_value=Decimal(100)))
        result, sent = await processes.run()
        assert result.created == 1
        assert {DATABASE, SCHEMA, ME} <= sent.keys()  # asked once, by the first process
        await processes.run()  # the first reconciliation (the deal was not linked yet in the first pass)
        yield processes
    finally:
        workspace.control.real_clock()


async def only_deal_id(processes: NotionProcesses) -> Any:
    [deal] = await processes.repository.list_opportunities(processes.tenant)
    return deal.id


async def test_a_quiet_pass_in_a_new_process_sends_one_query(notion_processes: NotionProcesses) -> None:
    for _ in range(2):
        result, sent = await notion_processes.run()
        assert result == SyncResult()
        assert sent == {QUERY: 1}


async def test_without_the_kept_discovery_a_quiet_pass_asks_for_it_again(
    notion_processes: NotionProcesses, database: Database
) -> None:
    assert await TenantRegistry(database).forget_discovery(notion_processes.tenant) == 1  # `tenants rediscover`
    _, sent = await notion_processes.run()
    assert sent == {DATABASE: 1, SCHEMA: 1, ME: 1, QUERY: 1}
    _, sent = await notion_processes.run()
    assert sent == {QUERY: 1}


async def test_a_pass_with_a_change_asks_for_the_schema_before_it_writes(notion_processes: NotionProcesses) -> None:
    deal_id = await only_deal_id(notion_processes)
    await notion_processes.repository.update_opportunity(
        notion_processes.tenant, deal_id, OpportunityUpdate(estimated_value=Decimal(250))
    )
    result, sent = await notion_processes.run()
    assert result.pushed == 1
    assert sent == {QUERY: 1, SCHEMA: 1, PAGE_WRITE: 1}
    assert notion_processes.page()["properties"]["Value"]["number"] == 250


@pytest.mark.parametrize(
    "drift",
    [{"Value": {"rich_text": {}}}, {"Value": None}],
    ids=["a mapped property retyped", "a mapped property deleted"],
)
async def test_a_schema_drifted_between_passes_is_refused_before_any_write(
    notion_processes: NotionProcesses, drift: dict[str, Any]
) -> None:
    deal_id = await only_deal_id(notion_processes)
    await notion_processes.read_past_every_page()
    await notion_processes.change_schema(drift)
    await notion_processes.repository.update_opportunity(
        notion_processes.tenant, deal_id, OpportunityUpdate(estimated_value=Decimal(250), deal_stage="Negotiation")
    )
    before = notion_processes.page()
    engine = notion_processes.engine()
    outbound = await engine.status.watermark(Direction.OUTBOUND)
    with pytest.raises(PropertySchemaError, match="Value"):
        await notion_processes.run()
    sent = requests_by_route(notion_processes.workspace.control)
    assert sent == {QUERY: 1, SCHEMA: 1}  # the schema asked before the first write: nothing written
    assert notion_processes.page() == before
    assert await engine.status.watermark(Direction.OUTBOUND) == outbound
    await engine.close()


async def test_in_the_asset_graphs_stages_the_writing_stage_refuses_a_drift_the_read_could_not_see(
    notion_processes: NotionProcesses,
) -> None:
    """Nothing changed in Notion, so the read (``notion_pages``) shows no drift; the outbound
    stage asks for the schema before its first write and stops there."""
    deal_id = await only_deal_id(notion_processes)
    await notion_processes.read_past_every_page()
    await notion_processes.change_schema({"Value": {"rich_text": {}}})
    await notion_processes.repository.update_opportunity(
        notion_processes.tenant, deal_id, OpportunityUpdate(estimated_value=Decimal(250))
    )
    before = notion_processes.page()

    async def staged(engine: SyncEngine) -> None:
        external = await engine.read_external(refuse_on_drift=True)
        assert external.schema_error is None
        decisions = await engine.decide(await engine.read_primary(), external)
        await engine.write_outbound(decisions)

    with pytest.raises(PropertySchemaError, match="Value"):
        await notion_processes.run(staged)
    assert requests_by_route(notion_processes.workspace.control) == {QUERY: 1, SCHEMA: 1}
    assert notion_processes.page() == before


async def test_a_page_read_that_shows_a_drifted_schema_has_it_asked_again(notion_processes: NotionProcesses) -> None:
    """A person's edit read with the kept bindings shows the deleted property missing: the schema
    is asked again and the read refused, in ``run_pass`` and in the asset graph's read."""
    await notion_processes.change_schema({"Value": None})
    page = notion_processes.page()
    notion_processes.workspace.control.human_update_page(
        page["id"], {"properties": {"Deal Name": {"title": [{"text": {"content": "Acme Corp"}}]}}}
    )
    with pytest.raises(PropertySchemaError, match="Value"):
        await notion_processes.run()
    assert requests_by_route(notion_processes.workspace.control) == {QUERY: 1, SCHEMA: 1}
    read, sent = await notion_processes.run(lambda engine: engine.read_external(refuse_on_drift=True))
    assert "Value" in (read.schema_error or "")
    assert sent == {QUERY: 1, SCHEMA: 1}
    [deal] = await notion_processes.repository.list_opportunities(notion_processes.tenant)
    assert deal.name == "Acme"


async def test_a_renamed_column_still_maps_by_its_id(notion_processes: NotionProcesses) -> None:
    deal_id = await only_deal_id(notion_processes)
    await notion_processes.change_schema({"Value": {"name": "Deal Value"}})
    await notion_processes.repository.update_opportunity(
        notion_processes.tenant, deal_id, OpportunityUpdate(estimated_value=Decimal(300))
    )
    result, sent = await notion_processes.run()
    assert (result.pushed, sent) == (1, {QUERY: 1, SCHEMA: 1, PAGE_WRITE: 1})
    assert notion_processes.page()["properties"]["Deal Value"]["number"] == 300


async def test_the_discovery_is_asked_again_in_full_once_the_slow_interval_passed(
    notion_processes: NotionProcesses,
) -> None:
    notion_processes.clock.advance(3600 - 60)
    _, sent = await notion_processes.run()
    assert sent == {QUERY: 1}
    notion_processes.clock.advance(60)
    _, sent = await notion_processes.run()
    assert sent == {DATABASE: 1, SCHEMA: 1, ME: 1, QUERY: 1}
    state = await notion_processes.engine().status.connection_state()
    assert state is not None and state.checked_at == notion_processes.clock.now
    _, sent = await notion_processes.run()
    assert sent == {QUERY: 1}


async def test_the_kept_discovery_holds_no_secret_and_is_seen_by_its_tenant_only(
    notion_processes: NotionProcesses, repository: DealRepository
) -> None:
    engine = notion_processes.engine()
    state = await engine.status.connection_state()
    await engine.close()
    assert state is not None
    assert NOTION_TOKEN not in json.dumps(state.discovery)
    assert state.discovery["data_source_id"] == notion_processes.workspace.data_source_id
    other = f"{notion_processes.tenant}-other"
    await repository.register_tenant(other)
    count = text("SELECT count(*) FROM crm.sync_connections")
    for tenant, rows in ((notion_processes.tenant, 1), (other, 0)):
        async with repository.transaction(tenant) as connection:  # a raw query, no WHERE: row-level security
            assert await connection.scalar(count) == rows


async def test_a_discovery_kept_for_another_database_is_not_reused(notion_processes: NotionProcesses) -> None:
    [other] = notion_processes.workspace.control.seed(
        {"databases": [{"title": "Other deals", "properties": {"Deal Name": {"title": {}}}}]}
    )
    processes = dataclasses.replace(
        notion_processes,
        workspace=dataclasses.replace(
            notion_processes.workspace, database_id=other["database_id"], data_source_id=other["data_source_id"]
        ),
    )
    with pytest.raises(PropertySchemaError, match="Stage"):  # bound afresh, by name, to the other database
        await processes.run()
    assert {DATABASE, SCHEMA} <= requests_by_route(processes.workspace.control).keys()


# --- HubSpot ----------------------------------------------------------------------------------------


@dataclasses.dataclass
class HubSpotProcesses:
    repository: DealRepository
    tenant: str
    hubspot: RunningHubSpot
    control: HubSpotControl
    clock: SandboxClock

    def engine(self) -> SyncEngine:
        adapter = HubSpotAdapter(
            HUBSPOT_TOKEN,
            base_url=self.hubspot.base_url,
            rate_limit=RateLimit(per_ten_seconds=0, searches_per_second=0),
        )
        return SyncEngine(
            PostgresAdapter(self.repository, self.tenant), adapter, DEFAULT_FIELD_OWNERSHIP, clock=self.clock
        )

    async def run(self) -> tuple[SyncResult, dict[str, int]]:
        self.control.reset_stats()
        engine = self.engine()
        try:
            result = await engine.run_pass()
        finally:
            await engine.close()
        return result, requests_by_route(self.control)


@pytest.fixture
async def hubspot_processes(
    repository: DealRepository, tenant: str, hubspot: RunningHubSpot, hubspot_control: HubSpotControl
) -> AsyncIterator[HubSpotProcesses]:
    """As ``notion_processes``, over the local HubSpot."""
    processes = HubSpotProcesses(repository, tenant, hubspot, hubspot_control, SandboxClock(hubspot_control))
    try:
        await repository.create_opportunity(tenant, OpportunityCreate(name="Acme", estimated_value=Decimal(100)))
        result, sent = await processes.run()
        assert result.created == 1
        assert {PROPERTIES, PIPELINES} <= sent.keys()
        await processes.run()  # the first reconciliation (the deal was not linked yet in the first pass)
        yield processes
    finally:
        hubspot_control.real_clock()


async def test_a_quiet_hubspot_pass_in_a_new_process_asks_only_for_changes(hubspot_processes: HubSpotProcesses) -> None:
    for _ in range(2):
        result, sent = await hubspot_processes.run()
        assert result == SyncResult()
        assert sent == QUIET_HUBSPOT


async def test_a_hubspot_pass_with_a_change_asks_for_the_schema_before_it_writes(
    hubspot_processes: HubSpotProcesses,
) -> None:
    [deal] = await hubspot_processes.repository.list_opportunities(hubspot_processes.tenant)
    await hubspot_processes.repository.update_opportunity(
        hubspot_processes.tenant, deal.id, OpportunityUpdate(estimated_value=Decimal(250))
    )
    result, sent = await hubspot_processes.run()
    assert result.pushed == 1
    assert sent == {
        SEARCH: 1,
        READ: 2,
        PROPERTIES: 1,
        PIPELINES: 1,
        "POST /crm/v3/objects/{object_type}/batch/update": 1,
    }
    [record] = hubspot_processes.control.all_records("deals")
    assert Decimal(record["properties"]["amount"]) == 250


async def test_a_hubspot_property_retyped_between_passes_is_refused_before_any_write(
    hubspot_processes: HubSpotProcesses,
) -> None:
    """The local HubSpot's API cannot delete or retype a property (HubSpot's can delete one, and
    a person may make it again with another type): the portal is changed in place."""
    [deal] = await hubspot_processes.repository.list_opportunities(hubspot_processes.tenant)
    hubspot_processes.hubspot.sandbox.portal.properties["deals"]["crm_probability"].type = "string"
    await hubspot_processes.repository.update_opportunity(
        hubspot_processes.tenant, deal.id, OpportunityUpdate(estimated_value=Decimal(250))
    )
    with pytest.raises(PropertySchemaError, match="crm_probability"):
        await hubspot_processes.run()
    assert requests_by_route(hubspot_processes.control) == {**QUIET_HUBSPOT, PROPERTIES: 1}
    [record] = hubspot_processes.control.all_records("deals")
    assert Decimal(record["properties"]["amount"]) == 100


async def test_hubspot_discovery_is_asked_again_once_the_slow_interval_passed(
    hubspot_processes: HubSpotProcesses,
) -> None:
    hubspot_processes.clock.advance(timedelta(hours=1).total_seconds())
    _, sent = await hubspot_processes.run()
    assert sent == {PROPERTIES: 1, PIPELINES: 1, **QUIET_HUBSPOT}
    _, sent = await hubspot_processes.run()
    assert sent == QUIET_HUBSPOT
