"""The housekeeping job deletes finished runs before its cutoff, with their event logs."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
from dagster._core.test_utils import create_run_for_test

from crm_pipeline.definitions import defs
from crm_pipeline.defs.schedules import INTEGRATION_TAG
from crm_pipeline.settings import PROJECT_ROOT


def test_housekeeping_deletes_finished_runs_and_keeps_those_in_flight() -> None:
    with dg.instance_for_test() as instance:
        done = [
            create_run_for_test(instance, job_name="deals_sync_job", status=s)
            for s in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE)
        ]
        running = create_run_for_test(instance, job_name="deals_sync_job", status=dg.DagsterRunStatus.STARTED)
        job = defs.resolve_job_def("dagster_housekeeping")
        result = job.execute_in_process(
            instance=instance, run_config={"ops": {"purge_old_runs": {"config": {"keep_days": 0}}}}
        )
        assert result.success and result.output_for_node("purge_old_runs") == 2
        assert all(instance.get_run_by_id(run.run_id) is None for run in done)
        assert instance.get_run_by_id(running.run_id) is not None
        assert instance.get_run_by_id(result.run_id) is not None  # itself, in flight while it ran


def test_the_checkout_instance_queues_one_run_per_integration_and_monitors_runtimes(tmp_path: Path) -> None:
    shutil.copy(PROJECT_ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        [limit] = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
        assert limit == {"key": INTEGRATION_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
        assert instance.run_monitoring_enabled
