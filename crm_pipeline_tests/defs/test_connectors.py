"""The connector is configuration: the same asset graph syncs a HubSpot tenant against the local
HubSpot, a Salesforce tenant against the local Salesforce and a Notion tenant against the sandbox
Notion, listed in one tenants file."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import dagster as dg
import pytest
from hubspot import HubSpot
from hubspot.crm.deals import PublicMergeInput

from crm_pipeline.crm.salesforce import InstanceConfigError
from crm_pipeline.defs.resources import CRMConnectionResource, HubSpotConnector, RequestCount, SalesforceConnector
from crm_pipeline.defs.tenants import TenantConnection
from crm_pipeline.hubspot_sandbox import DEFAULT_TOKEN, HubSpotControl, RunningHubSpot
from crm_pipeline.models import OpportunityCreate, OpportunityUpdate
from crm_pipeline.salesforce_sandbox import DEFAULT_TOKEN as SALESFORCE_TOKEN
from crm_pipeline.salesforce_sandbox import INTEGRATION_USERNAME, RunningSalesforce, SalesforceControl
from crm_pipeline.sandbox import RunningSandbox, SandboxControl
from crm_pipeline.settings import get_settings
from crm_pipeline.store import Database, DealRepository
from crm_pipeline.sync import SyncStatus
from crm_pipeline_tests.conftest import requests_reserved
from crm_pipeline_tests.defs.conftest import (
    UNSET_TOKEN_ENV,
    check_results,
    deals_database,
    metadata,
    resources_for,
    sync_tenant,
)
from crm_pipeline_tests.defs.test_sync_graph import ALL_CHECKS

pytestmark = pytest.mark.integration

HUBSPOT_TOKEN_ENV = "CRM_PIPELINE_TEST_HUBSPOT_TOKEN"
SALESFORCE_TOKEN_ENV = "CRM_PIPELINE_TEST_SALESFORCE_TOKEN"
AdapterT = TypeVar("AdapterT")


def connect_without_a_token(
    monkeypatch: pytest.MonkeyPatch,
    tenant: TenantConnection,
    port: str,
    connect: Callable[[TenantConnection, RequestCount], AdapterT],
) -> AdapterT:
    """``connect`` with the tenant's token unset and ``CRM_PIPELINE_<CONNECTOR>_SANDBOX_PORT`` set,
    as ``crm-pipeline dev`` runs it (settings read afresh, then dropped)."""
    assert tenant.token_env is not None
    monkeypatch.delenv(tenant.token_env, raising=False)
    monkeypatch.setenv(f"CRM_PIPELINE_{tenant.connector.upper()}_SANDBOX_PORT", port)
    get_settings.cache_clear()
    try:
        return connect(tenant, RequestCount())
    finally:
        get_settings.cache_clear()


BesideANotionTenant = Callable[[TenantConnection], Awaitable[tuple[dict[str, Any], dict[str, Any]]]]


@pytest.fixture
def beside_a_notion_tenant(
    database: Database,
    repository: DealRepository,
    sandbox_server: RunningSandbox,
    control: SandboxControl,
    tenant: str,
    tmp_path: Path,
) -> BesideANotionTenant:
    """The resources of one tenants file naming ``tenant`` on a new Notion Deals database (the
    sandbox reset) and a CRM tenant (registered in the store), and that database: a pass of the
    CRM tenant must leave the Notion one alone."""

    async def resources(crm_tenant: TenantConnection) -> tuple[dict[str, Any], dict[str, Any]]:
        control.reset()
        await repository.register_tenant(crm_tenant.tenant_id)
        deals = deals_database(control)
        connections = [
            TenantConnection(tenant_id=tenant, database_id=deals["database_id"], token_env=UNSET_TOKEN_ENV),
            crm_tenant,
        ]
        return resources_for(database, sandbox_server, connections, tmp_path / "tenants.toml"), deals

    return resources


async def assert_the_next_pass_pulls_the_rename(
    instance: dg.DagsterInstance, resources: dict[str, Any], repository: DealRepository, tenant_id: str, deal_id: UUID
) -> None:
    """After a person renamed the deal's record in the CRM to "Initech expansion (EU)"."""
    again = await sync_tenant(instance, resources, tenant_id)
    assert again.success and metadata(again, "inbound_sync")["pulled"] == 1
    stored = await repository.get_opportunity(tenant_id, deal_id)
    assert stored is not None and stored.name == "Initech expansion (EU)"


async def test_a_hubspot_tenant_and_a_notion_tenant_sync_through_the_same_graph(
    database: Database,
    repository: DealRepository,
    beside_a_notion_tenant: BesideANotionTenant,
    control: SandboxControl,
    hubspot_server: RunningHubSpot,
    hubspot_control: HubSpotControl,
    tenant: str,
    instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hubspot_control.reset()
    monkeypatch.setenv(HUBSPOT_TOKEN_ENV, DEFAULT_TOKEN)
    on_hubspot = f"{tenant}-hs"
    resources, deals = await beside_a_notion_tenant(
        TenantConnection(
            tenant_id=on_hubspot, connector="hubspot", token_env=HUBSPOT_TOKEN_ENV, base_url=hubspot_server.base_url
        ),
    )
    hubspot_deal = await repository.create_opportunity(on_hubspot, OpportunityCreate(name="Initech expansion"))
    await repository.create_opportunity(tenant, OpportunityCreate(name="Acme renewal"))

    result = await sync_tenant(instance, resources, on_hubspot)

    assert result.success
    assert check_results(result) == dict.fromkeys(ALL_CHECKS, True)
    assert metadata(result, "outbound_sync")["created"] == 1
    # HubSpot's budget, not Notion's: the resource paces it per ten seconds (unpaced here: 0).
    assert metadata(result, "outbound_sync")["request_budget_per_minute"] == 0
    [record] = hubspot_control.all_records("deals")
    assert (record["properties"]["dealname"], record["properties"]["crm_pipeline_id"]) == (
        "Initech expansion",
        str(hubspot_deal.id),
    )
    assert control.all_pages(deals["data_source_id"]) == []  # the Notion tenant was not synced

    # A person renames the deal in HubSpot; the next pass brings it back to PostgreSQL.
    hubspot_control.set_clock(datetime.now(UTC) + timedelta(seconds=1))
    hubspot_control.ui_edit("deals", record["id"], {"dealname": "Initech expansion (EU)"})
    await assert_the_next_pass_pulls_the_rename(instance, resources, repository, on_hubspot, hubspot_deal.id)

    # The Notion tenant of the same file goes to Notion, and to Notion only, each request paced
    # through the request budget in the deal store that every run on its token shares.
    reserved_before = await requests_reserved(database)
    notion = await sync_tenant(instance, resources, tenant)
    assert notion.success and metadata(notion, "outbound_sync")["created"] == 1
    steps = ("notion_pages", "reconciled_deals", "outbound_sync", "inbound_sync")  # those that call Notion
    sent = sum(metadata(notion, step)["requests_used"] for step in steps)
    assert await requests_reserved(database) - reserved_before == sent > 0
    assert metadata(notion, "outbound_sync")["request_budget_per_minute"] == 60_000
    assert len(control.all_pages(deals["data_source_id"])) == 1
    assert len(hubspot_control.all_records("deals")) == 1


async def test_a_merge_in_hubspot_relinks_the_deal_in_a_staged_pass(
    database: Database,
    repository: DealRepository,
    sandbox_server: RunningSandbox,
    hubspot_server: RunningHubSpot,
    hubspot_control: HubSpotControl,
    tenant: str,
    instance: dg.DagsterInstance,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The outbound step writes the relink with the links, so its pushes reach the survivor."""
    hubspot_control.reset()
    monkeypatch.setenv(HUBSPOT_TOKEN_ENV, DEFAULT_TOKEN)
    connection = TenantConnection(
        tenant_id=tenant, connector="hubspot", token_env=HUBSPOT_TOKEN_ENV, base_url=hubspot_server.base_url
    )
    resources = resources_for(database, sandbox_server, [connection], tmp_path / "tenants.toml")
    kept = await repository.create_opportunity(tenant, OpportunityCreate(name="Acme"))
    absorbed = await repository.create_opportunity(tenant, OpportunityCreate(name="Acme (dup)"))
    assert (await sync_tenant(instance, resources, tenant)).success
    primary, other = (
        next(r["id"] for r in hubspot_control.all_records("deals") if r["properties"]["crm_pipeline_id"] == str(d.id))
        for d in (kept, absorbed)
    )
    hubspot_control.set_clock(datetime.now(UTC) + timedelta(seconds=1))
    sdk = HubSpot(access_token=DEFAULT_TOKEN, host=hubspot_server.base_url)
    survivor = sdk.crm.deals.basic_api.merge(PublicMergeInput(primary_object_id=primary, object_id_to_merge=other)).id

    assert (await sync_tenant(instance, resources, tenant)).success
    assert await SyncStatus(repository, tenant, "hubspot").links([kept.id]) == {kept.id: survivor}

    await repository.update_opportunity(tenant, kept.id, OpportunityUpdate(deal_stage="Qualified"))
    result = await sync_tenant(instance, resources, tenant)
    assert result.success and metadata(result, "outbound_sync")["updated"] == 1
    [live] = [r for r in hubspot_control.all_records("deals") if not r["archived"]]
    assert (live["id"], live["properties"]["dealstage"]) == (survivor, "qualifiedtobuy")


def test_hubspot_paces_by_its_own_budget_and_without_a_token_uses_the_local_hubspot(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tenant = TenantConnection(tenant_id="acme", connector="hubspot", token_env=HUBSPOT_TOKEN_ENV)
    assert CRMConnectionResource().requests_per_minute(tenant) == 540  # 90 in any ten seconds, under HubSpot's 100
    local = connect_without_a_token(monkeypatch, tenant, "18766", HubSpotConnector().connect)
    assert local.base_url == "http://127.0.0.1:18766"  # where `crm-pipeline dev` serves the local HubSpot
    monkeypatch.setenv(HUBSPOT_TOKEN_ENV, "pat-na1-real")
    assert HubSpotConnector().connect(tenant, RequestCount()).base_url is None  # HubSpot's public API


async def test_hubspot_requests_are_counted_retries_included(
    hubspot_server: RunningHubSpot, hubspot_control: HubSpotControl, monkeypatch: pytest.MonkeyPatch
) -> None:
    hubspot_control.reset()
    monkeypatch.setenv(HUBSPOT_TOKEN_ENV, DEFAULT_TOKEN)
    tenant = TenantConnection(tenant_id="acme", connector="hubspot", token_env=HUBSPOT_TOKEN_ENV)
    requests = RequestCount()
    adapter = HubSpotConnector(base_url=hubspot_server.base_url, per_ten_seconds=0).connect(tenant, requests)
    hubspot_control.add_fault("503", method="POST", path="/crm/v3/objects/deals/search")
    try:
        await adapter.upsert_opportunities([OpportunityCreate(name="Acme renewal")])
        await adapter.read_changes(None)
    finally:
        await adapter.aclose()
    served = hubspot_control.stats()
    assert served["by_status"]["503"] == 1  # one search failed and was sent again
    assert requests.sent == served["total"] > 2


async def test_a_salesforce_tenant_syncs_through_the_same_graph_paced_by_the_shared_budget(
    database: Database,
    repository: DealRepository,
    beside_a_notion_tenant: BesideANotionTenant,
    control: SandboxControl,
    salesforce_org: RunningSalesforce,
    salesforce_control: SalesforceControl,
    tenant: str,
    instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    salesforce_control.real_clock()
    monkeypatch.setenv(SALESFORCE_TOKEN_ENV, SALESFORCE_TOKEN)
    on_salesforce = f"{tenant}-sf"
    resources, deals = await beside_a_notion_tenant(
        TenantConnection(
            tenant_id=on_salesforce,
            connector="salesforce",
            token_env=SALESFORCE_TOKEN_ENV,
            base_url=salesforce_org.base_url,
            integration_username=INTEGRATION_USERNAME,
        ),
    )
    paced = SalesforceConnector(per_minute=6000, max_attempts=1)  # a window each request reserves a slot of
    resources["crm"] = CRMConnectionResource(notion=resources["crm"].notion, salesforce=paced)
    deal = await repository.create_opportunity(
        on_salesforce, OpportunityCreate(name="Initech expansion", close_date=datetime(2027, 1, 29).date())
    )

    reserved_before = await requests_reserved(database)
    result = await sync_tenant(instance, resources, on_salesforce)

    assert result.success
    assert check_results(result) == dict.fromkeys(ALL_CHECKS, True)
    assert metadata(result, "outbound_sync")["created"] == 1
    # Salesforce's budget, not Notion's, and each request through the deal store's.
    assert metadata(result, "outbound_sync")["request_budget_per_minute"] == 6000
    steps = ("notion_pages", "reconciled_deals", "outbound_sync", "inbound_sync")  # those that call the CRM
    sent = sum(metadata(result, step)["requests_used"] for step in steps)
    assert await requests_reserved(database) - reserved_before == sent > 0
    [record] = salesforce_control.all_records("Opportunity")
    assert (record["Name"], record["Sync_Key__c"]) == ("Initech expansion", str(deal.id))
    assert control.all_pages(deals["data_source_id"]) == []  # the Notion tenant was not synced

    # A person renames the opportunity in Salesforce; the next pass brings it back to PostgreSQL.
    salesforce_control.set_clock(datetime.now(UTC) + timedelta(seconds=1))
    salesforce_control.person_edit("Opportunity", record["Id"], {"Name": "Initech expansion (EU)"})
    await assert_the_next_pass_pulls_the_rename(instance, resources, repository, on_salesforce, deal.id)


def test_salesforce_paces_by_its_own_budget_and_without_a_token_uses_the_local_salesforce(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tenant = TenantConnection(tenant_id="acme", connector="salesforce", token_env=SALESFORCE_TOKEN_ENV)
    assert CRMConnectionResource().requests_per_minute(tenant) == 300  # an org's rolling minute
    local = connect_without_a_token(monkeypatch, tenant, "18767", SalesforceConnector().connect)
    assert local.instance_url == "http://127.0.0.1:18767"  # where `crm-pipeline dev` serves the local Salesforce
    monkeypatch.setenv(SALESFORCE_TOKEN_ENV, "00Dreal!token")
    with pytest.raises(InstanceConfigError, match="configure its org's instance URL"):
        SalesforceConnector().connect(tenant, RequestCount())  # Salesforce has no one public API
    org = SalesforceConnector(base_url="https://acme.my.salesforce.com").connect(tenant, RequestCount())
    assert org.instance_url == "https://acme.my.salesforce.com"
