"""Dagster's own processes on an instance of a test's (or benchmark's) own, as `crm-pipeline dev`
runs them: `dagster dev` (webserver, daemon, code server) with the checkout's dagster.yaml, the
queued run coordinator and the default run launcher, which starts each run in a process of its
own. Dagster's storage is the deal store's PostgreSQL, in schema public."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import yaml
from dagster_graphql import DagsterGraphQLClient
from sqlalchemy import URL

from crm_pipeline.dagster_process import code_locations
from crm_pipeline.dev import DAGSTER_PG_URL_VARIABLE, write_instance_config
from crm_pipeline.settings import PROJECT_ROOT
from crm_pipeline.store import Database
from crm_pipeline.workers import BROKER_VARIABLE

GENEROUS_WAIT = 180.0
"""Seconds any bounded wait may take on a loaded machine (a start, the runs, a stop)."""

FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}

SIGINT_DEFAULT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"
)
"""Runs argv[1:] with SIGINT handled by default, as from a terminal: a process started from a
non-interactive shell inherits SIGINT ignored, and Dagster then ignores SIGTERM too."""

SCHEDULES_QUERY = """{ repositoriesOrError { ... on RepositoryConnection { nodes {
  name location { name } schedules { name scheduleState { id } } } } } }"""
START_SCHEDULE = """mutation ($selector: ScheduleSelector!) { startSchedule(scheduleSelector: $selector) {
  ... on ScheduleStateResult { scheduleState { status } } ... on Error { message } } }"""
STOP_SCHEDULE = """mutation ($id: String!) { stopRunningSchedule(id: $id) {
  ... on ScheduleStateResult { scheduleState { status } } ... on Error { message } } }"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_in_own_group(command: Sequence[str], **options: Any) -> subprocess.Popen[bytes]:
    """Start ``command`` in a process group of its own with SIGINT handled by default, so a
    SIGINT to the group stops it and everything it started (``options`` go to Popen)."""
    return subprocess.Popen([sys.executable, "-c", SIGINT_DEFAULT, *command], start_new_session=True, **options)


def wait_for_code_location(graphql_url: str, process: subprocess.Popen[bytes]) -> dict[str, str] | None:
    """The first loaded code location the webserver reports, or None if none loads in time."""
    deadline = time.monotonic() + GENEROUS_WAIT
    while time.monotonic() < deadline and process.poll() is None:
        loaded = [entry for entry in code_locations(graphql_url) if entry["loadStatus"] == "LOADED"]
        if loaded:
            return loaded[0]
        time.sleep(0.5)
    return None


def stop_group(process: subprocess.Popen[bytes]) -> int:
    """SIGINT to the process's group, as Ctrl-C in a terminal; SIGKILL if it outstays the wait."""
    try:
        os.killpg(process.pid, signal.SIGINT)
        return process.wait(timeout=GENEROUS_WAIT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise
    except ProcessLookupError:
        return process.wait()


@dataclass
class RunningDagster:
    """A running `dagster dev`: its GraphQL client and an instance on the same storage; its
    process (the root of its group) and the variables its processes were started with, for
    another process that joins the instance (a run worker)."""

    client: DagsterGraphQLClient
    instance: dg.DagsterInstance
    log: Path
    graphql_url: str
    pid: int
    """The `dagster dev` process's: its webserver, daemon, code server and runs are its descendants."""
    environment: dict[str, str]

    def wait_for_runs(self, run_ids: Sequence[str], timeout: float = GENEROUS_WAIT) -> list[dg.RunRecord]:
        """The runs' records once every one has finished (raises TimeoutError otherwise)."""
        deadline = time.monotonic() + timeout
        while True:
            records = self.instance.get_run_records(dg.RunsFilter(run_ids=list(run_ids)))
            if len(records) == len(run_ids) and all(r.dagster_run.status in FINISHED for r in records):
                return list(records)
            if time.monotonic() > deadline:
                states = {r.dagster_run.run_id: r.dagster_run.status.value for r in records}
                raise TimeoutError(f"runs still unfinished after {timeout} s: {states}\n{self.log_tail()}")
            time.sleep(0.5)

    def log_tail(self, characters: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-characters:]

    def _graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        answer = httpx.post(self.graphql_url, json={"query": query, "variables": variables or {}}, timeout=30)
        answer.raise_for_status()
        body: dict[str, Any] = answer.json()
        if "errors" in body:
            raise RuntimeError(f"GraphQL errors: {body['errors']}")
        data: dict[str, Any] = body["data"]
        return data

    def set_schedule(self, name: str, running: bool) -> None:
        """Start or stop a schedule, as its toggle in the UI does."""
        [(repository, state_id)] = [
            (node, schedule["scheduleState"]["id"])
            for node in self._graphql(SCHEDULES_QUERY)["repositoriesOrError"]["nodes"]
            for schedule in node["schedules"]
            if schedule["name"] == name
        ]
        if running:
            selector = {
                "repositoryLocationName": repository["location"]["name"],
                "repositoryName": repository["name"],
                "scheduleName": name,
            }
            result = self._graphql(START_SCHEDULE, {"selector": selector})["startSchedule"]
        else:
            result = self._graphql(STOP_SCHEDULE, {"id": state_id})["stopRunningSchedule"]
        wanted = "RUNNING" if running else "STOPPED"
        if result.get("scheduleState", {}).get("status") != wanted:
            raise RuntimeError(f"schedule {name} is not {wanted}: {result}")


def instance_variables(home: Path, owner_url: URL, app_url: URL, environment: Mapping[str, str]) -> dict[str, str]:
    """The environment of every process of the instance in ``home`` (Dagster's, a run worker's):
    its directory, its storage and the deal store at ``owner_url`` (the application's login at
    ``app_url``), and ``environment``."""
    return {
        "DAGSTER_HOME": str(home),
        DAGSTER_PG_URL_VARIABLE: owner_url.set(drivername="postgresql+psycopg2").render_as_string(hide_password=False),
        "CRM_PIPELINE_DATABASE_URL": owner_url.render_as_string(hide_password=False),
        "CRM_PIPELINE_APP_DATABASE_URL": app_url.render_as_string(hide_password=False),
        **environment,
    }


@contextmanager
def dagster_dev(
    home: Path,
    database: Database,
    environment: Mapping[str, str],
    instance_settings: str = "",
    *,
    celery: bool = False,
    overrides: Mapping[str, Any] | None = None,
) -> Iterator[RunningDagster]:
    """`dagster dev` on the checkout's workspace with its instance in ``home``, storage in
    ``database`` and the deal store there too; ``environment`` adds to this process's (the
    tenants file, token variables, the Celery broker), ``instance_settings`` (YAML) to the
    instance's dagster.yaml (another run launcher), ``celery`` the launcher of runs on Celery
    workers, and ``overrides`` replace its top-level sections (shorter run monitoring). Stops the
    whole process group on exit."""
    write_instance_config(home, celery=celery)
    if instance_settings:
        with (home / "dagster.yaml").open("a") as config:
            config.write(instance_settings)
    if overrides:
        config_file = home / "dagster.yaml"
        config_file.write_text(yaml.safe_dump(yaml.safe_load(config_file.read_text()) | dict(overrides)))
    variables = instance_variables(home, database.url, database.app_url, environment)
    port = free_port()
    graphql_url = f"http://127.0.0.1:{port}/graphql"
    log = home / "dagster-dev.log"
    with log.open("wb") as output:
        process = start_in_own_group(
            [sys.executable, "-m", "dagster", "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"), "-p", str(port)],
            cwd=home,
            env=os.environ | variables,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    graphql_url = f"http://127.0.0.1:{port}/graphql"
    try:
        if wait_for_code_location(graphql_url, process) is None:
            raise RuntimeError(f"the code location did not load:\n{log.read_text(errors='replace')[-4000:]}")
        # The instance's storage URL (and broker) are read from the environment when it is opened.
        read = [DAGSTER_PG_URL_VARIABLE, *([BROKER_VARIABLE] if celery else [])]
        previous = {name: os.environ.get(name) for name in read}
        os.environ.update({name: variables[name] for name in read})
        try:
            with dg.DagsterInstance.from_config(str(home)) as instance:
                client = DagsterGraphQLClient("127.0.0.1", port_number=port)
                yield RunningDagster(client, instance, log, graphql_url, process.pid, variables)
        finally:
            for name, value in previous.items():
                if value is None:
                    del os.environ[name]
                else:
                    os.environ[name] = value
    finally:
        try:
            stop_group(process)
        finally:
            # The code servers `dagster dev` started (and their resource trackers) can outlive it,
            # in its group, when it is stopped with runs in flight: end whatever is left.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
