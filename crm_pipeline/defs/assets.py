"""Assets: the deal data as Dagster sees it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

import dagster as dg
import pandas as pd

from crm_pipeline.defs.resources import DealStoreResource, NotionResource
from crm_pipeline.models import MAX_LIST_LIMIT, ExternalOpportunityRead, OpportunityFilter, OpportunityRead


async def read_all(
    list_opportunities: Callable[[OpportunityFilter], Awaitable[Sequence[OpportunityRead]]],
    *,
    archived: bool | None = False,
) -> list[OpportunityRead]:
    """Every opportunity a backend lists, page by page: an asset never stops silently at a cap."""
    rows: list[OpportunityRead] = []
    while True:
        criteria = OpportunityFilter(limit=MAX_LIST_LIMIT, offset=len(rows), order_by="created_at", archived=archived)
        page = await list_opportunities(criteria)
        rows.extend(page)
        if len(page) < MAX_LIST_LIMIT:
            return rows


@dg.asset(group_name="deals", kinds={"postgres"})
async def postgres_opportunities(deal_store: DealStoreResource) -> dg.MaterializeResult[None]:
    """Live (not archived) opportunities in the PostgreSQL deal store, the sync's primary side."""
    opportunities = await read_all(partial(deal_store.repository.list_opportunities, deal_store.tenant_id))
    rows = [opportunity.model_dump(mode="json") for opportunity in opportunities]
    return dg.MaterializeResult(metadata={"tenant": dg.MetadataValue.text(deal_store.tenant_id), **_summary(rows)})


@dg.asset(group_name="deals", kinds={"notion"})
async def notion_pages(notion: NotionResource) -> dg.MaterializeResult[None]:
    """Deal pages in the Notion database (trash excluded), the sync's external side."""
    pages = await read_all(notion.adapter.list_opportunities)
    linked = sum(1 for page in pages if isinstance(page, ExternalOpportunityRead) and page.sync_key is not None)
    return dg.MaterializeResult(
        metadata={
            **_summary([page.model_dump(mode="json") for page in pages]),
            "linked_to_postgres": dg.MetadataValue.int(linked),
            "created_in_notion": dg.MetadataValue.int(len(pages) - linked),
            "unreadable_pages": dg.MetadataValue.int(len(notion.adapter.read_errors)),
        }
    )


def _summary(rows: list[dict[str, Any]]) -> dict[str, dg.MetadataValue]:
    """Row count, deals per stage and a preview table: what a person checks first in the UI."""
    frame = pd.DataFrame(rows, columns=["id", "name", "deal_stage", "estimated_value", "updated_at"])
    by_stage = {str(stage): int(count) for stage, count in frame["deal_stage"].value_counts().items()}
    return {
        "row_count": dg.MetadataValue.int(len(frame)),
        "by_stage": dg.MetadataValue.json(by_stage),
        "preview": dg.MetadataValue.md(frame.head(10).to_markdown(index=False) if len(frame) else "(none)"),
    }
