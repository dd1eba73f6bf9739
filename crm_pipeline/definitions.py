"""The crm_pipeline code location: the only place that builds Dagster `Definitions`.

The resources read the project settings when a run starts, not here: loading the code location
needs no environment, and the Notion token never becomes visible config.
"""

import dagster as dg

from crm_pipeline.defs.assets import notion_pages, postgres_opportunities
from crm_pipeline.defs.checks import notion_pages_map_cleanly, opportunities_have_change_history
from crm_pipeline.defs.resources import DealStoreResource, NotionResource

defs = dg.Definitions(
    assets=[postgres_opportunities, notion_pages],
    asset_checks=[opportunities_have_change_history, notion_pages_map_cleanly],
    resources={"deal_store": DealStoreResource(), "notion": NotionResource()},
)
