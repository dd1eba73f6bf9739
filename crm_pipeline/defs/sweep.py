"""The sweep: one run syncs a shard of the active tenants, their passes concurrently in one
process, so a thousand tenants cost a few runs a minute, not a thousand process starts.

Each tenant stays a partition a person inspects and backfills: a pass that did something (read a
change, wrote, failed a record) records its partitions' materializations and check results, with
the metadata a run of ``deals_sync_job`` gives them. A quiet pass
(nothing decided, nothing written) records nothing: idle tenants add no rows to Dagster's event log. A pass that fails, or that a
blocking check stops, is recorded as an observation of its ``inbound_sync`` partition naming the
error, and fails the run once every other tenant of the shard is synced. A tenant with a run of
its own in flight (a backfill's ``deals_sync_job``) is left to that run.
"""

import asyncio
import time
import zlib
from dataclasses import dataclass, field

import dagster as dg

from crm_pipeline.defs import checks
from crm_pipeline.defs.assets.reconcile import reconciled_deals
from crm_pipeline.defs.assets.sources import notion_pages, postgres_opportunities
from crm_pipeline.defs.assets.sync import inbound_sync, outbound_sync
from crm_pipeline.defs.assets.tenant_pass import (
    TenantPass,
    decisions_metadata,
    inbound_metadata,
    open_pass,
    outbound_metadata,
    read_metadata,
)
from crm_pipeline.defs.partitions import TENANT_PARTITIONS
from crm_pipeline.defs.resources import CRMConnectionResource, DealStoreResource, TenantsResource
from crm_pipeline.defs.runs import SYNC_JOB, partitions_in_flight
from crm_pipeline.models import SyncResult
from crm_pipeline.sync.stages import Decisions, PassOvertakenError, SideChanges
from crm_pipeline.tenants import TenantConnection

SWEEP_JOB = "tenants_sweep_job"
SHARD_TAG = "crm_pipeline/shard"
"""Run tag ``<shard>/<shards>``: the schedule skips a shard whose previous run is in flight."""


def shard_of(tenant_id: str, shards: int) -> int:
    """The tenant's shard, stable across processes and runs (CRC-32 of its id)."""
    return zlib.crc32(tenant_id.encode()) % shards


class SweepConfig(dg.Config):
    shard: int = 0
    shards: int = 1
    """This run syncs the active tenants whose ``shard_of(tenant, shards)`` is ``shard``."""
    concurrency: int = 8
    """Tenants' passes at once. A writing pass holds two of the deal store's connections (its
    lock's and its queries'), and the application's pool has ten: up to nine leaves a connection
    for some pass's query, so passes never wait on each other for good. At 250 tenants a run with
    edits took 27 s at 8 and 78 s at 4 (``bench_tenants.py``): its passes mostly wait."""


SweepEvent = dg.AssetMaterialization | dg.AssetCheckEvaluation | dg.AssetObservation


@dataclass
class TenantSweep:
    """One tenant's pass in a sweep: what to record for its partitions, and how it ended."""

    tenant_id: str
    events: list[SweepEvent] = field(default_factory=list)
    requests: int = 0
    quiet: bool = False
    busy: bool = False
    error: str | None = None


@dg.op
async def sync_tenants(
    context: dg.OpExecutionContext,
    config: SweepConfig,
    deal_store: DealStoreResource,
    crm: CRMConnectionResource,
    tenants: TenantsResource,
) -> dg.Output[None]:
    """Sync every active tenant of this run's shard that has a partition and no run of its own
    in flight, ``concurrency`` at a time: first those with deal-store changes waiting, so the
    agent's edits do not wait behind the shard's idle tenants."""
    started = time.monotonic()
    own_runs = partitions_in_flight(context.instance, SYNC_JOB)
    mine = await _shard_tenants(context, config, deal_store, tenants)
    limit = asyncio.Semaphore(config.concurrency)
    shard = await _changed_first(
        [tenant for tenant in mine if tenant.tenant_id not in own_runs], deal_store, crm, limit
    )

    async def one(tenant: TenantConnection) -> TenantSweep:
        async with limit:
            try:
                return await sweep_tenant(tenant, deal_store, crm)
            finally:
                await crm.close(tenant.tenant_id)

    swept = await asyncio.gather(*(one(tenant) for tenant in shard))
    for tenant in swept:
        for event in tenant.events:
            # Dagster logs check evaluations here too; its type names only the older events.
            context.log_event(event)  # type: ignore[arg-type]
    failed = [tenant for tenant in swept if tenant.error is not None]
    metadata = _sweep_metadata(swept, len(mine), len(mine) - len(shard), started)
    if failed:
        raise dg.Failure(
            f"{len(failed)} of {len(swept)} tenants failed: "
            + "; ".join(f"{tenant.tenant_id}: {tenant.error}" for tenant in failed[:10]),
            metadata=metadata,
        )
    return dg.Output(None, metadata=metadata)


async def _shard_tenants(
    context: dg.OpExecutionContext, config: SweepConfig, deal_store: DealStoreResource, tenants: TenantsResource
) -> list[TenantConnection]:
    """The active tenants of this run's shard that have a partition."""
    known = set(context.instance.get_dynamic_partitions(TENANT_PARTITIONS))
    return [
        tenant
        for tenant in await tenants.active_in(deal_store.database)
        if tenant.tenant_id in known and shard_of(tenant.tenant_id, config.shards) == config.shard
    ]


def _sweep_metadata(
    swept: list[TenantSweep], tenants: int, left_to_own_runs: int, started: float
) -> dict[str, int | float]:
    """The run's figures: the shard's tenants and how their passes ended (a tenant left to a run of
    its own counts as busy), the requests they sent, the seconds since ``started``."""
    return {
        "tenants": tenants,
        "quiet": sum(tenant.quiet for tenant in swept),
        "synced": sum(not (tenant.quiet or tenant.busy or tenant.error) for tenant in swept),
        "busy": sum(tenant.busy for tenant in swept) + left_to_own_runs,
        "failed": sum(tenant.error is not None for tenant in swept),
        "requests": sum(tenant.requests for tenant in swept),
        "seconds": round(time.monotonic() - started, 2),
    }


async def _changed_first(
    shard: list[TenantConnection], deal_store: DealStoreResource, crm: CRMConnectionResource, limit: asyncio.Semaphore
) -> list[TenantConnection]:
    """The shard's tenants, those with deal-store changes waiting first (in shard order within each)."""

    async def waiting(tenant: TenantConnection) -> bool:
        async with limit:
            try:
                return await open_pass(tenant, deal_store, crm).sync.changes_waiting()
            except Exception:  # noqa: BLE001 - its pass meets the failure again and records it
                return True

    changed = await asyncio.gather(*(waiting(tenant) for tenant in shard))
    return [tenant for tenant, waits in zip(shard, changed, strict=True) if waits] + [
        tenant for tenant, waits in zip(shard, changed, strict=True) if not waits
    ]


async def sweep_tenant(
    tenant: TenantConnection, deal_store: DealStoreResource, crm: CRMConnectionResource
) -> TenantSweep:
    """The tenant's pass through the same stages as ``deals_sync_job`` and the same checks; a
    failure is the tenant's alone."""
    swept = TenantSweep(tenant.tenant_id)
    run: TenantPass | None = None
    try:
        run = open_pass(tenant, deal_store, crm)  # a token that cannot be read fails here
        await _pass(run, swept)
    except PassOvertakenError:
        swept.busy = True  # another pass of the tenant (a backfill's run) wrote meanwhile: nothing is lost
    except Exception as error:  # noqa: BLE001 - any failure is this tenant's; the others go on
        swept.error = f"{type(error).__name__}: {error}"
    swept.requests = run.requests.sent if run is not None else 0
    if swept.error is not None:
        swept.events.append(
            dg.AssetObservation(inbound_sync.key, partition=tenant.tenant_id, metadata={"error": swept.error})
        )
    return swept


async def _pass(run: TenantPass, swept: TenantSweep) -> None:
    primary = await run.sync.read_primary()
    external = await run.sync.read_external(refuse_on_drift=True)
    before_writes = await _checks_before_writes(run, primary, external)
    blocked = [key.name for key, result in before_writes if not result.passed and key in BLOCKING]
    if blocked:
        swept.events += await _read_events(run, primary, external, before_writes)
        swept.error = f"a blocking check failed ({', '.join(blocked)}): nothing was written"
        return
    decisions = await run.sync.decide(primary, external)
    tally = await run.sync.write_outbound(decisions)
    result = await run.sync.write_inbound(decisions, [*tally.failures, *tally.deferred])
    if _quiet(decisions, result):
        swept.quiet = True
        return
    async with run.sync.status.reads():  # what the events report, read in one transaction
        swept.events += await _pass_events(run, decisions, tally.result(), result, before_writes)


async def _pass_events(
    run: TenantPass,
    decisions: Decisions,
    outbound: SyncResult,
    inbound: SyncResult,
    before_writes: list[tuple[dg.AssetCheckKey, dg.AssetCheckResult]],
) -> list[SweepEvent]:
    """A pass's materializations and check results, as its partitions record them."""
    partition = run.tenant_id
    return [
        *await _read_events(run, decisions.primary, decisions.external, before_writes),
        dg.AssetMaterialization(
            reconciled_deals.key, partition=partition, metadata=await decisions_metadata(run, decisions)
        ),
        dg.AssetMaterialization(outbound_sync.key, partition=partition, metadata=outbound_metadata(run, outbound)),
        dg.AssetMaterialization(
            inbound_sync.key, partition=partition, metadata=inbound_metadata(run, decisions, inbound)
        ),
        _evaluation(checks.settled_records_agree.check_key, await checks.settled_drift(run, decisions), partition),
        _evaluation(checks.error_ledger_under_threshold.check_key, await checks.ledger_size(run), partition),
        _evaluation(checks.sync_lag_within_bound.check_key, await checks.pass_lag(run), partition),
    ]


BLOCKING = {
    check.check_key
    for check in (checks.mapping_matches_schema, checks.one_page_per_deal)
    if all(spec.blocking for spec in check.check_specs)
}


async def _checks_before_writes(
    run: TenantPass, primary: SideChanges, external: SideChanges
) -> list[tuple[dg.AssetCheckKey, dg.AssetCheckResult]]:
    """The checks on the reads, which ``deals_sync_job`` runs before it writes."""
    async with run.sync.status.reads():
        return [
            (
                checks.opportunities_have_change_history.check_key,
                await checks.change_history(run.sync.deal_store.repository, run.tenant_id),
            ),
            (checks.mapping_matches_schema.check_key, checks.schema_fit(external)),
            (checks.pages_map_cleanly.check_key, checks.mappable_pages(external)),
            (checks.one_page_per_deal.check_key, await checks.pages_per_deal(run, external)),
        ]


async def _read_events(
    run: TenantPass,
    primary: SideChanges,
    external: SideChanges,
    checked: list[tuple[dg.AssetCheckKey, dg.AssetCheckResult]],
) -> list[SweepEvent]:
    """The reads' materializations and their checks' results, as the tenant's partitions."""
    partition = run.tenant_id
    return [
        dg.AssetMaterialization(
            postgres_opportunities.key, partition=partition, metadata=await read_metadata(run, primary)
        ),
        dg.AssetMaterialization(notion_pages.key, partition=partition, metadata=await read_metadata(run, external)),
        *(_evaluation(key, result, partition) for key, result in checked),
    ]


def _quiet(decisions: Decisions, result: SyncResult) -> bool:
    """Nothing to decide and nothing written or failed: a pass with nothing to record. The CRM's
    answer may repeat records the sync wrote itself (Notion's minute-grained overlap); they
    decide nothing."""
    primary, external = decisions.primary, decisions.external
    return (
        not (primary.changes or primary.passed_over or external.unreadable)
        and decisions.plan.summary() == SyncResult()
        and result == SyncResult()
    )


def _evaluation(key: dg.AssetCheckKey, result: dg.AssetCheckResult, partition: str) -> dg.AssetCheckEvaluation:
    return dg.AssetCheckEvaluation(
        asset_key=key.asset_key,
        check_name=key.name,
        passed=bool(result.passed),
        metadata=result.metadata,
        severity=result.severity,
        partition=partition,
    )
