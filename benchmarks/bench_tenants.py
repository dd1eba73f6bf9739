"""Many tenants under the real daemon at Notion's pace: the sweep, and today's run per tenant beside it.

``--tenants`` tenants (default 1,000), each registered in the deal store's tenant registry with a
token of its own (an environment variable) and a Deals database of its own on the sandbox Notion
(a process of its own: 3 requests/s per token, bursts of 10, its defaults), 3 deals each. A first
load (one sweep run in process, unpaced, not counted: its seconds are printed) links every deal
to its page.
Then `dagster dev` on an instance of the benchmark's own with the checkout's ``dagster.yaml``
(daemon, queued run coordinator, default launcher) and ``sync_every_minute`` running, its default:

- idle phase (``min(3, --minutes)`` minutes, nothing edited): requests per idle tenant-minute from
  the sandbox's per-token statistics (goal <= 1), CPU seconds per idle tenant-minute of the whole
  `dagster dev` process tree (webserver, daemon, code server and the runs' processes, which the
  code server reaps, so their CPU stays in its children's times), and of PostgreSQL's, and the
  Dagster runs and event-log rows the phase added, scaled to an idle tenant-day;
- active phase (``--minutes`` minutes, default 5): each minute 5 % of the tenants, chosen at random
  with a fixed seed among those whose last edit Notion shows, get one edit by the agent through the
  deal repository, spread over the minute; the sandbox's control surface (outside the statistics)
  is polled every 2 s until Notion shows each new value, or for 3 minutes after the last edit.
  Latency is wall-clock time from the edit's commit to the poll that saw it: the share within 90 s
  (goal >= 0.95), p50 and p95 (an edit never seen counts as the time it was watched), and the CPU
  seconds per active pass (the phase's CPU above the idle phase's rate, per edit).

Both phases also give the longest sync run (from its creation, the queue included) and the runs
the schedule skipped because the previous one was still in flight (a sweep that falls behind the
minute). Then the same harness measures
today's design at its breaking point: ``sync_every_minute`` stopped,
``sync_each_tenant_every_minute`` started (one run, one process, per tenant and minute),
``--old-tenants`` tenants (default 40; 0: the sweep alone) left active; its figures carry the prefix
``per_tenant_runs_``, and the CPU per idle tenant-minute of both designs is given as a ratio (goal
>= 5). Run: ``.venv/bin/python benchmarks/bench_tenants.py [--tenants 1000] [--minutes 5]
[--old-tenants 40]``. Prints one JSON line per figure.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import dagster as dg
import psutil
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT)]

from bench_repository import drop_database  # noqa: E402
from bench_sweep import timed, unthrottled_resources  # noqa: E402
from report import emit  # noqa: E402
from sandbox_process import sandbox_process  # noqa: E402

from crm_pipeline.crm.notion.codecs import read_sync_key  # noqa: E402
from crm_pipeline.crm.notion.properties import SYNCED_PROPERTY_MAP, notion_properties_schema  # noqa: E402
from crm_pipeline.defs.resources import TenantsResource  # noqa: E402
from crm_pipeline.defs.runs import IN_FLIGHT, SYNC_JOB  # noqa: E402
from crm_pipeline.defs.schedules import (  # noqa: E402
    TENANTS_PER_RUN,
    sync_each_tenant_every_minute,
    sync_every_minute,
)
from crm_pipeline.defs.sweep import SWEEP_JOB  # noqa: E402
from crm_pipeline.models import OpportunityCreate, OpportunityUpdate  # noqa: E402
from crm_pipeline.sandbox import SandboxControl  # noqa: E402
from crm_pipeline.settings import Settings  # noqa: E402
from crm_pipeline.store import Database, DealRepository  # noqa: E402
from crm_pipeline.tenants import TenantConnection, TenantRegistry  # noqa: E402
from crm_pipeline_tests.dagster_processes import GENEROUS_WAIT, RunningDagster, dagster_dev  # noqa: E402

BENCH = "tenants"
RATE, BURST = 3.0, 10
"""Notion's average requests/s per integration, and the sandbox's default burst."""
DEALS_PER_TENANT = 3
EDIT_SHARE = 0.05
WITHIN_SECONDS = 90.0
POLL_SECONDS = 2.0
WATCH_AFTER_LAST_EDIT = 180.0
SEED = 20261206
DAY_MINUTES = 24 * 60


@dataclass(frozen=True)
class Tenant:
    connection: TenantConnection
    data_source_id: str
    deals: list[UUID]

    @property
    def id(self) -> str:
        return self.connection.tenant_id


@dataclass(frozen=True)
class Design:
    """One way of scheduling the passes: its schedule, its job, and how many runs a tick requests."""

    prefix: str
    schedule: str
    job: str
    runs_per_tick: int


@dataclass(frozen=True)
class Snapshot:
    """Counters read at a phase's edges."""

    wall: float
    dagster_cpu: float
    runs_cpu: float
    """The part of ``dagster_cpu`` in the runs' processes."""
    postgres_cpu: float
    runs: int
    event_rows: int

    def since(self, start: Snapshot) -> Snapshot:
        return Snapshot(
            self.wall - start.wall,
            self.dagster_cpu - start.dagster_cpu,
            self.runs_cpu - start.runs_cpu,
            self.postgres_cpu - start.postgres_cpu,
            self.runs - start.runs,
            self.event_rows - start.event_rows,
        )


@dataclass
class Edit:
    tenant: Tenant
    deal: UUID
    value: int
    at: float
    seen_after: float | None = None


@dataclass
class Harness:
    """What a phase reads: Dagster's storage and process tree, PostgreSQL's, the sandbox."""

    dagster: RunningDagster
    control: SandboxControl
    repository: DealRepository
    postgres_pid: int
    rng: random.Random = field(default_factory=lambda: random.Random(SEED))
    edits_made: int = 0

    def snapshot(self) -> Snapshot:
        storage = self.dagster.instance
        return Snapshot(
            time.monotonic(),
            *dagster_cpu_seconds(self.dagster.pid),
            tree_cpu_seconds(self.postgres_pid),
            storage.get_runs_count(),
            storage.event_log_storage.get_maximum_record_id() or 0,
        )


def process_cpu_seconds(pid: int) -> dict[psutil.Process, tuple[float, float]]:
    """Each process of the tree at ``pid``: its own CPU seconds, and those of its children that
    exited and were reaped (the kernel adds them to the parent's children's times)."""
    root = psutil.Process(pid)
    found = {}
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue  # exited just now: its parent's children's times will hold it
        found[process] = (times.user + times.system, times.children_user + times.children_system)
    return found


def tree_cpu_seconds(pid: int) -> float:
    return sum(own + reaped for own, reaped in process_cpu_seconds(pid).values())


def dagster_cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU seconds of `dagster dev`'s tree, and of its runs' processes: those the code server
    spawns (multiprocessing) and, once they exited, reaps."""
    total = runs = 0.0
    for process, (own, reaped) in process_cpu_seconds(pid).items():
        total += own + reaped
        runs += reaped + (own if _is_run(process) else 0.0)
    return total, runs


def _is_run(process: psutil.Process) -> bool:
    try:
        return any("multiprocessing.spawn" in part for part in process.cmdline())
    except psutil.Error:
        return False


async def postgres_pid(database: Database) -> int:
    """The postmaster's pid: the parent of this connection's backend."""
    async with database.owner_transaction() as connection:
        backend = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    parent = psutil.Process(backend).parent()
    assert parent is not None
    return parent.pid


async def create_tenants(database: Database, control: SandboxControl, base_url: str, count: int) -> list[Tenant]:
    """Register ``count`` tenants, each with its own token variable, Deals database and deals."""
    ids = [f"tenant-{n:05d}" for n in range(count)]
    notion = control.seed(
        {
            "databases": [
                {"title": f"Deals of {tenant}", "properties": notion_properties_schema(SYNCED_PROPERTY_MAP)}
                for tenant in ids
            ]
        }
    )
    connections = [
        TenantConnection(
            tenant_id=tenant, database_id=db["database_id"], token_env=token_variable(n), base_url=base_url
        )
        for n, (tenant, db) in enumerate(zip(ids, notion, strict=True))
    ]
    await TenantRegistry(database).save_all(connections)
    repository = DealRepository(database)
    tenants = []
    for connection, db in zip(connections, notion, strict=True):
        deals = [
            await repository.create_opportunity(
                connection.tenant_id, OpportunityCreate(name=f"Deal {n} of {connection.tenant_id}")
            )
            for n in range(DEALS_PER_TENANT)
        ]
        tenants.append(Tenant(connection, db["data_source_id"], [deal.id for deal in deals]))
    return tenants


def token_variable(n: int) -> str:
    return f"BENCH_NOTION_TOKEN_{n:05d}"


def token(n: int) -> str:
    return f"ntn_bench_tenant_{n:05d}"


def first_load(
    database: Database, control: SandboxControl, base_url: str, tenants: list[Tenant], folder: Path
) -> float:
    """One sweep run of every tenant in process, unpaced: every deal gets its page. Its seconds."""
    control.configure(rate_limit=0)
    try:
        with dg.instance_for_test(temp_dir=str(folder)) as instance:
            instance.add_dynamic_partitions("tenant", [tenant.id for tenant in tenants])
            wall, _, _ = timed(instance, SWEEP_JOB, unthrottled_resources(database, base_url, TenantsResource()))
    finally:
        control.configure(rate_limit=RATE, burst=BURST)
    linked = sum(len(control.all_pages(tenant.data_source_id)) for tenant in tenants)
    assert linked == DEALS_PER_TENANT * len(tenants), f"{linked} pages after the first load"
    return wall


def ticks_between(instance: dg.DagsterInstance, schedule: str, after: float, before: float) -> list[dg.InstigatorTick]:
    for state in instance.all_instigator_state():
        if state.name == schedule:
            return list(instance.get_ticks(state.instigator_origin_id, state.selector_id, after=after, before=before))
    return []


def settle(dagster: RunningDagster, design: Design) -> None:
    """Wait for the first tick from now that requests runs, and for those runs to finish."""
    after = time.time()
    deadline = time.monotonic() + GENEROUS_WAIT
    while time.monotonic() < deadline:
        requested = [
            tick for tick in ticks_between(dagster.instance, design.schedule, after, time.time()) if tick.run_ids
        ]
        if requested:
            dagster.wait_for_runs(requested[0].run_ids, timeout=4 * GENEROUS_WAIT)
            return
        time.sleep(1)
    raise TimeoutError(f"{design.schedule} requested no run in {GENEROUS_WAIT} s:\n{dagster.log_tail()}")


def wait_in_flight(dagster: RunningDagster, job: str) -> None:
    records = dagster.instance.get_run_records(dg.RunsFilter(job_name=job, statuses=IN_FLIGHT))
    if records:
        dagster.wait_for_runs([record.dagster_run.run_id for record in records], timeout=4 * GENEROUS_WAIT)


def schedule_health(dagster: RunningDagster, design: Design, after: float, before: float) -> tuple[int, float]:
    """Runs the schedule's ticks in the window did not request (their previous run was still in
    flight), and the longest a run of the design's job created in the window took from its
    creation (the queue included) to its end, or until now if it has not ended."""
    ticks = ticks_between(dagster.instance, design.schedule, after, before)
    skipped = sum(design.runs_per_tick - len(tick.run_ids) for tick in ticks)
    records = dagster.instance.get_run_records(
        dg.RunsFilter(job_name=design.job, created_after=datetime.fromtimestamp(after, UTC))
    )
    now = time.time()
    longest = max(
        ((record.end_time or now) - record.create_timestamp.timestamp() for record in records),
        default=0.0,
    )
    return skipped, longest


@dataclass
class Watch:
    """Edits waiting to show in Notion, looked for through the sandbox's control surface (which
    its request statistics do not count)."""

    control: SandboxControl
    pending: dict[str, Edit] = field(default_factory=dict)
    seen: list[Edit] = field(default_factory=list)
    polled: float = 0.0

    async def until(self, moment: float, *, stop_when_all_seen: bool = False) -> None:
        """Look for every pending edit each ``POLL_SECONDS`` until ``moment`` (monotonic)."""
        while (now := time.monotonic()) < moment and not (stop_when_all_seen and not self.pending):
            if now - self.polled >= POLL_SECONDS:
                self.polled = now
                for edit in list(self.pending.values()):
                    if self.notion_value(edit) == edit.value:
                        edit.seen_after = time.monotonic() - edit.at
                        self.seen.append(self.pending.pop(edit.tenant.id))
            await asyncio.sleep(max(0.0, min(moment, self.polled + POLL_SECONDS) - time.monotonic()))

    def notion_value(self, edit: Edit) -> float | None:
        """The Value Notion shows on the edited deal's page."""
        for page in self.control.all_pages(edit.tenant.data_source_id):
            if read_sync_key(page["properties"], record_id=page["id"]) == str(edit.deal):
                number = page["properties"]["Value"]["number"]
                return None if number is None else float(number)
        return None


async def edit_and_watch(harness: Harness, tenants: Sequence[Tenant], minutes: int) -> list[Edit]:
    """Each minute, 5 % of the tenants (none whose last edit Notion does not show yet) get one
    edit, spread over the minute; then the edits are watched for ``WATCH_AFTER_LAST_EDIT``."""
    per_minute = max(1, round(EDIT_SHARE * len(tenants)))
    watch = Watch(harness.control)
    started = time.monotonic()
    for minute in range(minutes):
        free = [tenant for tenant in tenants if tenant.id not in watch.pending]
        chosen = harness.rng.sample(free, min(per_minute, len(free)))
        for n, tenant in enumerate(chosen):
            await watch.until(started + 60 * (minute + n / len(chosen)))
            watch.pending[tenant.id] = await make_edit(harness, tenant)
    await watch.until(time.monotonic() + WATCH_AFTER_LAST_EDIT, stop_when_all_seen=True)
    return [*watch.seen, *watch.pending.values()]


async def make_edit(harness: Harness, tenant: Tenant) -> Edit:
    """The agent revalues one of the tenant's deals (a value no deal had before)."""
    harness.edits_made += 1
    deal = harness.rng.choice(tenant.deals)
    value = 1_000_000 + harness.edits_made
    await harness.repository.update_opportunity(tenant.id, deal, OpportunityUpdate(estimated_value=Decimal(value)))
    return Edit(tenant, deal, value, time.monotonic())


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


async def measure_design(
    harness: Harness, design: Design, tenants: Sequence[Tenant], idle_minutes: int, active_minutes: int
) -> float:
    """The design's figures; returns its CPU seconds per idle tenant-minute."""
    dagster, count = harness.dagster, len(tenants)
    await asyncio.to_thread(settle, dagster, design)

    epoch, start = time.time(), harness.snapshot()
    harness.control.reset_stats()
    await asyncio.sleep(60 * idle_minutes)
    requests = harness.control.stats()["total"]
    idle = harness.snapshot().since(start)
    skipped, longest = schedule_health(dagster, design, epoch, time.time())
    tenant_minutes = count * idle.wall / 60
    per_day = DAY_MINUTES / (idle.wall / 60) / count
    cpu_idle = idle.dagster_cpu / tenant_minutes
    emit(BENCH, f"{design.prefix}requests_per_idle_tenant_minute", round(requests / tenant_minutes, 3), "count", "<= 1")
    emit(BENCH, f"{design.prefix}cpu_seconds_per_idle_tenant_minute", round(cpu_idle, 4), "s", None)
    emit(
        BENCH,
        f"{design.prefix}postgres_cpu_seconds_per_idle_tenant_minute",
        round(idle.postgres_cpu / tenant_minutes, 4),
        "s",
        None,
    )
    emit(
        BENCH,
        f"{design.prefix}dagster_cpu_share_of_machine_idle",
        round(idle.dagster_cpu / idle.wall / (os.cpu_count() or 1), 3),
        "ratio",
        None,
    )
    emit(
        BENCH,
        f"{design.prefix}runs_share_of_dagster_cpu_idle",
        round(idle.runs_cpu / idle.dagster_cpu, 3),
        "ratio",
        None,
    )
    emit(BENCH, f"{design.prefix}dagster_runs_per_idle_tenant_day", round(idle.runs * per_day, 2), "count", None)
    emit(
        BENCH, f"{design.prefix}event_log_rows_per_idle_tenant_day", round(idle.event_rows * per_day, 1), "count", None
    )
    emit(BENCH, f"{design.prefix}idle_runs_skipped_as_in_flight", skipped, "count", None)
    emit(BENCH, f"{design.prefix}idle_longest_run_seconds", round(longest, 1), "s", None)

    epoch, start = time.time(), harness.snapshot()
    edits = await edit_and_watch(harness, tenants, active_minutes)
    active = harness.snapshot().since(start)
    skipped, longest = schedule_health(dagster, design, epoch, time.time())
    watched = time.monotonic()
    latencies = [edit.seen_after if edit.seen_after is not None else watched - edit.at for edit in edits]
    within = sum(edit.seen_after is not None and edit.seen_after <= WITHIN_SECONDS for edit in edits)
    extra_cpu = active.dagster_cpu - idle.dagster_cpu / idle.wall * active.wall
    emit(BENCH, f"{design.prefix}edits", len(edits), "count", None)
    emit(BENCH, f"{design.prefix}edits_within_90s_share", round(within / len(edits), 3), "ratio", ">= 0.95")
    emit(BENCH, f"{design.prefix}edit_latency_p50_seconds", round(percentile(latencies, 0.5), 1), "s", None)
    emit(BENCH, f"{design.prefix}edit_latency_p95_seconds", round(percentile(latencies, 0.95), 1), "s", "<= 90")
    emit(BENCH, f"{design.prefix}edits_never_seen", sum(edit.seen_after is None for edit in edits), "count", None)
    emit(BENCH, f"{design.prefix}cpu_seconds_per_active_pass", round(extra_cpu / len(edits), 3), "s", None)
    emit(
        BENCH,
        f"{design.prefix}dagster_cpu_share_of_machine_active",
        round(active.dagster_cpu / active.wall / (os.cpu_count() or 1), 3),
        "ratio",
        None,
    )
    emit(BENCH, f"{design.prefix}active_runs_skipped_as_in_flight", skipped, "count", None)
    emit(BENCH, f"{design.prefix}active_longest_run_seconds", round(longest, 1), "s", None)
    return cpu_idle


async def measure(
    settings: Settings, base_url: str, control: SandboxControl, args: argparse.Namespace, folder: Path
) -> None:
    database = await Database.open(settings)
    try:
        tenants = await create_tenants(database, control, base_url, args.tenants)
        load = await asyncio.to_thread(first_load, database, control, base_url, tenants, folder)
        emit(BENCH, f"first_load_of_{len(tenants)}_tenants_seconds", round(load, 1), "s", None)
        idle_minutes, active_minutes = min(3, args.minutes), args.minutes
        home = folder / "dagster"
        home.mkdir()
        with dagster_dev(home, database, tokens(len(tenants))) as dagster:
            dagster.instance.add_dynamic_partitions("tenant", [tenant.id for tenant in tenants])
            harness = Harness(dagster, control, DealRepository(database), await postgres_pid(database))
            shards = math.ceil(len(tenants) / TENANTS_PER_RUN)
            sweep = Design("", sync_every_minute.name, SWEEP_JOB, shards)
            sweep_cpu = await measure_design(harness, sweep, tenants, idle_minutes, active_minutes)
            if not args.old_tenants:
                return
            old = tenants[: args.old_tenants]
            await asyncio.to_thread(dagster.set_schedule, sync_every_minute.name, False)
            await asyncio.to_thread(wait_in_flight, dagster, SWEEP_JOB)
            paused = [tenant.connection.model_copy(update={"active": False}) for tenant in tenants[len(old) :]]
            await TenantRegistry(database).save_all(paused)
            await asyncio.to_thread(dagster.set_schedule, sync_each_tenant_every_minute.name, True)
            per_tenant = Design("per_tenant_runs_", sync_each_tenant_every_minute.name, SYNC_JOB, len(old))
            per_tenant_cpu = await measure_design(harness, per_tenant, old, idle_minutes, active_minutes)
            emit(BENCH, "cpu_per_idle_tenant_minute_gain", round(per_tenant_cpu / sweep_cpu, 1), "x", ">= 5")
    finally:
        await database.close()


def tokens(count: int) -> dict[str, str]:
    """Each tenant's token, by the variable its connection names."""
    return {token_variable(n): token(n) for n in range(count)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--minutes", type=int, default=5, help="the active phase's; the idle phase's, at most 3")
    parser.add_argument("--old-tenants", type=int, default=40, help="tenants of the run-per-tenant design; 0: none")
    args = parser.parse_args()
    settings = Settings(database_name=f"crm_pipeline_bench_{os.getpid()}")
    os.environ.update(tokens(args.tenants))  # the first load's runs read them here
    flags = ["--rate-limit", str(RATE), "--burst", str(BURST)]
    flags += [flag for n in range(args.tenants) for flag in ("--token", token(n))]
    with (
        tempfile.TemporaryDirectory() as folder,
        sandbox_process(*flags) as base_url,
        SandboxControl(base_url) as control,
    ):
        try:
            asyncio.run(measure(settings, base_url, control, args, Path(folder)))
        finally:
            asyncio.run(drop_database(settings))


if __name__ == "__main__":
    main()
