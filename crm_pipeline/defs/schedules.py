"""The sync jobs and their every-minute schedules.

``sync_every_minute`` (on by default) requests a ``tenants_sweep_job`` run per shard of
``TENANTS_PER_RUN`` active tenants: a few runs a minute for a thousand tenants, each syncing its
shard in one process. ``sync_each_tenant_every_minute`` (off by default) is the design for a
handful of tenants: a run of ``deals_sync_job`` per tenant and minute, each pass a run of its own
in the UI, at a process start each.
"""

import math

import dagster as dg

from crm_pipeline.defs.partitions import TENANT_PARTITIONS
from crm_pipeline.defs.resources import TenantsResource
from crm_pipeline.defs.runs import SYNC_JOB, partitions_in_flight, run_in_flight
from crm_pipeline.defs.sweep import SHARD_TAG, SWEEP_JOB, SweepConfig, sync_tenants

INTEGRATION_TAG = "crm_pipeline/integration"
"""Run tag naming the external integration (its token's reference: ``TenantConnection.integration``):
dagster.yaml limits runs per value, so concurrent tenants never share one integration's rate budget."""
MAX_RUNTIME_SECONDS = 240
"""A hung run is stopped by run monitoring after this, so it cannot hold the queue."""

deals_sync_job = dg.define_asset_job(
    SYNC_JOB,
    selection=dg.AssetSelection.groups("sync"),
    # The multiprocess executor costs 12-16 s of process start-up per run; this runs in ~1 s.
    executor_def=dg.in_process_executor,
    tags={"dagster/max_runtime": str(MAX_RUNTIME_SECONDS)},
    description="One sync pass of a tenant: read both sides, reconcile, write out, write in.",
)


TENANTS_PER_RUN = 250
"""Tenants a sweep run syncs: with fewer active tenants one run syncs them all."""


@dg.job(name=SWEEP_JOB, executor_def=dg.in_process_executor, tags={"dagster/max_runtime": str(MAX_RUNTIME_SECONDS)})
def tenants_sweep_job() -> None:
    """A sync pass of every active tenant of one shard, concurrently in one process."""
    sync_tenants()


def _tick(context: dg.ScheduleEvaluationContext) -> str:
    return context.scheduled_execution_time.isoformat() if context.scheduled_execution_time else "now"


@dg.schedule(
    job=tenants_sweep_job,
    cron_schedule="* * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def sync_every_minute(
    context: dg.ScheduleEvaluationContext, tenants: TenantsResource
) -> list[dg.RunRequest] | dg.SkipReason:
    """A sweep run per shard of the active tenants (the registry in one query) every minute; a
    shard whose last run has not finished is skipped this tick (its run carries on)."""
    known = set(context.instance.get_dynamic_partitions(TENANT_PARTITIONS))
    active = sum(tenant.tenant_id in known for tenant in tenants.active())
    if not active:
        return dg.SkipReason("no active tenant has a partition yet")
    shards = math.ceil(active / TENANTS_PER_RUN)
    requests: list[dg.RunRequest] = []
    busy: list[str] = []
    for shard in range(shards):
        tag = f"{shard}/{shards}"
        if (run_id := run_in_flight(context.instance, SWEEP_JOB, {SHARD_TAG: tag})) is not None:
            busy.append(f"shard {tag} (run {run_id})")
            continue
        config = SweepConfig(shard=shard, shards=shards)
        requests.append(
            dg.RunRequest(
                run_key=f"{_tick(context)}-{tag}",
                run_config=dg.RunConfig(ops={sync_tenants.name: config}),
                tags={SHARD_TAG: tag},
            )
        )
    return requests or dg.SkipReason(f"a sweep run is still in flight for {', '.join(busy)}")


@dg.schedule(
    job=deals_sync_job,
    cron_schedule="* * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
def sync_each_tenant_every_minute(
    context: dg.ScheduleEvaluationContext, tenants: TenantsResource
) -> list[dg.RunRequest] | dg.SkipReason:
    """A sync pass per active tenant of the registry (one query) every minute; a tenant whose last
    run has not finished is skipped this tick (its pass carries on), so runs never pile up behind a
    slow one."""
    known = set(context.instance.get_dynamic_partitions(TENANT_PARTITIONS))
    in_flight = partitions_in_flight(context.instance, SYNC_JOB)
    requests: list[dg.RunRequest] = []
    busy: list[str] = []
    for tenant in tenants.active():
        if tenant.tenant_id not in known:
            continue  # the partitions sensor has not added it yet
        if (run_id := in_flight.get(tenant.tenant_id)) is not None:
            busy.append(f"{tenant.tenant_id} (run {run_id})")
            continue
        requests.append(
            dg.RunRequest(
                run_key=f"{_tick(context)}-{tenant.tenant_id}",
                partition_key=tenant.tenant_id,
                tags={INTEGRATION_TAG: tenant.integration},
            )
        )
    if requests:
        return requests
    if busy:
        return dg.SkipReason(f"a sync run is still in flight for {', '.join(busy)}")
    return dg.SkipReason("no active tenant has a partition yet")
