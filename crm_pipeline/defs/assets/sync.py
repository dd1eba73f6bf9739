"""The writes: the decisions applied to the external CRM, then to the deal store.

Either write is left undone, without failing the run, when another pass of the tenant (a sweep's,
or another run's) is writing or has synced since this run's reads (``PassOvertakenError``): that
pass wrote what it read, and the watermarks move only past what a pass wrote, so the next pass
reads whatever is left. A skipped write records no materialization; its checks are skipped too.
"""

from collections.abc import AsyncIterator

import dagster as dg

from crm_pipeline.defs.assets.tenant_pass import inbound_metadata, outbound_metadata, tenant_pass
from crm_pipeline.defs.partitions import tenant_partitions
from crm_pipeline.defs.resources import CRMConnectionResource, DealStoreResource, TenantsResource
from crm_pipeline.sync.stages import Decisions, PassOvertakenError
from crm_pipeline.sync.status import LedgerEntry


# The writes may end without an output, so Dagster cannot infer their types from the generators'.
@dg.asset(
    group_name="sync", kinds={"notion"}, partitions_def=tenant_partitions, output_required=False, dagster_type=dg.Any
)
async def outbound_sync(
    context: dg.AssetExecutionContext,
    deal_store: DealStoreResource,
    crm: CRMConnectionResource,
    tenants: TenantsResource,
    reconciled_deals: Decisions,
) -> AsyncIterator[dg.Output[list[LedgerEntry]]]:
    """Deals created and fields pushed to the external CRM, as the reconciliation decided."""
    run = await tenant_pass(context.partition_key, deal_store, crm, tenants)
    try:
        tally = await run.sync.write_outbound(reconciled_deals)
    except PassOvertakenError as overtaken:
        context.log.warning(f"nothing written: {overtaken}")
        return
    yield dg.Output([*tally.failures, *tally.deferred], metadata=outbound_metadata(run, tally.result()))


@dg.asset(
    group_name="sync",
    kinds={"postgres"},
    partitions_def=tenant_partitions,
    output_required=False,
    dagster_type=dg.Any,
)
async def inbound_sync(
    context: dg.AssetExecutionContext,
    deal_store: DealStoreResource,
    crm: CRMConnectionResource,
    tenants: TenantsResource,
    reconciled_deals: Decisions,
    outbound_sync: list[LedgerEntry],
) -> AsyncIterator[dg.MaterializeResult[None]]:
    """Human edits and pages pulled into the deal store; then the pass's errors are recorded and
    the watermarks move on."""
    run = await tenant_pass(context.partition_key, deal_store, crm, tenants)
    try:
        result = await run.sync.write_inbound(reconciled_deals, outbound_sync)
    except PassOvertakenError as overtaken:
        context.log.warning(f"nothing written: {overtaken}")
        return
    yield dg.MaterializeResult(metadata=inbound_metadata(run, reconciled_deals, result))
