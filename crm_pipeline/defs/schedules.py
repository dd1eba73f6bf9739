"""The sync job and its every-minute schedule: one run per active tenant, skipped while that
tenant's previous run is still in flight."""

import dagster as dg

from crm_pipeline.defs.partitions import TENANT_PARTITIONS
from crm_pipeline.defs.resources import TenantsResource

SYNC_JOB = "deals_sync_job"
INTEGRATION_TAG = "crm_pipeline/integration"
"""Run tag naming the external integration (its token's reference: ``TenantConnection.integration``):
dagster.yaml limits runs per value, so concurrent tenants never share one integration's rate budget."""
MAX_RUNTIME_SECONDS = 240
"""A hung run is stopped by run monitoring after this, so it cannot hold the queue."""

IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]

deals_sync_job = dg.define_asset_job(
    SYNC_JOB,
    selection=dg.AssetSelection.groups("sync"),
    # The multiprocess executor costs 12-16 s of process start-up per run; this runs in ~1 s.
    executor_def=dg.in_process_executor,
    tags={"dagster/max_runtime": str(MAX_RUNTIME_SECONDS)},
    description="One sync pass of a tenant: read both sides, reconcile, write out, write in.",
)


@dg.schedule(
    job=deals_sync_job,
    cron_schedule="* * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def sync_every_minute(
    context: dg.ScheduleEvaluationContext, tenants: TenantsResource
) -> list[dg.RunRequest] | dg.SkipReason:
    """A sync pass per active tenant of the registry (one query) every minute; a tenant whose last
    run has not finished is skipped this tick (its pass carries on), so runs never pile up behind a
    slow one."""
    known = set(context.instance.get_dynamic_partitions(TENANT_PARTITIONS))
    requests: list[dg.RunRequest] = []
    busy: list[str] = []
    for tenant in tenants.active():
        if tenant.tenant_id not in known:
            continue  # the partitions sensor has not added it yet
        in_flight = context.instance.get_run_records(
            dg.RunsFilter(job_name=SYNC_JOB, statuses=IN_FLIGHT, tags={"dagster/partition": tenant.tenant_id}), limit=1
        )
        if in_flight:
            busy.append(f"{tenant.tenant_id} (run {in_flight[0].dagster_run.run_id})")
            continue
        tick = context.scheduled_execution_time.isoformat() if context.scheduled_execution_time else "now"
        requests.append(
            dg.RunRequest(
                run_key=f"{tick}-{tenant.tenant_id}",
                partition_key=tenant.tenant_id,
                tags={INTEGRATION_TAG: tenant.integration},
            )
        )
    if requests:
        return requests
    if busy:
        return dg.SkipReason(f"a sync run is still in flight for {', '.join(busy)}")
    return dg.SkipReason("no active tenant has a partition yet")
