"""The reconciliation: every touched deal decided field by field by the ownership rules."""

from typing import Any

import dagster as dg

from crm_pipeline.defs.assets.tenant_pass import decisions_metadata, tenant_pass
from crm_pipeline.defs.partitions import tenant_partitions
from crm_pipeline.defs.resources import CRMConnectionResource, DealStoreResource, TenantsResource
from crm_pipeline.sync.stages import Decisions, SideChanges


@dg.op
async def resolve_conflicts(
    context: dg.OpExecutionContext,
    deal_store: DealStoreResource,
    crm: CRMConnectionResource,
    tenants: TenantsResource,
    primary: SideChanges,
    external: SideChanges,
) -> Decisions:
    """Decide every field of every record either side changed, through the sync engine's pure
    planner (docs/sync-rules.md): what goes out, what comes in, which conflicts and by which rule
    (each by deal name, its old and new value, and the side it is written to: PostgreSQL or the CRM)."""
    run = await tenant_pass(context.partition_key, deal_store, crm, tenants)
    decisions = await run.sync.decide(primary, external)
    context.add_output_metadata(await decisions_metadata(run, decisions))
    return decisions


@dg.graph_asset(
    group_name="sync",
    kinds={"python"},
    partitions_def=tenant_partitions,
    ins={"postgres_opportunities": dg.AssetIn(), "notion_pages": dg.AssetIn()},
)
# A composition function: Dagster passes output handles, not values.
def reconciled_deals(postgres_opportunities: Any, notion_pages: Any) -> Any:
    """The pass's decisions: both sides' changes merged by the field-ownership rules."""
    return resolve_conflicts(postgres_opportunities, notion_pages)
