"""The demo `crm-pipeline dev` starts, through the code location's own graph: its first pass
creates the agent's deals in the team's CRM, adopts the team's own, and decides the deals already
on both sides under each ownership rule, for the Notion tenant, the HubSpot one and the Salesforce one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from crm_pipeline.defs.tenants import TenantConnection
from crm_pipeline.demo import (
    DEMO_NOTION_DATA_SOURCE_ID,
    DEMO_NOTION_DATABASE_ID,
    HUBSPOT_DEMO_TENANT,
    SALESFORCE_DEMO_TENANT,
    demo_notion_seed,
    demo_opportunities,
    seed_demo,
    seed_demo_hubspot,
    seed_demo_notion,
    seed_demo_salesforce,
)
from crm_pipeline.hubspot_sandbox import HubSpotControl, RunningHubSpot
from crm_pipeline.models import OpportunityUpdate
from crm_pipeline.salesforce_sandbox import RunningSalesforce, SalesforceControl
from crm_pipeline.sandbox import RunningSandbox, SandboxControl
from crm_pipeline.settings import get_settings
from crm_pipeline.store import Database, DealRepository
from crm_pipeline_tests.defs.conftest import UNSET_TOKEN_ENV, check_results, metadata, resources_for, sync_tenant
from crm_pipeline_tests.defs.test_sync_graph import ALL_CHECKS

pytestmark = pytest.mark.integration


def conflicts_decided(result: dg.ExecuteInProcessResult) -> set[tuple[str, str, str, str]]:
    """The reconciliation's conflicts table as (deal, field, where written, rule) rows."""
    table = metadata(result, "reconciled_deals")["conflicts_decided"]
    header, _, *rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines()]
    columns = [header.index(name) for name in ("deal", "field", "written to", "rule")]
    return {(row[columns[0]], row[columns[1]], row[columns[2]], row[columns[3]]) for row in rows}


LocalFirstPass = Callable[
    [str, str, Callable[[str], Awaitable[None]], str], Awaitable[tuple[dg.ExecuteInProcessResult, dict[str, Any]]]
]
"""``(connector, base_url, seed, demo_tenant)``: the first pass and the resources it ran with."""


@pytest.fixture
def first_pass_on_the_local_crm(
    database: Database,
    repository: DealRepository,
    sandbox_server: RunningSandbox,
    instance: dg.DagsterInstance,
    tenant: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> LocalFirstPass:
    """The demo's first pass of a tenant on a local CRM (its control reset by the test), as
    ``crm-pipeline dev`` makes it: no token and no base URL in the connection, the local server
    on ``CRM_PIPELINE_<CONNECTOR>_SANDBOX_PORT``, seeded by ``seed(base_url)``."""

    async def first_pass(
        connector: str, base_url: str, seed: Callable[[str], Awaitable[None]], demo_tenant: str
    ) -> tuple[dg.ExecuteInProcessResult, dict[str, Any]]:
        monkeypatch.setenv(f"CRM_PIPELINE_{connector.upper()}_SANDBOX_PORT", base_url.rsplit(":", 1)[1])
        get_settings.cache_clear()
        await seed(base_url)
        await seed_demo(repository, tenant, demo_tenant)
        connection = TenantConnection(tenant_id=tenant, connector=connector, token_env=UNSET_TOKEN_ENV)
        resources = resources_for(database, sandbox_server, [connection], tmp_path / "tenants.toml")
        try:
            return await sync_tenant(instance, resources, tenant), resources
        finally:
            get_settings.cache_clear()

    return first_pass


async def assert_the_second_pass_changes_nothing(
    instance: dg.DagsterInstance, resources: dict[str, Any], tenant: str
) -> None:
    """Once the first pass has settled both sides, a pass after it finds nothing to decide or create."""
    again = await sync_tenant(instance, resources, tenant)
    assert again.success and all(check_results(again).values())
    assert metadata(again, "reconciled_deals")["conflicts"] == 0
    assert metadata(again, "outbound_sync")["created"] == metadata(again, "inbound_sync")["created"] == 0


async def test_the_notion_demo_tenant_first_pass(
    database: Database,
    repository: DealRepository,
    sandbox_server: RunningSandbox,
    control: SandboxControl,
    instance: dg.DagsterInstance,
    tenant: str,
    tmp_path: Path,
) -> None:
    control.reset()
    seed_demo_notion(control)
    await seed_demo(repository, tenant)
    connection = TenantConnection(tenant_id=tenant, database_id=DEMO_NOTION_DATABASE_ID, token_env=UNSET_TOKEN_ENV)
    resources = resources_for(database, sandbox_server, [connection], tmp_path / "tenants.toml")

    result = await sync_tenant(instance, resources, tenant)

    assert result.success
    assert check_results(result) == dict.fromkeys(ALL_CHECKS, True)
    planned = metadata(result, "reconciled_deals")
    # 24 agent deals, 6 of them in Notion already (keyed); the team's 8 pages have no key.
    assert (planned["to_create_externally"], planned["to_adopt"], planned["conflicts"]) == (18, 8, 7)
    assert conflicts_decided(result) == {
        ("Acme Corp platform renewal", "probability", "Notion", "agent-owned"),  # the agent's 0.7 over 0.4
        ("Globex analytics pilot", "custom_notes", "PostgreSQL", "human-owned"),  # the team's notes
        ("Umbrella security add-on", "manual_tags", "PostgreSQL", "human-owned"),
        ("Wayne Enterprises data migration", "override_stage", "PostgreSQL", "human-owned"),
        ("Initech seat expansion", "deal_stage", "Notion", "last-write-wins"),  # the agent wrote after the team
        ("Stark Industries enterprise deal", "estimated_value", "Notion", "last-write-wins"),
        ("Stark Industries enterprise deal", "close_date", "Notion", "last-write-wins"),
    }
    outbound, inbound = metadata(result, "outbound_sync"), metadata(result, "inbound_sync")
    assert (outbound["created"], outbound["updated"], outbound["errors"]) == (18, 3, 0)
    assert (inbound["created"], inbound["pulled"], inbound["errors"]) == (8, 3, 0)
    assert outbound["requests_used"] > 0

    pages = control.all_pages(DEMO_NOTION_DATA_SOURCE_ID)
    deals = {deal.name: deal for deal in await repository.list_opportunities(tenant)}
    team = [row["Deal Name"] for row in demo_notion_seed()["databases"][0]["pages"] if "Sync Key" not in row]
    assert len(team) == 8
    assert set(deals) == {deal.name for deal in demo_opportunities()} | set(team)
    assert len(pages) == len(deals) == 32
    assert {_text(page, "Sync Key") for page in pages} == {str(deal.id) for deal in deals.values()}
    page = {_text(page, "Deal Name"): page["properties"] for page in pages}
    assert page["Acme Corp platform renewal"]["Probability"]["number"] == 0.7
    assert page["Initech seat expansion"]["Stage"]["select"]["name"] == "Proposal"
    assert deals["Globex analytics pilot"].custom_notes == (
        "Pilot scope agreed on the call: two regions, 60 days, then a go/no-go."
    )
    assert deals["Umbrella security add-on"].manual_tags == ["security", "priority"]
    assert deals["Wayne Enterprises data migration"].override_stage == "Closed Won"

    await assert_the_second_pass_changes_nothing(instance, resources, tenant)


async def test_the_hubspot_demo_tenant_first_pass_on_the_local_hubspot(
    first_pass_on_the_local_crm: LocalFirstPass,
    repository: DealRepository,
    hubspot_server: RunningHubSpot,
    hubspot_control: HubSpotControl,
    tenant: str,
) -> None:
    hubspot_control.reset()
    result, _ = await first_pass_on_the_local_crm(
        "hubspot", hubspot_server.base_url, seed_demo_hubspot, HUBSPOT_DEMO_TENANT
    )

    assert result.success
    assert check_results(result) == dict.fromkeys(ALL_CHECKS, True)
    planned = metadata(result, "reconciled_deals")
    # 8 agent deals, 3 of them in HubSpot already (keyed); the team's 3 deals have no key.
    assert (planned["to_create_externally"], planned["to_adopt"], planned["conflicts"]) == (5, 3, 3)
    assert conflicts_decided(result) == {
        ("Northwind supply chain analytics", "probability", "HubSpot", "agent-owned"),
        ("Contoso platform migration", "custom_notes", "PostgreSQL", "human-owned"),
        ("Fabrikam security bundle", "estimated_value", "HubSpot", "last-write-wins"),
    }
    outbound, inbound = metadata(result, "outbound_sync"), metadata(result, "inbound_sync")
    assert (outbound["created"], outbound["errors"], inbound["created"], inbound["errors"]) == (5, 0, 3, 0)
    assert outbound["requests_used"] > 0  # HubSpot's requests are counted too

    records = [record["properties"] for record in hubspot_control.all_records("deals")]
    deals = {deal.name: deal for deal in await repository.list_opportunities(tenant)}
    assert len(records) == len(deals) == 11
    assert {record["crm_pipeline_id"] for record in records} == {str(deal.id) for deal in deals.values()}
    by_name: dict[str, Any] = {record["dealname"]: record for record in records}
    assert Decimal(by_name["Fabrikam security bundle"]["amount"]) == 47000
    assert Decimal(by_name["Northwind supply chain analytics"]["crm_probability"]) == Decimal("0.6")
    assert deals["Contoso platform migration"].custom_notes is not None
    assert deals["Contoso platform migration"].custom_notes.startswith("Two waves")
    assert deals["Fabrikam security bundle"].manual_tags == ["pilot"]  # only in HubSpot: pulled, no conflict
    assert deals["Trey Research platform seats"].override_stage == "Negotiation"  # the team's own deal, adopted


async def test_the_salesforce_demo_tenant_first_pass_on_the_local_salesforce(
    first_pass_on_the_local_crm: LocalFirstPass,
    repository: DealRepository,
    salesforce_server: RunningSalesforce,
    salesforce_control: SalesforceControl,
    instance: dg.DagsterInstance,
    tenant: str,
) -> None:
    """As its integration user."""
    salesforce_control.reset()
    result, resources = await first_pass_on_the_local_crm(
        "salesforce", salesforce_server.base_url, seed_demo_salesforce, SALESFORCE_DEMO_TENANT
    )

    assert result.success
    assert check_results(result) == dict.fromkeys(ALL_CHECKS, True)
    planned = metadata(result, "reconciled_deals")
    # 6 agent deals, 4 of them in Salesforce already (keyed); the team's 2 opportunities have no key.
    assert (planned["to_create_externally"], planned["to_adopt"], planned["conflicts"]) == (2, 2, 6)
    assert conflicts_decided(result) == {
        # A person moved the stage alone a day ago: the agent's later stage goes back, and the
        # stage's default probability Salesforce set with it is no conflict (the agent's is written).
        ("Rekall memory analytics", "deal_stage", "Salesforce", "last-write-wins"),
        # A person moved the stage and typed a probability: the agent-owned field's conflict.
        ("Ollivanders inventory platform", "deal_stage", "Salesforce", "last-write-wins"),
        ("Ollivanders inventory platform", "probability", "Salesforce", "agent-owned"),
        ("Spacely Sprockets security review", "custom_notes", "PostgreSQL", "human-owned"),
        ("Cogswell Cogs services retainer", "estimated_value", "Salesforce", "last-write-wins"),
        ("Cogswell Cogs services retainer", "close_date", "Salesforce", "last-write-wins"),
    }
    outbound, inbound = metadata(result, "outbound_sync"), metadata(result, "inbound_sync")
    assert (outbound["created"], outbound["updated"], outbound["errors"]) == (2, 3, 0)
    assert (inbound["created"], inbound["pulled"], inbound["errors"]) == (2, 1, 0)
    assert outbound["requests_used"] > 0  # Salesforce's requests are counted too

    records = [r for r in salesforce_control.all_records("Opportunity") if not r["IsDeleted"]]
    deals = {deal.name: deal for deal in await repository.list_opportunities(tenant)}
    assert len(records) == len(deals) == 8
    assert {record["Sync_Key__c"] for record in records} == {str(deal.id) for deal in deals.values()}
    by_name: dict[str, Any] = {record["Name"]: record for record in records}
    assert (by_name["Rekall memory analytics"]["StageName"], by_name["Rekall memory analytics"]["Probability"]) == (
        "Proposal/Price Quote",
        60,
    )
    assert by_name["Ollivanders inventory platform"]["Probability"] == 30
    assert Decimal(str(by_name["Cogswell Cogs services retainer"]["Amount"])) == 58000
    assert deals["Spacely Sprockets security review"].custom_notes == (
        "Board meets on the 3rd; George wants the pen-test report first."
    )
    adopted = deals["Gekko & Co compliance suite"]  # the team's own opportunity
    assert (adopted.override_stage, adopted.manual_tags, adopted.deal_stage) == (
        "Negotiation",
        ["priority"],
        "Proposal",
    )

    await assert_the_second_pass_changes_nothing(instance, resources, tenant)


def _text(page: dict[str, Any], name: str) -> str:
    value = page["properties"][name]
    return "".join(part["plain_text"] for part in value[value["type"]])


async def test_seeding_again_keeps_what_became_of_the_demo_deals(repository: DealRepository, tenant: str) -> None:
    """`crm-pipeline dev` seeds at every start: a deal the sync or the agent changed since stays so."""
    first = await seed_demo(repository, tenant)
    assert (first.created, first.unchanged) == (24, 0)
    globex = next(deal for deal in await repository.list_opportunities(tenant) if deal.name.startswith("Globex"))
    await repository.update_opportunity(
        tenant, globex.id, OpportunityUpdate(custom_notes="From Notion", estimated_value=Decimal(50000))
    )

    again = await seed_demo(repository, tenant)

    assert (again.created, again.updated, again.unchanged) == (0, 0, 24)
    kept = await repository.get_opportunity(tenant, globex.id)
    assert kept is not None and (kept.custom_notes, kept.estimated_value) == ("From Notion", 50000)
