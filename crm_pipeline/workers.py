"""`crm-pipeline worker`: a Celery worker on this host that runs Dagster's runs, for a deployment
whose runs go to workers on several hosts.

Choosing that is configuration: with ``CRM_PIPELINE_CELERY_BROKER`` set (a Redis URL, the broker and
the result backend), the instance's dagster.yaml gets the ``run_launcher`` block of
``instance_settings`` (``crm-pipeline dev`` writes it; in production add it to the checkout's
dagster.yaml), and the run queue hands each run to the broker instead of starting a process:
whichever worker takes it runs it in one of its processes. The code location, dagster.yaml and
tenant registry stay the same for one host or many. A worker is dagster-celery's own
(`dagster-celery worker start -A dagster_celery.app -i crm_pipeline.definitions -y celery-worker.yaml`); it needs the
instance's environment (``DAGSTER_HOME`` with the same dagster.yaml, the storage and deal-store
URLs, the tokens' variables), as any run does.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from pathlib import Path

from crm_pipeline.settings import get_settings, project_file

BROKER_VARIABLE = "CRM_PIPELINE_CELERY_BROKER"
"""The broker's URL, in the environment of the daemon, the webserver and every worker (it may hold
a password: it is never written into a file)."""
WORKER_CONFIG = "celery-worker.yaml"
"""The worker's side of the launcher's settings (broker and backend from ``BROKER_VARIABLE``)."""


def instance_settings() -> str:
    """The dagster.yaml settings that send runs to Celery workers through the broker in the
    environment, and resume on another worker a run whose worker is lost (added to the
    checkout's ``run_monitoring``)."""
    broker = json.dumps({"env": BROKER_VARIABLE})  # JSON is YAML
    return f"""
# Runs go to Celery workers (`crm-pipeline worker`, on any host) through the broker.
run_launcher:
  module: crm_pipeline.celery_launcher
  class: WorkerAwareCeleryRunLauncher
  config:
    broker: {broker}
    backend: {broker}
# A run whose worker is gone (its host lost) is resumed on another worker, twice at most.
run_monitoring:
  max_resume_run_attempts: 2
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "worker",
        help="run Dagster's runs on this host: a Celery worker on the broker of CRM_PIPELINE_CELERY_BROKER",
        description="Start a Celery worker (dagster-celery's) that takes runs from the broker in "
        "CRM_PIPELINE_CELERY_BROKER and runs each in one of its processes. Needs the instance's "
        "environment: DAGSTER_HOME with the deployment's dagster.yaml, the storage and deal-store URLs, "
        "the tenants' token variables.",
    )
    parser.add_argument(
        "--name", default="crm-pipeline", help="the worker's name, unique per host (its node name is NAME@hostname)"
    )
    parser.add_argument("--processes", type=int, default=2, help="runs this worker runs at once (default 2)")
    parser.set_defaults(handler=run)


CODE_LOCATION = "crm_pipeline.definitions"


def worker_command(name: str, processes: int) -> list[str]:
    """dagster-celery's worker command, from this interpreter's environment. The worker imports the
    code location once as it starts, before it forks its processes, so no run waits for that."""
    bin_dir = Path(sys.executable).parent
    return [
        *(str(bin_dir / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app", "-i", CODE_LOCATION),
        *("-y", str(project_file(WORKER_CONFIG)), "-n", name, "--", f"--concurrency={processes}"),
    ]


def worker_environment(broker: str) -> dict[str, str]:
    """This process's environment, the broker's URL, and this interpreter's bin directory first on
    PATH: dagster-celery starts `celery` from PATH."""
    bin_dir = Path(sys.executable).parent
    return os.environ | {BROKER_VARIABLE: broker, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}


def run(args: argparse.Namespace) -> int:
    broker = get_settings().celery_broker
    if broker is None:
        raise SystemExit(f"set {BROKER_VARIABLE} to the Redis URL of the broker (the instance's run launcher's)")
    if not os.environ.get("DAGSTER_HOME"):
        raise SystemExit("set DAGSTER_HOME to the instance's directory (its dagster.yaml, as on the daemon's host)")
    command = worker_command(args.name, args.processes)
    print(f"crm-pipeline worker {args.name}@{socket.gethostname()}: {' '.join(command)}", file=sys.stderr, flush=True)
    os.execve(command[0], command, worker_environment(broker.get_secret_value()))
