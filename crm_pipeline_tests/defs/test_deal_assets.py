"""The Dagster code location: it loads, and its assets and checks run against the real deal store."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from uuid import uuid4

import dagster as dg
from sqlalchemy import text

from crm_pipeline.definitions import defs
from crm_pipeline.defs.assets import postgres_opportunities, read_all
from crm_pipeline.defs.checks import opportunities_have_change_history
from crm_pipeline.defs.resources import DealStoreResource, NotionResource
from crm_pipeline.models import MAX_LIST_LIMIT, OpportunityCreate, OpportunityFilter, OpportunityRead
from crm_pipeline.store import Database, DealRepository


def test_code_location_loads() -> None:
    dg.Definitions.validate_loadable(defs)


async def _materialize(database: Database, tenant: str) -> dg.ExecuteInProcessResult:
    """Run the asset and its check in-process; Dagster runs its own event loop, so in a thread."""
    deal_store = DealStoreResource(
        tenant_id=tenant,
        database_url=database.url.render_as_string(hide_password=False),
        app_database_url=database.app_url.render_as_string(hide_password=False),
    )
    return await asyncio.to_thread(
        dg.materialize,
        [postgres_opportunities, opportunities_have_change_history],
        resources={"deal_store": deal_store},
    )


async def test_postgres_opportunities_counts_live_deals_and_the_check_passes(
    database: Database, repository: DealRepository, tenant: str
) -> None:
    for name, stage in [("A", "Closed Won"), ("B", "Closed Won"), ("C", "Qualified")]:
        await repository.create_opportunity(tenant, OpportunityCreate(name=name, deal_stage=stage))
    result = await _materialize(database, tenant)
    assert result.success
    metadata = result.asset_materializations_for_node("postgres_opportunities")[0].metadata
    assert metadata["row_count"].value == 3
    assert metadata["by_stage"].value == {"Closed Won": 2, "Qualified": 1}
    assert [evaluation.passed for evaluation in result.get_asset_check_evaluations()] == [True]


async def test_change_history_check_fails_for_a_row_written_with_change_capture_switched_off(
    database: Database, repository: DealRepository, tenant: str
) -> None:
    """The tables' owner (no superuser needed) can switch the capture triggers off for a write:
    the row then has no history, and the check says so."""
    await repository.create_opportunity(tenant, OpportunityCreate(name="Audited"))
    async with database.owner_transaction() as connection:
        await connection.execute(text("ALTER TABLE crm.opportunities DISABLE TRIGGER capture_inserts"))
        await connection.execute(text("SELECT set_config('crm.tenant_id', :t, true)"), {"t": tenant})
        await connection.execute(
            text(
                "INSERT INTO crm.opportunities (id, tenant_id, name, deal_stage) VALUES (:id, :t, 'Sneaky', 'Closed Won')"
            ),
            {"id": uuid4(), "t": tenant},
        )
        await connection.execute(text("ALTER TABLE crm.opportunities ENABLE TRIGGER capture_inserts"))
    result = await _materialize(database, tenant)
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.passed is False
    assert evaluation.metadata["unaudited_count"].value == 1


async def test_read_all_pages_past_the_listing_cap() -> None:
    """A backend lists at most MAX_LIST_LIMIT per call: the assets page on instead of stopping."""
    deals = [OpportunityRead.model_validate(_row(n)) for n in range(MAX_LIST_LIMIT + 5)]
    calls: list[OpportunityFilter] = []

    async def list_opportunities(criteria: OpportunityFilter) -> list[OpportunityRead]:
        calls.append(criteria)
        return deals[criteria.offset : criteria.offset + criteria.limit]

    assert await read_all(list_opportunities) == deals
    assert [call.offset for call in calls] == [0, MAX_LIST_LIMIT]


def _row(n: int) -> dict[str, object]:
    now = datetime(2026, 1, 1, tzinfo=UTC)  # any instant: the rows never reach a database
    return {
        "id": uuid4(),
        "tenant_id": "t",
        "name": f"D{n}",
        "deal_stage": "Lead",
        "created_at": now,
        "updated_at": now,
    }


def test_resources_keep_their_secrets_out_of_reprs() -> None:
    deal_store = DealStoreResource(tenant_id="t", database_url="postgresql://crm:hunter2@db.example/crm")
    notion = NotionResource(token="ntn_supersecret", database_id="db")
    assert "hunter2" not in repr(deal_store) and "hunter2" not in str(deal_store)
    assert "ntn_supersecret" not in repr(notion) and "ntn_supersecret" not in str(notion)
