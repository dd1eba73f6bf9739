"""The run launcher of runs on Celery workers (``crm_pipeline.workers``): dagster-celery's
``CeleryRunLauncher``, with run monitoring that also sees a worker that is gone.

dagster-celery reads a task's state from the result backend: a worker that dies with its task
(its host lost, SIGKILL, the OOM killer) leaves it ``STARTED`` for good, so run monitoring would
wait for the run's ``dagster/max_runtime``. This launcher asks the worker named in that state
whether it is there (a Celery ping over the broker); one that does not answer is reported
``FAILED``, and run monitoring resumes the run on another worker (``max_resume_run_attempts``
in dagster.yaml). A resumed run's task waits in the queue as ``PENDING``, which dagster-celery
reports as unknown and run monitoring would resume again: here it is a run waiting for a worker.
dagster-celery 0.29.27's own ``resume_run`` cannot resume anything (it calls the resume task with
the execute task's argument name, and Celery refuses the call): here it names the right one.
"""

from __future__ import annotations

from typing import Any

from dagster import DagsterRun
from dagster._core.launcher import CheckRunHealthResult, ResumeRunContext, WorkerStatus
from dagster._grpc.types import ResumeRunArgs
from dagster._serdes import pack_value
from dagster_celery.config import TASK_RESUME_JOB_NAME
from dagster_celery.launcher import CeleryRunLauncher
from dagster_celery.tags import DAGSTER_CELERY_TASK_ID_TAG
from dagster_celery.tasks import create_resume_job_task

PING_TIMEOUT_SECONDS = 3.0
"""How long a worker has to answer run monitoring: its main process answers while its processes
run passes, so only a worker that is gone (or its host cut off) stays silent this long."""


class WorkerAwareCeleryRunLauncher(CeleryRunLauncher):
    """dagster-celery's launcher; a run whose worker no longer answers is reported failed."""

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        result = self.celery.AsyncResult(run.tags[DAGSTER_CELERY_TASK_ID_TAG])
        state = result.state
        if state == "PENDING":
            return CheckRunHealthResult(WorkerStatus.RUNNING, "the run's task waits in the queue for a worker")
        if state != "STARTED":
            health: CheckRunHealthResult = super().check_run_worker_health(run)
            return health
        info: Any = result.info  # while STARTED: {"pid": ..., "hostname": <the worker's node name>}
        worker = info.get("hostname") if isinstance(info, dict) else None
        if worker is None:
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        replies = self.celery.control.ping(destination=[worker], timeout=PING_TIMEOUT_SECONDS)
        if not replies:
            return CheckRunHealthResult(
                WorkerStatus.FAILED, f"Celery worker {worker} running the run does not answer: it is gone"
            )
        return CheckRunHealthResult(WorkerStatus.RUNNING)

    def resume_run(self, context: ResumeRunContext) -> None:
        """A task that resumes the run on whichever worker takes it (the run's steps run again:
        the sweep's passes are idempotent, each under its tenant's lock)."""
        run = context.dagster_run
        if run.job_code_origin is None:
            raise ValueError(f"run {run.run_id} has no code origin to resume it from")
        args = ResumeRunArgs(
            job_origin=run.job_code_origin,
            run_id=run.run_id,
            instance_ref=self._instance.get_ref(),
            set_exit_code_on_failure=True,
        )
        task = create_resume_job_task(self.celery)
        signature = task.si(resume_job_args_packed=pack_value(args))
        self._launch_celery_task_run(run=run, task_signature=signature, routing_key=TASK_RESUME_JOB_NAME)
