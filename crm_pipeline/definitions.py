"""The crm_pipeline code location: the only place that builds Dagster `Definitions`."""

import os

import dagster as dg

from crm_pipeline.defs.assets import notion_pages, postgres_opportunities
from crm_pipeline.defs.checks import notion_pages_map_cleanly, opportunities_have_change_history
from crm_pipeline.defs.resources import DealStoreResource, NotionResource

defs = dg.Definitions(
    assets=[postgres_opportunities, notion_pages],
    asset_checks=[opportunities_have_change_history, notion_pages_map_cleanly],
    resources={
        "deal_store": DealStoreResource(),
        "notion": NotionResource(
            token=dg.EnvVar("CRM_PIPELINE_NOTION_TOKEN"),
            # Not secrets: plain environment values (shown in the UI), as `crm-pipeline dev` sets them.
            database_id=os.getenv("CRM_PIPELINE_NOTION_DATABASE_ID", ""),
            data_source_id=os.getenv("CRM_PIPELINE_NOTION_DATA_SOURCE_ID") or None,
            base_url=os.getenv("CRM_PIPELINE_NOTION_BASE_URL") or None,
        ),
    },
)
