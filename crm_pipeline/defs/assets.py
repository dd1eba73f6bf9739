"""Assets: the deal data as Dagster sees it."""

from __future__ import annotations

import dagster as dg
import pandas as pd

from crm_pipeline.defs.resources import DealStoreResource
from crm_pipeline.models import OpportunityFilter

PAGE_SIZE = 1_000


@dg.asset(group_name="deals", kinds={"postgres"})
async def postgres_opportunities(deal_store: DealStoreResource) -> dg.MaterializeResult:
    """Live (not archived) opportunities in the PostgreSQL deal store, the sync's primary side."""
    rows = []
    offset = 0
    while True:
        page = await deal_store.repository.list_opportunities(
            deal_store.tenant_id, OpportunityFilter(limit=PAGE_SIZE, offset=offset, order_by="created_at")
        )
        rows.extend(opportunity.model_dump(mode="json") for opportunity in page)
        if len(page) < PAGE_SIZE:
            break
        offset += PAGE_SIZE
    frame = pd.DataFrame(rows, columns=["id", "name", "deal_stage", "estimated_value", "updated_at"])
    by_stage = frame["deal_stage"].value_counts().to_dict() if len(frame) else {}
    return dg.MaterializeResult(
        metadata={
            "tenant": deal_store.tenant_id,
            "row_count": len(frame),
            "by_stage": dg.MetadataValue.json(by_stage),
            "preview": dg.MetadataValue.md(frame.head(10).to_markdown(index=False) if len(frame) else "(none)"),
        }
    )
