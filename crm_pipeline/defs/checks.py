"""Asset checks: invariants the deal store must keep, run after each materialization and in CI."""

from __future__ import annotations

import dagster as dg

from crm_pipeline.defs.assets import postgres_opportunities
from crm_pipeline.defs.resources import DealStoreResource


@dg.asset_check(asset=postgres_opportunities, description="Every opportunity has change-log history.")
async def opportunities_have_change_history(deal_store: DealStoreResource) -> dg.AssetCheckResult:
    """A row without a change-log entry was written around the repository: its edits cannot be
    merged per field or audited."""
    unaudited = await deal_store.repository.opportunities_without_history(deal_store.tenant_id)
    return dg.AssetCheckResult(
        passed=not unaudited,
        metadata={"unaudited_count": len(unaudited), "sample": dg.MetadataValue.json([str(i) for i in unaudited[:10]])},
    )
