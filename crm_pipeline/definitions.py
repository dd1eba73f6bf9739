"""The crm_pipeline code location: the only place that builds Dagster `Definitions`.

The resources read the project settings when a run starts, not here: loading the code location
needs no environment, and no token ever becomes visible config.
"""

import dagster as dg

from crm_pipeline.defs import checks
from crm_pipeline.defs.assets.reconcile import reconciled_deals
from crm_pipeline.defs.assets.sources import notion_pages, postgres_opportunities
from crm_pipeline.defs.assets.sync import inbound_sync, outbound_sync
from crm_pipeline.defs.housekeeping import dagster_housekeeping, housekeeping_daily
from crm_pipeline.defs.resources import CRMConnectionResource, DealStoreResource, TenantsResource
from crm_pipeline.defs.schedules import (
    deals_sync_job,
    sync_each_tenant_every_minute,
    sync_every_minute,
    tenants_sweep_job,
)
from crm_pipeline.defs.sensors import tenant_partitions_sensor

RESOURCES = {"deal_store": DealStoreResource(), "crm": CRMConnectionResource(), "tenants": TenantsResource()}

defs = dg.Definitions(
    assets=[postgres_opportunities, notion_pages, reconciled_deals, outbound_sync, inbound_sync],
    asset_checks=dg.load_asset_checks_from_modules([checks]),
    jobs=[tenants_sweep_job, deals_sync_job, dagster_housekeeping],
    schedules=[sync_every_minute, sync_each_tenant_every_minute, housekeeping_daily],
    sensors=[tenant_partitions_sensor],
    resources=RESOURCES,
    # Runs launched from the UI or `dagster asset materialize` too: the multiprocess executor costs
    # 12-16 s of process start-up a run; the steps of one pass are sequential anyway.
    executor=dg.in_process_executor,
)
