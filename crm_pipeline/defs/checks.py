"""Asset checks: what must hold before the sync writes (blocking) and what a pass should leave
behind (drift, errors, lag). They run after each materialization and in CI; a failing
non-blocking check does not fail the run, so tests assert every evaluation."""

import warnings
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import dagster as dg

from crm_pipeline.defs.assets.sources import notion_pages, postgres_opportunities
from crm_pipeline.defs.assets.sync import inbound_sync
from crm_pipeline.defs.assets.tenant_pass import TenantPass, markdown, tenant_pass
from crm_pipeline.defs.partitions import tenant_partitions
from crm_pipeline.defs.resources import CRMConnectionResource, DealStoreResource, TenantsResource
from crm_pipeline.store import DealRepository
from crm_pipeline.sync.merge import comparable
from crm_pipeline.sync.stages import Decisions, SideChanges
from crm_pipeline.sync.status import Direction

ERROR_LEDGER_THRESHOLD = 10
"""Records that may be waiting in the error ledger before the check warns."""
MAX_LAG_SECONDS = 300
"""How long since the last finished pass before the lag check warns (five one-minute ticks)."""
DRIFT_SAMPLE = 10
"""Records a pass wrote that are compared with both sides afterwards (each costs one external read)."""


def tenant_check(**spec: Any) -> Callable[[Callable[..., Any]], dg.AssetChecksDefinition]:
    """``@dg.asset_check`` partitioned by tenant, like every asset it checks: an unpartitioned
    check would load the asset's value of every tenant, not the run's.

    Partitioned checks are a preview API in Dagster 1.13 with no stable equivalent (a check
    result is recorded with a partition only when its spec has a ``partitions_def``, wherever the
    check is declared), so the PreviewWarning Dagster emits for each is filtered here, and only
    here. The functions are typed loosely because Dagster's stubs know only sync check
    functions; async ones run on the run's loop (dagster#28315).
    """

    def decorate(function: Callable[..., Any]) -> dg.AssetChecksDefinition:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore",
                message="Specifying a partitions_def on an AssetCheckSpec is currently in preview",
                category=dg.PreviewWarning,
            )
            return dg.asset_check(partitions_def=tenant_partitions, **spec)(function)

    return decorate


@tenant_check(
    asset=postgres_opportunities,
    description="Every opportunity has change-log history.",
)
async def opportunities_have_change_history(
    context: dg.AssetCheckExecutionContext, deal_store: DealStoreResource
) -> dg.AssetCheckResult:
    """PostgreSQL logs every write by trigger, so a row without a change-log entry was written
    while the tables' owner had switched change capture off: its edits cannot be merged per field."""
    return await change_history(deal_store.repository, context.partition_key)


async def change_history(repository: DealRepository, tenant_id: str) -> dg.AssetCheckResult:
    unaudited = await repository.opportunities_without_history(tenant_id)
    return dg.AssetCheckResult(
        passed=not unaudited,
        metadata={"unaudited_count": len(unaudited), "sample": dg.MetadataValue.json([str(i) for i in unaudited[:10]])},
    )


@tenant_check(
    asset=notion_pages,
    blocking=True,
    description="The property map matches the external data source's schema; nothing is written otherwise.",
)
def mapping_matches_schema(notion_pages: SideChanges) -> dg.AssetCheckResult:
    """A renamed, retyped or deleted property would make every write fail or land in the wrong
    column: the read that binds the map to the schema says whether it still fits."""
    return schema_fit(notion_pages)


def schema_fit(notion_pages: SideChanges) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=notion_pages.schema_error is None,
        metadata={"problem": dg.MetadataValue.text(notion_pages.schema_error or "(none)")},
    )


@tenant_check(asset=notion_pages, description="Every changed page maps to an opportunity.")
def pages_map_cleanly(notion_pages: SideChanges) -> dg.AssetCheckResult:
    """A page whose values cannot be mapped (a stage not in the pipeline) cannot sync until
    someone fixes it; this names each such page."""
    return mappable_pages(notion_pages)


def mappable_pages(notion_pages: SideChanges) -> dg.AssetCheckResult:
    problems = [str(error) for error in notion_pages.unreadable]
    return dg.AssetCheckResult(
        passed=not problems,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"unmappable_count": len(problems), "problems": dg.MetadataValue.json(problems[:20])},
    )


@tenant_check(
    asset=notion_pages,
    blocking=True,
    description="No deal is linked to two pages and no page to two deals.",
)
async def one_page_per_deal(
    context: dg.AssetCheckExecutionContext,
    deal_store: DealStoreResource,
    crm: CRMConnectionResource,
    tenants: TenantsResource,
    notion_pages: SideChanges,
) -> dg.AssetCheckResult:
    """A duplicated page carries its original's sync key: syncing it would make two pages one
    deal. The links are unique both ways in the store; this finds changed pages whose key another
    page carries, in this read or in the links. A record a person merged into another (HubSpot)
    lives on as the survivor, where this pass moves its link: not a duplicate."""
    return await pages_per_deal(await tenant_pass(context.partition_key, deal_store, crm, tenants), notion_pages)


async def pages_per_deal(run: TenantPass, notion_pages: SideChanges) -> dg.AssetCheckResult:
    pages_by_key: dict[str, set[str]] = defaultdict(set)
    for change in notion_pages.changes:
        if change.sync_key:
            pages_by_key[change.sync_key.lower()].add(change.record_id)
    survivors = {merged: change.record_id for change in notion_pages.changes for merged in change.merged_ids}
    linked = await run.sync.status.links([UUID(key) for key in pages_by_key])
    for record_id, page_id in linked.items():
        pages_by_key[str(record_id)].add(survivors.get(page_id, page_id))
    duplicates = {key: sorted(pages) for key, pages in pages_by_key.items() if len(pages) > 1}
    return dg.AssetCheckResult(
        passed=not duplicates,
        metadata={
            "deals_on_several_pages": len(duplicates),
            "pages": markdown([{"deal": key, "pages": ", ".join(pages)} for key, pages in duplicates.items()]),
        },
    )


@tenant_check(
    asset=inbound_sync,
    additional_ins={"reconciled_deals": dg.AssetIn()},
    description="The records a pass synced agree with their base on both sides.",
)
async def settled_records_agree(
    context: dg.AssetCheckExecutionContext,
    deal_store: DealStoreResource,
    crm: CRMConnectionResource,
    tenants: TenantsResource,
    reconciled_deals: Decisions,
) -> dg.AssetCheckResult:
    """Drift: after a pass, a record it synced holds its base on both sides (an edit made since
    shows here too, and the next pass takes it up)."""
    return await settled_drift(await tenant_pass(context.partition_key, deal_store, crm, tenants), reconciled_deals)


async def settled_drift(run: TenantPass, reconciled_deals: Decisions) -> dg.AssetCheckResult:
    written = [record.record_id for record in reconciled_deals.plan.records if record.push or record.pull]
    record_ids = written[:DRIFT_SAMPLE]
    drifted = []
    sync = run.sync
    assert sync.external is not None
    links = await sync.status.links(record_ids)
    bases = await sync.status.bases(links)
    primary = {r.id: r for r in await sync.deal_store.get_opportunities([str(i) for i in links])}
    external = {
        str(getattr(r, "external_id", r.id)): r for r in await sync.external.get_opportunities(list(links.values()))
    }
    for record_id, external_id in links.items():
        for field, base in bases.get(record_id, {}).items():
            for side, record in (("primary", primary.get(record_id)), ("external", external.get(external_id))):
                if record is not None and comparable(getattr(record, field)) != comparable(base):
                    drifted.append({"record": str(record_id), "field": field, "side": side})
    return dg.AssetCheckResult(
        passed=not drifted,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"compared": len(links), "drifted": len(drifted), "fields": markdown(drifted[:20])},
    )


@tenant_check(
    asset=inbound_sync,
    description=f"At most {ERROR_LEDGER_THRESHOLD} records wait in the error ledger.",
)
async def error_ledger_under_threshold(
    context: dg.AssetCheckExecutionContext,
    deal_store: DealStoreResource,
    crm: CRMConnectionResource,
    tenants: TenantsResource,
) -> dg.AssetCheckResult:
    """Records that failed stay in the ledger and are retried every pass; many means something
    systematic (a refused token, a closed select option) that a person must fix."""
    return await ledger_size(await tenant_pass(context.partition_key, deal_store, crm, tenants))


async def ledger_size(run: TenantPass) -> dg.AssetCheckResult:
    errors = await run.sync.status.errors()
    return dg.AssetCheckResult(
        passed=len(errors) <= ERROR_LEDGER_THRESHOLD,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "ledger_size": len(errors),
            "threshold": ERROR_LEDGER_THRESHOLD,
            "sample": markdown([{"record": e.record_id, "field": e.field, "reason": e.reason} for e in errors[:20]]),
        },
    )


@tenant_check(
    asset=inbound_sync,
    description=f"The last finished pass is at most {MAX_LAG_SECONDS} s old.",
)
async def sync_lag_within_bound(
    context: dg.AssetCheckExecutionContext,
    deal_store: DealStoreResource,
    crm: CRMConnectionResource,
    tenants: TenantsResource,
) -> dg.AssetCheckResult:
    """Each finished pass moves the inbound watermark; one that stands still means passes fail
    or are not scheduled."""
    return await pass_lag(await tenant_pass(context.partition_key, deal_store, crm, tenants))


async def pass_lag(run: TenantPass) -> dg.AssetCheckResult:
    stored = await run.sync.status.watermark(Direction.INBOUND)
    lag = None if stored is None else (datetime.now(UTC) - stored[1]).total_seconds()
    return dg.AssetCheckResult(
        passed=lag is not None and lag <= MAX_LAG_SECONDS,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "lag_seconds": dg.MetadataValue.float(-1.0 if lag is None else round(lag, 1)),
            "bound_seconds": MAX_LAG_SECONDS,
        },
    )
