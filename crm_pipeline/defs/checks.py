"""Asset checks: invariants the deal store must keep, run after each materialization and in CI."""

from __future__ import annotations

import dagster as dg

from crm_pipeline.defs.assets import notion_pages, postgres_opportunities, read_all
from crm_pipeline.defs.resources import DealStoreResource, NotionResource


# Dagster's stub types check functions as sync only; async ones run on the run's loop (dagster#28315).
@dg.asset_check(asset=postgres_opportunities, description="Every opportunity has change-log history.")  # type: ignore[arg-type]
async def opportunities_have_change_history(deal_store: DealStoreResource) -> dg.AssetCheckResult:
    """PostgreSQL logs every write by trigger, so a row without a change-log entry was written
    while the tables' owner had switched change capture off: its edits cannot be merged per field
    or audited."""
    unaudited = await deal_store.repository.opportunities_without_history(deal_store.tenant_id)
    return dg.AssetCheckResult(
        passed=not unaudited,
        metadata={"unaudited_count": len(unaudited), "sample": dg.MetadataValue.json([str(i) for i in unaudited[:10]])},
    )


@dg.asset_check(asset=notion_pages, description="Every Notion deal page maps to an opportunity.")  # type: ignore[arg-type]
async def notion_pages_map_cleanly(notion: NotionResource) -> dg.AssetCheckResult:
    """A page whose values cannot be mapped (a stage not in the pipeline, text in a number column
    after a schema change) cannot sync until someone fixes it; this names each such page."""
    await read_all(notion.adapter.list_opportunities, archived=None)  # trashed pages too
    problems = [str(error) for error in notion.adapter.read_errors]
    return dg.AssetCheckResult(
        passed=not problems,
        metadata={"unmappable_count": len(problems), "problems": dg.MetadataValue.json(problems[:20])},
    )
