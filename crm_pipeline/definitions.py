"""The crm_pipeline code location: the only place that builds Dagster `Definitions`."""

import dagster as dg

from crm_pipeline.defs.assets import postgres_opportunities
from crm_pipeline.defs.checks import opportunities_have_change_history
from crm_pipeline.defs.resources import DealStoreResource

defs = dg.Definitions(
    assets=[postgres_opportunities],
    asset_checks=[opportunities_have_change_history],
    resources={"deal_store": DealStoreResource()},
)
