"""Each side's changes since its watermark: what a sync pass starts from."""

import dagster as dg

from crm_pipeline.defs.assets.tenant_pass import read_metadata, tenant_pass
from crm_pipeline.defs.partitions import tenant_partitions
from crm_pipeline.defs.resources import CRMConnectionResource, DealStoreResource, TenantsResource
from crm_pipeline.sync.stages import SideChanges


@dg.asset(group_name="sync", kinds={"postgres"}, partitions_def=tenant_partitions)
async def postgres_opportunities(
    context: dg.AssetExecutionContext,
    deal_store: DealStoreResource,
    crm: CRMConnectionResource,
    tenants: TenantsResource,
) -> dg.Output[SideChanges]:
    """The deal store's opportunity changes since the outbound watermark (the agent's and others')."""
    run = await tenant_pass(context.partition_key, deal_store, crm, tenants)
    read = await run.sync.read_primary()
    return dg.Output(read, metadata=await read_metadata(run, read))


@dg.asset(group_name="sync", kinds={"notion"}, partitions_def=tenant_partitions)
async def notion_pages(
    context: dg.AssetExecutionContext,
    deal_store: DealStoreResource,
    crm: CRMConnectionResource,
    tenants: TenantsResource,
) -> dg.Output[SideChanges]:
    """The external CRM's deal changes since the inbound watermark. A drifted schema reads as no
    changes and fails the blocking schema check, which stops every write."""
    run = await tenant_pass(context.partition_key, deal_store, crm, tenants)
    read = await run.sync.read_external(refuse_on_drift=True)
    return dg.Output(read, metadata=await read_metadata(run, read))
