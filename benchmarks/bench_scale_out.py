"""Scale-out: the tenants one worker host keeps synced every minute, and two, side by side in one run.

Each host is a network namespace of its own with its own address (crm_pipeline_tests/deploy/hosts.py),
running `crm-pipeline worker` (one Celery worker process) under the same CPU limit, ``--cpu-share``
of a core (default 0.1; a cgroup's CPU quota). The hosts' CPU is what is compared, so it must be
the limit: PostgreSQL, the sandbox Notion and Dagster's daemon, which the hosts share, run on the
same 2 cores, and on a machine also running other work a larger share measures them as much as
the hosts (at 0.4 of a core two hosts gave 1.41x one, at 0.25 1.3x, at 0.1 2.03x). Dagster's
webserver and daemon run here with the checkout's dagster.yaml and the Celery run launcher;
PostgreSQL (the embedded server, relayed to the bridge's address), the Redis broker and the
sandbox Notion (a process of its own, unthrottled: the figures are the hosts' cost, not Notion's
pace) listen on the bridge.

``--tenants`` tenants (default 120), each with a token of its own and a Deals database of its own
(no deals: an idle pass reads only what changed on either side, so its cost does not grow with
them), in ``--shards`` shards (default 8): a tick is one ``tenants_sweep_job`` run per shard, all
submitted at once, as ``sync_every_minute`` requests them. With one host and then with two, a
warm-up tick with the hosts unlimited (the new worker's first runs; the first one's passes find
every tenant's database), then an idle tick (one request a tenant) under the limit, whose wall
seconds, from its submission to its last run's end, give the tenants the hosts keep synced every
minute: ``tenants * 60 / seconds``. Every tenant's pass then starts within a minute of the
previous one, so an edit reaches the other side within a minute and a pass of its tick, within
the 90 s bound while a pass takes under 30 s. Goal: two hosts >= 1.8x one.

Needs root (namespaces, cgroups) and redis-server (scripts/ensure-redis). Run:
``.venv/bin/python benchmarks/bench_scale_out.py [--tenants 120] [--shards 8] [--cpu-share 0.1]``
(about 5 minutes). Prints one JSON line per figure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT)]

from bench_repository import drop_database  # noqa: E402
from report import emit  # noqa: E402
from sandbox_process import sandbox_process  # noqa: E402

from crm_pipeline.crm.field_mapping import SYNCED_PROPERTY_MAP, notion_properties_schema  # noqa: E402
from crm_pipeline.defs.partitions import TENANT_PARTITIONS  # noqa: E402
from crm_pipeline.defs.schedules import sync_every_minute  # noqa: E402
from crm_pipeline.defs.sweep import SHARD_TAG, SWEEP_JOB, sync_tenants  # noqa: E402
from crm_pipeline.defs.tenants import TenantConnection, save_tenants  # noqa: E402
from crm_pipeline.sandbox import SandboxControl  # noqa: E402
from crm_pipeline.settings import Settings  # noqa: E402
from crm_pipeline.store import Database, DealRepository  # noqa: E402
from crm_pipeline.workers import BROKER_VARIABLE  # noqa: E402
from crm_pipeline_tests.dagster_processes import (  # noqa: E402
    RunningDagster,
    dagster_dev,
    free_port,
    instance_variables,
)
from crm_pipeline_tests.deploy.hosts import (  # noqa: E402
    Host,
    can_make_hosts,
    network,
    postgres_over_tcp,
    redis_server,
    wait_for_workers,
    worker_on,
)

BENCH = "scale_out"
UNTHROTTLED = 100000.0
GOAL_RATIO = 1.8
TICK_WAIT = 900.0
WARM_UP_SHARE = 1.0


@dataclass
class CpuLimit:
    """A cgroup whose processes together get a share of a core (cgroup v2's cpu.max, or v1's CFS
    quota); ``command`` runs a command in it."""

    group: Path
    command: list[str]

    def set(self, share: float) -> None:
        period = 100000
        if (self.group / "cpu.max").exists():
            (self.group / "cpu.max").write_text(f"{int(share * period)} {period}")
        else:
            (self.group / "cpu.cfs_period_us").write_text(str(period))
            (self.group / "cpu.cfs_quota_us").write_text(str(int(share * period)))


@contextmanager
def cpu_limit() -> Iterator[CpuLimit]:
    """A new cgroup (of the unified hierarchy, or v1's cpu controller), removed on exit."""
    unified = Path("/sys/fs/cgroup")
    root = unified if (unified / "cgroup.controllers").is_file() else unified / "cpu"
    group = root / f"crm-scale-out-{secrets.token_hex(4)}"
    group.mkdir()
    try:
        yield CpuLimit(group, ["sh", "-c", f'echo $$ > {group / "cgroup.procs"} && exec "$@"', "limited"])
    finally:
        # Its processes are gone (the host's worker is stopped first); the group goes.
        for _ in range(50):
            try:
                group.rmdir()
                break
            except OSError:
                time.sleep(0.1)


def tokens(count: int) -> dict[str, str]:
    """Each tenant's token (an integration of its own, so its budget is its own), by variable."""
    return {f"BENCH_TOKEN_{n:04d}": f"ntn_scale_out_{n:04d}" for n in range(count)}


def tick(dagster: RunningDagster, shards: int) -> float:
    """A sweep run per shard, submitted at once; wall seconds from the first submission to the
    last run's end (every run must succeed)."""
    started = time.time()
    run_ids = [
        dagster.client.submit_job_execution(
            SWEEP_JOB,
            run_config={"ops": {sync_tenants.name: {"config": {"shard": shard, "shards": shards}}}},
            tags={SHARD_TAG: f"{shard}/{shards}"},
        )
        for shard in range(shards)
    ]
    records = dagster.wait_for_runs(run_ids, timeout=TICK_WAIT)
    failed = [r.dagster_run.run_id for r in records if r.dagster_run.status != dg.DagsterRunStatus.SUCCESS]
    if failed:
        raise RuntimeError(f"runs failed: {failed}\n{dagster.log_tail()}")
    return max(record.end_time or 0.0 for record in records) - started


async def prepare(settings: Settings, control: SandboxControl, base_url: str, count: int, folder: Path) -> Path:
    """``count`` tenants, each with its Notion database and its token variable, in a tenants file
    (returned) and the deal store."""
    names = [f"scale-{n:04d}" for n in range(count)]
    schema = notion_properties_schema(SYNCED_PROPERTY_MAP)
    databases = control.seed({"databases": [{"title": f"Deals of {name}", "properties": schema} for name in names]})
    tenants = [
        TenantConnection(
            tenant_id=name, database_id=db["database_id"], token_env=f"BENCH_TOKEN_{n:04d}", base_url=base_url
        )
        for n, (name, db) in enumerate(zip(names, databases, strict=True))
    ]
    tenants_file = folder / "tenants.toml"
    save_tenants(tenants_file, tenants)
    async with await Database.open(settings) as database:
        repository = DealRepository(database)
        for name in names:
            await repository.register_tenant(name)
    return tenants_file


def measure(settings: Settings, count: int, shards: int, share: float, folder: Path) -> dict[int, float]:
    """Seconds of an idle tick with one host, then with two."""
    with ExitStack() as stack:
        net = stack.enter_context(network(2))
        broker, _ = stack.enter_context(redis_server(folder, net.address, free_port()))
        flags = ["--rate-limit", str(UNTHROTTLED), *(f"--token={token}" for token in tokens(count).values())]
        base_url = stack.enter_context(sandbox_process(*flags, host=net.address))
        control = stack.enter_context(SandboxControl(base_url))
        tenants_file = asyncio.run(prepare(settings, control, base_url, count, folder))
        database = stack.enter_context(_opened(settings))
        owner_url = stack.enter_context(postgres_over_tcp(database.url, net.address))
        environment = {"CRM_PIPELINE_TENANTS_FILE": str(tenants_file), BROKER_VARIABLE: broker, **tokens(count)}
        dagster = stack.enter_context(dagster_dev(folder / "dagster", database, environment, celery=True))
        dagster.set_schedule(sync_every_minute.name, running=False)
        dagster.instance.add_dynamic_partitions(TENANT_PARTITIONS, [f"scale-{n:04d}" for n in range(count)])
        app_url = owner_url.set(username=database.app_url.username, password=database.app_url.password)
        remote = instance_variables(folder / "dagster", owner_url, app_url, environment)  # PostgreSQL over the link
        seconds: dict[int, float] = {}
        started: list[Host] = []
        limits: list[CpuLimit] = []
        for host in net.hosts:
            limits.append(stack.enter_context(cpu_limit()))
            stack.enter_context(worker_on(host, broker, remote, folder / f"{host.name}.log", limit=limits[-1].command))
            started.append(host)
            wait_for_workers(broker, started)
            # Unlimited, the new worker's first runs, and the first tick's first passes (which
            # find every tenant's database), take seconds, not minutes.
            for limit in limits:
                limit.set(WARM_UP_SHARE)
            warm = tick(dagster, shards)
            print(f"bench_scale_out: {len(started)} host(s), warm-up tick {warm:.1f} s", file=sys.stderr)
            for limit in limits:
                limit.set(share)
            seconds[len(started)] = tick(dagster, shards)
        return seconds


@contextmanager
def _opened(settings: Settings) -> Iterator[Database]:
    """The deal store, open for its URLs (the processes started here use it, not this one)."""
    database = asyncio.run(Database.open(settings))
    try:
        yield database
    finally:
        asyncio.run(database.close())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=120)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--cpu-share", type=float, default=0.1)
    args = parser.parse_args()
    if (unable := can_make_hosts()) is not None:
        print(f"bench_scale_out: not measured, {unable}", file=sys.stderr)
        for figure, unit in (("tenants_per_minute_1_host", "count"), ("tenants_per_minute_2_hosts", "count")):
            emit(BENCH, figure, None, unit)
        emit(BENCH, "ratio_2_hosts_over_1", None, "x", f">= {GOAL_RATIO}")
        return
    settings = Settings(database_name=f"crm_pipeline_bench_{os.getpid()}")
    with tempfile.TemporaryDirectory() as folder:
        try:
            seconds = measure(settings, args.tenants, args.shards, args.cpu_share, Path(folder))
        finally:
            asyncio.run(drop_database(settings))
    for hosts, wall in seconds.items():
        emit(BENCH, f"idle_tick_seconds_{hosts}_host{'s' if hosts > 1 else ''}", round(wall, 1), "s")
    per_minute = {hosts: args.tenants * 60 / wall for hosts, wall in seconds.items()}
    emit(BENCH, "tenants_per_minute_1_host", round(per_minute[1]), "count")
    emit(BENCH, "tenants_per_minute_2_hosts", round(per_minute[2]), "count")
    emit(BENCH, "ratio_2_hosts_over_1", round(per_minute[2] / per_minute[1], 2), "x", f">= {GOAL_RATIO}")


if __name__ == "__main__":
    main()
