"""The writes: the decisions applied to the external CRM, then to the deal store."""

import dagster as dg

from crm_pipeline.defs.assets.tenant_pass import inbound_metadata, outbound_metadata, tenant_pass
from crm_pipeline.defs.partitions import tenant_partitions
from crm_pipeline.defs.resources import CRMConnectionResource, DealStoreResource, TenantsResource
from crm_pipeline.sync.stages import Decisions
from crm_pipeline.sync.status import LedgerEntry


@dg.asset(group_name="sync", kinds={"notion"}, partitions_def=tenant_partitions)
async def outbound_sync(
    context: dg.AssetExecutionContext,
    deal_store: DealStoreResource,
    crm: CRMConnectionResource,
    tenants: TenantsResource,
    reconciled_deals: Decisions,
) -> dg.Output[list[LedgerEntry]]:
    """Deals created and fields pushed to the external CRM, as the reconciliation decided."""
    run = await tenant_pass(context.partition_key, deal_store, crm, tenants)
    tally = await run.sync.write_outbound(reconciled_deals)
    return dg.Output([*tally.failures, *tally.deferred], metadata=outbound_metadata(run, tally.result()))


@dg.asset(
    group_name="sync",
    kinds={"postgres"},
    partitions_def=tenant_partitions,
)
async def inbound_sync(
    context: dg.AssetExecutionContext,
    deal_store: DealStoreResource,
    crm: CRMConnectionResource,
    tenants: TenantsResource,
    reconciled_deals: Decisions,
    outbound_sync: list[LedgerEntry],
) -> dg.MaterializeResult[None]:
    """Human edits and pages pulled into the deal store; then the pass's errors are recorded and
    the watermarks move on."""
    run = await tenant_pass(context.partition_key, deal_store, crm, tenants)
    result = await run.sync.write_inbound(reconciled_deals, outbound_sync)
    return dg.MaterializeResult(metadata=inbound_metadata(run, reconciled_deals, result))
