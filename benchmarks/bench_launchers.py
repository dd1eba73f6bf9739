"""Idle tenants' passes under three designs, each in Dagster's own processes, side by side.

``--tenants`` tenants (default 20), each with a Deals database of its own on the sandbox Notion
(a process of its own, unthrottled: the figures are this machine's cost, not Notion's pace), all
synced by a sweep run right before each design's passes, so every pass measured is idle. Each design runs under `dagster dev` on an
instance of the benchmark's own (the checkout's dagster.yaml, the queued run coordinator with its
per-integration limit; every tenant is an integration of its own, so up to ten runs at once),
its runs submitted through the webserver with the every-minute schedules stopped:

- default: a ``deals_sync_job`` run per tenant under Dagster's default run launcher, each run a new
  Python process started by the code server;
- celery: the same runs under dagster-celery's ``CeleryRunLauncher``: each run a task executed inside
  a long-lived Celery worker (``--worker-processes`` prefork processes, default 2, warmed by two
  runs each first) over a Redis broker and result backend the benchmark starts (Debian's
  redis-server; scripts/ensure-redis installs it as root);
- sweep: one ``tenants_sweep_job`` run over all the tenants, under the default launcher.

CPU seconds are those of every process the design runs: `dagster dev`'s tree (webserver, daemon,
code server, run processes, whose times the kernel adds to the parent that reaps them), the Celery
worker's tree and Redis for celery, and the embedded PostgreSQL (Dagster's storage and the deal
store), less what the same processes use idle over as long (measured for 30 s before each
launcher's runs, and printed). Without redis-server the celery figures are null.

The deal store is the embedded PostgreSQL, in a database of its own that is dropped afterwards.
Run: ``.venv/bin/python benchmarks/bench_launchers.py [--tenants 20]``. Prints one JSON line per figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT)]

from bench_repository import drop_database  # noqa: E402
from report import emit  # noqa: E402
from sandbox_process import free_port, sandbox_process  # noqa: E402

from crm_pipeline.crm.notion.properties import SYNCED_PROPERTY_MAP, notion_properties_schema  # noqa: E402
from crm_pipeline.defs.runs import SYNC_JOB  # noqa: E402
from crm_pipeline.defs.schedules import INTEGRATION_TAG, sync_every_minute  # noqa: E402
from crm_pipeline.defs.sweep import SWEEP_JOB  # noqa: E402
from crm_pipeline.defs.tenants import TenantConnection, save_tenants  # noqa: E402
from crm_pipeline.sandbox import SandboxControl  # noqa: E402
from crm_pipeline.settings import Settings  # noqa: E402
from crm_pipeline.store import Database, DealRepository  # noqa: E402
from crm_pipeline_tests.dagster_processes import (  # noqa: E402
    RunningDagster,
    dagster_dev,
    start_in_own_group,
    stop_group,
)
from crm_pipeline_tests.deploy.hosts import redis_server  # noqa: E402

BENCH = "launchers"
UNTHROTTLED = 100000.0
BACKGROUND_SECONDS = 30.0
"""The idle window: the partitions sensor, every 30 s, falls in it once."""
SETTLE_SECONDS = 3.0
"""After the last run ends, before CPU is read: its process is reaped, its last writes land."""
WARM_RUNS_PER_WORKER_PROCESS = 2
DESIGNS = ("default", "celery", "sweep")
NO_REDIS = 75
"""scripts/ensure-redis's exit status when redis-server is missing and cannot be installed."""


def tree_cpu_seconds(roots: Sequence[int]) -> float:
    """CPU seconds used so far by each root process and its descendants: every living one's own
    and its reaped children's (the kernel adds those to the parent that waits for them)."""
    total = 0.0
    for root in roots:
        try:
            top = psutil.Process(root)
            processes = [top, *top.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for process in processes:
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system + times.children_user + times.children_system
    return total


def postmaster_pid(settings: Settings) -> int | None:
    """The embedded PostgreSQL's server process (its backends are its children), or None when the
    deal store is an external server, whose CPU this machine does not see."""
    pid_file = settings.data_dir / "postgres" / "postmaster.pid"
    if settings.database_url is not None or not pid_file.is_file():
        return None
    return int(pid_file.read_text().split()[0])


@dataclass
class Meter:
    """The processes a design runs: Dagster's (and a worker's, a broker's) and PostgreSQL."""

    dagster: list[int]
    postgres: int | None

    def read(self) -> tuple[float, float]:
        """CPU seconds so far: Dagster's side, PostgreSQL's."""
        return tree_cpu_seconds(self.dagster), tree_cpu_seconds([self.postgres] if self.postgres else [])


@dataclass
class Cost:
    """What the passes of one design took, net of the same processes' idle use over as long."""

    cpu: float
    postgres: float
    wall: float
    requests: int


@dataclass
class Background:
    """CPU seconds a second the processes use with no run in flight."""

    cpu: float
    postgres: float

    @classmethod
    def measure(cls, meter: Meter) -> Background:
        cpu, postgres = meter.read()
        started = time.monotonic()
        time.sleep(BACKGROUND_SECONDS)
        cpu_after, postgres_after = meter.read()
        seconds = time.monotonic() - started
        return cls((cpu_after - cpu) / seconds, (postgres_after - postgres) / seconds)


def measured(
    dagster: RunningDagster,
    meter: Meter,
    background: Background,
    control: SandboxControl,
    submit: Callable[[], list[str]],
) -> Cost:
    """After a sweep of every tenant, submit runs and wait for every one to succeed; their CPU,
    less the background, and their wall seconds from the first submission to the last run's end."""
    sync_all(dagster)
    control.reset_stats()
    cpu, postgres = meter.read()
    window, started = time.monotonic(), time.time()
    records = dagster.wait_for_runs(submit())
    failed = [
        record.dagster_run.run_id for record in records if record.dagster_run.status != dg.DagsterRunStatus.SUCCESS
    ]
    assert not failed, f"runs failed: {failed}\n{dagster.log_tail()}"
    ended = max(record.end_time or 0.0 for record in records)
    time.sleep(SETTLE_SECONDS)
    cpu_after, postgres_after = meter.read()
    window = time.monotonic() - window
    return Cost(
        cpu=cpu_after - cpu - background.cpu * window,
        postgres=postgres_after - postgres - background.postgres * window,
        wall=ended - started,
        requests=control.stats()["total"],
    )


def submit_tenant_runs(dagster: RunningDagster, tenants: Sequence[TenantConnection]) -> list[str]:
    """A ``deals_sync_job`` run per tenant, tagged as ``sync_each_tenant_every_minute`` tags them."""
    return [
        dagster.client.submit_job_execution(
            SYNC_JOB, tags={INTEGRATION_TAG: tenant.integration, "dagster/partition": tenant.tenant_id}
        )
        for tenant in tenants
    ]


def submit_sweep(dagster: RunningDagster) -> list[str]:
    """One sweep run of every tenant (one shard: the run config's defaults)."""
    return [dagster.client.submit_job_execution(SWEEP_JOB)]


def sync_all(dagster: RunningDagster) -> None:
    """A sweep run, right before a design's passes are measured: the first finds every tenant's
    Notion database and syncs it; a later one reads the trash again where it is due (Notion's
    adapter does every 300 s), so no measured pass does: each is idle, one request."""
    dagster.wait_for_runs(submit_sweep(dagster))


def prepared(dagster: RunningDagster, tenants: Sequence[TenantConnection]) -> None:
    """The schedule's sweep would sync the tenants too: stopped. Every tenant a partition."""
    dagster.set_schedule(sync_every_minute.name, running=False)
    dagster.instance.add_dynamic_partitions("tenant", [tenant.tenant_id for tenant in tenants])


def celery_launcher(broker: str) -> str:
    """The instance's run launcher: dagster-celery's, on ``broker`` for tasks and results."""
    return f"""
run_launcher:
  module: dagster_celery.launcher
  class: CeleryRunLauncher
  config:
    broker: {json.dumps(broker)}
    backend: {json.dumps(broker)}
"""


@contextmanager
def celery_worker(dagster: RunningDagster, broker: str, processes: int, folder: Path) -> Iterator[int]:
    """`dagster-celery worker start` on ``broker`` with ``processes`` prefork processes, in the
    instance's environment (runs open it with ``DagsterInstance.get()``); yields its pid. The
    command starts `celery` from PATH, so the virtualenv's bin directory goes first there."""
    config = folder / "celery.yaml"
    config.write_text(f"execution:\n  config:\n    broker: {json.dumps(broker)}\n    backend: {json.dumps(broker)}\n")
    bin_dir = Path(sys.executable).parent
    log = folder / "celery-worker.log"
    with log.open("wb") as output:
        worker = start_in_own_group(
            [str(bin_dir / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app", "-y", str(config)]
            + ["-n", "bench", "--", f"--concurrency={processes}"],
            cwd=folder,
            env=os.environ | dagster.environment | {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        yield worker.pid
    finally:
        stop_group(worker)


def default_and_sweep(
    home: Path,
    database: Database,
    environment: dict[str, str],
    tenants: list[TenantConnection],
    control: SandboxControl,
    postgres: int | None,
) -> dict[str, Cost]:
    with dagster_dev(home, database, environment) as dagster:
        prepared(dagster, tenants)
        meter = Meter([dagster.pid], postgres)
        background = Background.measure(meter)
        emit_background("default", background)
        return {
            "sweep": measured(dagster, meter, background, control, lambda: submit_sweep(dagster)),
            "default": measured(dagster, meter, background, control, lambda: submit_tenant_runs(dagster, tenants)),
        }


def celery(
    home: Path,
    database: Database,
    environment: dict[str, str],
    tenants: list[TenantConnection],
    control: SandboxControl,
    postgres: int | None,
    processes: int,
) -> Cost:
    with redis_server(home.parent, "127.0.0.1", free_port()) as (broker, redis_pid):
        with dagster_dev(home, database, environment, celery_launcher(broker)) as dagster:
            prepared(dagster, tenants)
            with celery_worker(dagster, broker, processes, home.parent) as worker:
                # Each worker process loads the code location on its first run.
                dagster.wait_for_runs(submit_tenant_runs(dagster, tenants[: processes * WARM_RUNS_PER_WORKER_PROCESS]))
                meter = Meter([dagster.pid, worker, redis_pid], postgres)
                background = Background.measure(meter)
                emit_background("celery", background)
                return measured(dagster, meter, background, control, lambda: submit_tenant_runs(dagster, tenants))


def emit_background(launcher: str, background: Background) -> None:
    emit(
        BENCH, f"idle_cpu_seconds_per_second_{launcher}_launcher", round(background.cpu + background.postgres, 3), "s/s"
    )


def emit_costs(costs: dict[str, Cost | None], count: int) -> None:
    """Per design: CPU seconds per idle tenant's pass (PostgreSQL's share apart too), requests per
    pass, wall seconds for all of them; then the ratios of CPU per pass. A design not measured
    (celery without Redis) is null."""
    per_tenant: dict[str, float | None] = {}
    for design in DESIGNS:
        cost = costs.get(design)
        per_tenant[design] = None if cost is None else (cost.cpu + cost.postgres) / count
        figures = {
            "cpu_seconds_per_idle_tenant": (per_tenant[design], 4, "s"),
            "postgres_cpu_seconds_per_idle_tenant": (None if cost is None else cost.postgres / count, 4, "s"),
            "requests_per_idle_tenant": (None if cost is None else cost.requests / count, 2, "count"),
            f"wall_seconds_for_{count}_idle_tenants": (None if cost is None else cost.wall, 1, "s"),
        }
        for figure, (value, digits, unit) in figures.items():
            emit(BENCH, f"{figure}_{design}", None if value is None else round(value, digits), unit)
    for over, under in (("default", "celery"), ("celery", "sweep")):
        a, b = per_tenant[over], per_tenant[under]
        emit(BENCH, f"cpu_ratio_{over}_over_{under}", None if a is None or b is None else round(a / b, 1), "x")


def have_redis() -> bool:
    """Whether redis-server is there (scripts/ensure-redis installs it as root with apt-get)."""
    status = subprocess.run([str(ROOT / "scripts" / "ensure-redis")], check=False).returncode
    if status != 0 or shutil.which("redis-server") is None:
        print(
            f"bench_launchers: no redis-server (scripts/ensure-redis exited {status}; on Debian, "
            "`apt-get install redis-server`): the celery design is not measured, its figures are null",
            file=sys.stderr,
        )
        return False
    return True


async def register(database: Database, tenants: list[str]) -> None:
    repository = DealRepository(database)
    for tenant in tenants:
        await repository.register_tenant(tenant)


def measure(
    settings: Settings, base_url: str, control: SandboxControl, count: int, processes: int, folder: Path
) -> None:
    names = [f"launch-{n:04d}" for n in range(count)]
    databases = control.seed(
        {
            "databases": [
                {"title": f"Deals of {name}", "properties": notion_properties_schema(SYNCED_PROPERTY_MAP)}
                for name in names
            ]
        }
    )
    # A token variable each: every tenant is an integration of its own, which the run queue lets
    # run beside the others. The sandbox takes any token, so the variables stay unset.
    tenants = [
        TenantConnection(
            tenant_id=name, database_id=db["database_id"], token_env=f"BENCH_TOKEN_{n:04d}", base_url=base_url
        )
        for n, (name, db) in enumerate(zip(names, databases, strict=True))
    ]
    tenants_file = folder / "tenants.toml"
    save_tenants(tenants_file, tenants)
    environment = {"CRM_PIPELINE_TENANTS_FILE": str(tenants_file)}
    redis_there = have_redis()

    async def run() -> dict[str, Cost | None]:
        async with await Database.open(settings) as database:
            await register(database, names)
            postgres = postmaster_pid(settings)
            costs: dict[str, Cost | None] = dict(
                default_and_sweep(folder / "dagster-default", database, environment, tenants, control, postgres)
            )
            costs["celery"] = (
                celery(folder / "dagster-celery", database, environment, tenants, control, postgres, processes)
                if redis_there
                else None
            )
            return costs

    control.configure(rate_limit=UNTHROTTLED, burst=int(UNTHROTTLED))
    emit_costs(asyncio.run(run()), count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--worker-processes", type=int, default=2)
    args = parser.parse_args()
    settings = Settings(database_name=f"crm_pipeline_bench_{os.getpid()}")
    with (
        tempfile.TemporaryDirectory() as folder,
        sandbox_process("--rate-limit", str(UNTHROTTLED)) as base_url,
        SandboxControl(base_url) as control,
    ):
        try:
            measure(settings, base_url, control, args.tenants, args.worker_processes, Path(folder))
        finally:
            asyncio.run(drop_database(settings))


if __name__ == "__main__":
    main()
