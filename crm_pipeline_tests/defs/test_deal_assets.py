"""The Dagster code location: it loads, and its assets and checks run against the real deal store."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import dagster as dg
from sqlalchemy import text

from crm_pipeline.definitions import defs
from crm_pipeline.defs.assets import postgres_opportunities
from crm_pipeline.defs.checks import opportunities_have_change_history
from crm_pipeline.defs.resources import DealStoreResource
from crm_pipeline.models import OpportunityCreate
from crm_pipeline.store import Database, DealRepository


def test_code_location_loads() -> None:
    dg.Definitions.validate_loadable(defs)


async def _materialize(database: Database, tenant: str) -> dg.ExecuteInProcessResult:
    """Run the asset and its check in-process; Dagster runs its own event loop, so in a thread."""
    deal_store = DealStoreResource(tenant_id=tenant, database_url=database.url.render_as_string(hide_password=False))
    return await asyncio.to_thread(
        dg.materialize,
        [postgres_opportunities, opportunities_have_change_history],
        resources={"deal_store": deal_store},
    )


async def test_postgres_opportunities_counts_live_deals_and_the_check_passes(
    database: Database, repository: DealRepository, tenant: str
) -> None:
    for name, stage in [("A", "won"), ("B", "won"), ("C", "qualified")]:
        await repository.create_opportunity(tenant, OpportunityCreate(name=name, deal_stage=stage))
    result = await _materialize(database, tenant)
    assert result.success
    metadata = result.asset_materializations_for_node("postgres_opportunities")[0].metadata
    assert metadata["row_count"].value == 3
    assert metadata["by_stage"].value == {"won": 2, "qualified": 1}
    assert [evaluation.passed for evaluation in result.get_asset_check_evaluations()] == [True]


async def test_change_history_check_fails_for_a_row_written_around_the_repository(
    database: Database, repository: DealRepository, tenant: str
) -> None:
    await repository.create_opportunity(tenant, OpportunityCreate(name="Audited"))
    async with database.owner_transaction() as connection:
        await connection.execute(
            text("INSERT INTO crm.opportunities (id, tenant_id, name, deal_stage) VALUES (:id, :t, 'Sneaky', 'won')"),
            {"id": uuid4(), "t": tenant},
        )
    result = await _materialize(database, tenant)
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.passed is False
    assert evaluation.metadata["unaudited_count"].value == 1
