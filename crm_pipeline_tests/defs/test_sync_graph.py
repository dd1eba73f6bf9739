"""The whole asset graph in process against the real deal store and the sandbox Notion: what the
sync writes, what each materialization reports, and which checks pass."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import dagster as dg
import pytest

from crm_pipeline.definitions import defs
from crm_pipeline.defs.assets.reconcile import reconciled_deals
from crm_pipeline.defs.assets.sources import notion_pages, postgres_opportunities
from crm_pipeline.defs.assets.sync import inbound_sync, outbound_sync
from crm_pipeline.models import OpportunityCreate, OpportunityUpdate
from crm_pipeline.store import DealRepository
from crm_pipeline.sync import SyncStatus
from crm_pipeline_tests.defs.conftest import TenantWorld, check_results, deals_database, metadata, sync_tenant

pytestmark = pytest.mark.integration

ALL_CHECKS = {
    "opportunities_have_change_history",
    "mapping_matches_schema",
    "pages_map_cleanly",
    "one_page_per_deal",
    "settled_records_agree",
    "error_ledger_under_threshold",
    "sync_lag_within_bound",
}


def test_the_code_location_loads_with_its_graph_schedule_and_partitions() -> None:
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    key = dg.AssetKey
    assert graph.get(key("reconciled_deals")).parent_keys == {key("postgres_opportunities"), key("notion_pages")}
    assert graph.get(key("outbound_sync")).parent_keys == {key("reconciled_deals")}
    assert graph.get(key("inbound_sync")).parent_keys == {key("reconciled_deals"), key("outbound_sync")}
    schedule = defs.resolve_schedule_def("sync_every_minute")
    assert (schedule.cron_schedule, schedule.default_status) == ("* * * * *", dg.DefaultScheduleStatus.RUNNING)
    job = defs.resolve_job_def("deals_sync_job")
    assert job.executor_def is dg.in_process_executor
    assert job.tags["dagster/max_runtime"] == "240"
    assert isinstance(job.partitions_def, dg.DynamicPartitionsDefinition) and job.partitions_def.name == "tenant"
    assert {k.name for k in graph.asset_check_keys} == ALL_CHECKS


def test_loading_the_code_location_warns_nothing() -> None:
    """Every process that loads the code location (code server, daemon, each run) would log a
    warning on every load: Dagster's preview APIs we rely on are acknowledged where we use them.
    In a fresh interpreter, since this one has imported the definitions already."""
    load = subprocess.run(
        [sys.executable, "-W", "error", "-c", "import crm_pipeline.definitions"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert load.returncode == 0, load.stderr[-3000:]


def _human_page(world: TenantWorld, name: str, **extra: Any) -> dict[str, Any]:
    properties = {"Deal Name": {"title": [{"text": {"content": name}}]}, "Stage": {"select": {"name": "Lead"}}, **extra}
    return world.control.human_create_page(
        {"parent": {"data_source_id": world.data_source_id}, "properties": properties}
    )


async def test_a_pass_creates_adopts_and_reports_with_every_check_passing(
    world: TenantWorld, repository: DealRepository, instance: dg.DagsterInstance
) -> None:
    agent_deal = await repository.create_opportunity(world.tenant_id, OpportunityCreate(name="Acme renewal"))
    _human_page(world, "Globex pilot")

    result = await sync_tenant(instance, world.resources, world.tenant_id)

    assert result.success
    assert check_results(result) == dict.fromkeys(ALL_CHECKS, True)
    assert metadata(result, "postgres_opportunities")["changes"] >= 1
    assert metadata(result, "notion_pages")["changes"] == 1
    planned = metadata(result, "reconciled_deals")
    assert (planned["to_create_externally"], planned["to_adopt"]) == (1, 1)
    outbound, inbound = metadata(result, "outbound_sync"), metadata(result, "inbound_sync")
    assert (outbound["created"], outbound["errors"]) == (1, 0)
    assert (inbound["created"], inbound["errors"]) == (1, 0)
    assert outbound["requests_used"] > 0 and outbound["request_budget_per_minute"] > 0
    # Both sides now hold both deals, each page keyed by its deal.
    names = {page["properties"]["Deal Name"]["title"][0]["plain_text"] for page in world.pages()}
    assert names == {"Acme renewal", "Globex pilot"}
    deals = await repository.list_opportunities(world.tenant_id)
    assert {deal.name for deal in deals} == {"Acme renewal", "Globex pilot"}
    keys = {"".join(t["plain_text"] for t in page["properties"]["Sync Key"]["rich_text"]) for page in world.pages()}
    assert keys == {str(deal.id) for deal in deals} and str(agent_deal.id) in keys

    # Nothing changed since: the next pass plans and writes nothing.
    again = await sync_tenant(instance, world.resources, world.tenant_id)
    assert again.success and all(check_results(again).values())
    assert metadata(again, "outbound_sync")["created"] == metadata(again, "inbound_sync")["created"] == 0
    assert metadata(again, "reconciled_deals")["to_push"] == 0


async def test_a_conflict_is_decided_by_rule_and_shown_with_it(
    world: TenantWorld, repository: DealRepository, instance: dg.DagsterInstance
) -> None:
    deal = await repository.create_opportunity(
        world.tenant_id, OpportunityCreate(name="Initech seats", deal_stage="Lead")
    )
    assert (await sync_tenant(instance, world.resources, world.tenant_id)).success
    [page] = world.pages()
    # The agent moves the stage; a human moves it elsewhere two minutes later (the sandbox's clock).
    await repository.update_opportunity(world.tenant_id, deal.id, OpportunityUpdate(deal_stage="Qualified"))
    world.control.set_clock(datetime.now(UTC) + timedelta(minutes=2))
    world.control.human_update_page(page["id"], {"properties": {"Stage": {"select": {"name": "Proposal"}}}})

    result = await sync_tenant(instance, world.resources, world.tenant_id)

    assert result.success and all(check_results(result).values())
    planned = metadata(result, "reconciled_deals")
    assert planned["conflicts"] == 1
    # Each table names the deal beside its id, only the fields that changed, and where a write goes.
    assert table_rows(planned["conflicts_decided"]) == [
        {
            "deal": "Initech seats",
            "record": str(deal.id),
            "field": "deal_stage",
            "old": "Qualified",
            "new": "Proposal",
            "written to": "PostgreSQL",
            "rule": "last-write-wins",
        }
    ]
    [agent_change] = table_rows(metadata(result, "postgres_opportunities")["latest"])
    assert (agent_change["deal"], agent_change["record"], agent_change["fields"], agent_change["by"]) == (
        "Initech seats",
        str(deal.id),
        "deal_stage",
        "agent",
    )
    [human_change] = table_rows(metadata(result, "notion_pages")["latest"])
    assert (human_change["deal"], human_change["record"], human_change["fields"], human_change["by"]) == (
        "Initech seats",
        page["id"],
        "deal_stage",  # the page's other properties hold the base: not listed
        "human",
    )
    assert metadata(result, "inbound_sync")["pulled"] == 1
    stored = await repository.get_opportunity(world.tenant_id, deal.id)
    assert stored is not None and stored.deal_stage == "Proposal"


async def test_a_drifted_schema_blocks_every_write(
    world: TenantWorld, repository: DealRepository, instance: dg.DagsterInstance
) -> None:
    """The Value column retyped to text: the blocking check fails and nothing is created in Notion."""
    world.control.reset()
    drifted = deals_database(world.control, Value={"rich_text": {}})
    world.data_source_id = drifted["data_source_id"]
    world.configure(database_id=drifted["database_id"])
    await repository.create_opportunity(world.tenant_id, OpportunityCreate(name="Umbrella add-on"))

    result = await sync_tenant(instance, world.resources, world.tenant_id)

    assert not result.success
    assert check_results(result)["mapping_matches_schema"] is False
    assert "Value" in metadata(result, "notion_pages")["schema_error"]
    assert result.asset_materializations_for_node("outbound_sync") == []
    assert result.asset_materializations_for_node("inbound_sync") == []
    assert world.pages() == []


async def test_a_run_stopped_after_the_outbound_writes_is_finished_by_the_next(
    world: TenantWorld, repository: DealRepository, instance: dg.DagsterInstance
) -> None:
    """No watermark moves before the inbound step: the next run reads the same changes, finds
    the page already created (its create is keyed) and adopts the human's page once."""
    await repository.create_opportunity(world.tenant_id, OpportunityCreate(name="Acme renewal"))
    _human_page(world, "Globex pilot")
    instance.add_dynamic_partitions("tenant", [world.tenant_id])
    stopped = await asyncio.to_thread(
        dg.materialize,
        [postgres_opportunities, notion_pages, reconciled_deals, outbound_sync, inbound_sync],
        selection=[postgres_opportunities, notion_pages, reconciled_deals, outbound_sync],
        resources=world.resources,
        instance=instance,
        partition_key=world.tenant_id,
    )
    assert stopped.success and len(world.pages()) == 2
    assert {d.name for d in await repository.list_opportunities(world.tenant_id)} == {"Acme renewal"}

    result = await sync_tenant(instance, world.resources, world.tenant_id)

    assert result.success and all(check_results(result).values())
    assert len(world.pages()) == 2
    assert {d.name for d in await repository.list_opportunities(world.tenant_id)} == {"Acme renewal", "Globex pilot"}


async def test_a_failed_push_stays_in_the_ledger_beside_a_pull_of_the_same_deal_and_is_retried(
    world: TenantWorld, repository: DealRepository, instance: dg.DagsterInstance
) -> None:
    """The pull is written by the inbound step after the push failed in the outbound step:
    recording the pull must not clear the push's ledger entry, or the push waits for a full
    reconciliation."""
    deal = await repository.create_opportunity(world.tenant_id, OpportunityCreate(name="Initech seats"))
    assert (await sync_tenant(instance, world.resources, world.tenant_id)).success
    [page] = world.pages()
    await repository.update_opportunity(world.tenant_id, deal.id, OpportunityUpdate(estimated_value=Decimal("4200")))
    world.control.human_update_page(
        page["id"], {"properties": {"Notes": {"rich_text": [{"text": {"content": "call Tuesday"}}]}}}
    )
    world.control.add_fault("503", method="PATCH", path="/v1/pages/*")

    failed = await sync_tenant(instance, world.resources, world.tenant_id)

    assert failed.success
    assert metadata(failed, "outbound_sync")["errors"] == 1 and metadata(failed, "inbound_sync")["pulled"] == 1
    ledger = await SyncStatus(repository, world.tenant_id, "notion").errors()
    assert [entry.record_id for entry in ledger] == [str(deal.id)]

    retried = await sync_tenant(instance, world.resources, world.tenant_id)

    assert retried.success and metadata(retried, "outbound_sync")["updated"] == 1
    [page] = world.pages()
    assert page["properties"]["Value"]["number"] == 4200
    assert await SyncStatus(repository, world.tenant_id, "notion").errors() == []


def table_rows(table: str) -> list[dict[str, str]]:
    """A markdown metadata table's rows, by column name."""
    header, _, *rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines()]
    return [dict(zip(header, row, strict=True)) for row in rows]


async def test_a_run_overtaken_by_another_pass_of_its_tenant_writes_nothing_and_does_not_fail(
    world: TenantWorld, repository: DealRepository, instance: dg.DagsterInstance
) -> None:
    """Another pass (a sweep's) holds the tenant while this run would write: the run ends without
    its writes or their checks, and fails nothing; its changes wait past the unmoved watermarks
    for the next run."""
    await repository.create_opportunity(world.tenant_id, OpportunityCreate(name="Acme renewal"))

    async with SyncStatus(repository, world.tenant_id, "notion").pass_lock() as held:
        assert held
        overtaken = await sync_tenant(instance, world.resources, world.tenant_id)

    assert overtaken.success
    assert overtaken.asset_materializations_for_node("outbound_sync") == []
    assert overtaken.asset_materializations_for_node("inbound_sync") == []
    assert "settled_records_agree" not in check_results(overtaken)
    assert world.pages() == []
    result = await sync_tenant(instance, world.resources, world.tenant_id)
    assert result.success and metadata(result, "outbound_sync")["created"] == 1
    assert [page["properties"]["Deal Name"]["title"][0]["plain_text"] for page in world.pages()] == ["Acme renewal"]
