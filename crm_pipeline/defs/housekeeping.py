"""Daily housekeeping: Dagster keeps every run and its event log forever (``retention:`` in
dagster.yaml purges only ticks), and the sync writes 1,440 runs a day per tenant."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from crm_pipeline.defs.runs import IN_FLIGHT

PURGE_BATCH = 500


class HousekeepingConfig(dg.Config):
    keep_days: int = 7
    """Finished runs older than this are deleted with their event logs."""


@dg.op
def purge_old_runs(context: dg.OpExecutionContext, config: HousekeepingConfig) -> int:
    """Delete finished runs created before the cutoff, with their event logs; in-flight runs stay."""
    cutoff = datetime.now(UTC) - timedelta(days=config.keep_days)
    finished = [status for status in dg.DagsterRunStatus if status not in IN_FLIGHT]
    deleted = 0
    while True:
        records = context.instance.get_run_records(
            dg.RunsFilter(created_before=cutoff, statuses=finished), limit=PURGE_BATCH
        )
        for record in records:
            context.instance.delete_run(record.dagster_run.run_id)
        deleted += len(records)
        if len(records) < PURGE_BATCH:
            break
    context.log.info(f"deleted {deleted} runs created before {cutoff.isoformat(timespec='seconds')}")
    return deleted


@dg.job(executor_def=dg.in_process_executor, tags={"dagster/max_runtime": "3600"})
def dagster_housekeeping() -> None:
    """Purge old runs and their event logs."""
    purge_old_runs()


housekeeping_daily = dg.ScheduleDefinition(
    job=dagster_housekeeping,
    cron_schedule="17 3 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
