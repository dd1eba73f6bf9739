"""What the schedules, the sweep and housekeeping ask of Dagster's run list."""

import dagster as dg

SYNC_JOB = "deals_sync_job"
"""The job of one tenant's pass, a run per partition (``deals_sync_job`` in ``schedules``)."""

IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]
"""The statuses of a run that has not finished."""


def run_in_flight(instance: dg.DagsterInstance, job_name: str, tags: dict[str, str]) -> str | None:
    """The id of a run of the job with these tags that has not finished, if any."""
    records = instance.get_run_records(dg.RunsFilter(job_name=job_name, statuses=IN_FLIGHT, tags=tags), limit=1)
    return records[0].dagster_run.run_id if records else None


def partitions_in_flight(instance: dg.DagsterInstance, job_name: str) -> dict[str, str]:
    """The partitions (tenants) of the job's runs that have not finished, each with its run's id,
    in one query."""
    records = instance.get_run_records(dg.RunsFilter(job_name=job_name, statuses=IN_FLIGHT))
    return {
        partition: record.dagster_run.run_id
        for record in records
        if (partition := record.dagster_run.tags.get("dagster/partition"))
    }
