"""A sweep run over many idle tenants, in process, beside a run per tenant.

``--tenants`` tenants (default 1,000), each with a Deals database of its own on the sandbox
Notion (a process of its own, unthrottled: the figure is this machine's cost, not Notion's
pace), none with anything to sync. After a first sweep that discovers every connection:

- one ``tenants_sweep_job`` run over all of them (one shard): its seconds (goal <= 60, inside
  the schedule's minute), CPU seconds per idle tenant, requests per idle tenant (goal <= 1), and
  the event-log rows it added per idle tenant (goal <= 0.1: the run's own rows, shared);
- one ``deals_sync_job`` run of one idle tenant, in the same process: its CPU seconds and event-log
  rows, so the sweep's gain per tenant is a ratio measured side by side. (A scheduled run of its
  own also starts a process: ``bench_dagster.py`` measures that.)

The deal store is the embedded PostgreSQL, in a database of its own that is dropped afterwards.
Run: ``.venv/bin/python benchmarks/bench_sweep.py [--tenants 1000]``. Prints one JSON line per figure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT)]

from bench_repository import drop_database  # noqa: E402
from report import emit  # noqa: E402
from sandbox_process import sandbox_process  # noqa: E402

from crm_pipeline.crm.notion.properties import SYNCED_PROPERTY_MAP, notion_properties_schema  # noqa: E402
from crm_pipeline.definitions import defs  # noqa: E402
from crm_pipeline.defs.resources import CRMConnectionResource, DealStoreResource, NotionConnector, TenantsResource  # noqa: E402
from crm_pipeline.defs.sweep import SWEEP_JOB  # noqa: E402
from crm_pipeline.defs.tenants import TenantConnection, save_tenants  # noqa: E402
from crm_pipeline.sandbox import SandboxControl  # noqa: E402
from crm_pipeline.settings import Settings  # noqa: E402
from crm_pipeline.store import Database, DealRepository  # noqa: E402

BENCH = "sweep"
UNTHROTTLED = 100000.0


def cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def timed(
    instance: dg.DagsterInstance, job: str, resources: dict[str, object], partition_key: str | None = None
) -> tuple[float, float, int]:
    """Run a job in process: its wall seconds, CPU seconds and event-log rows."""
    wall, cpu = time.monotonic(), cpu_seconds()
    result = defs.resolve_job_def(job).execute_in_process(
        instance=instance, resources=resources, partition_key=partition_key
    )
    assert result.success
    return time.monotonic() - wall, cpu_seconds() - cpu, len(instance.all_logs(result.run_id))


def unthrottled_resources(database: Database, base_url: str, tenants: TenantsResource) -> dict[str, object]:
    """The code location's resources over the benchmark's deal store and the sandbox at ``base_url``,
    the Notion client unpaced."""
    return {
        "deal_store": DealStoreResource(
            database_url=database.url.render_as_string(hide_password=False),
            app_database_url=database.app_url.render_as_string(hide_password=False),
        ),
        "crm": CRMConnectionResource(notion=NotionConnector(base_url=base_url, requests_per_second=UNTHROTTLED)),
        "tenants": tenants,
    }


async def register(database: Database, tenants: list[str]) -> None:
    repository = DealRepository(database)
    for tenant in tenants:
        await repository.register_tenant(tenant)


def measure(settings: Settings, base_url: str, control: SandboxControl, count: int, folder: Path) -> None:
    tenants = [f"sweep-{n:05d}" for n in range(count)]
    databases = control.seed(
        {
            "databases": [
                {"title": f"Deals of {tenant}", "properties": notion_properties_schema(SYNCED_PROPERTY_MAP)}
                for tenant in tenants
            ]
        }
    )

    async def open_and_register() -> Database:
        database = await Database.open(settings)
        await register(database, tenants)
        return database

    database = asyncio.run(open_and_register())
    tenants_file = folder / "tenants.toml"
    save_tenants(
        tenants_file,
        [
            TenantConnection(
                tenant_id=tenant, database_id=db["database_id"], token_env="BENCH_NO_TOKEN", base_url=base_url
            )
            for tenant, db in zip(tenants, databases, strict=True)
        ],
    )
    resources = unthrottled_resources(database, base_url, TenantsResource(tenants_file=str(tenants_file)))
    asyncio.run(database.close())
    control.configure(rate_limit=UNTHROTTLED, burst=int(UNTHROTTLED))
    with dg.instance_for_test(temp_dir=str(folder)) as instance:
        instance.add_dynamic_partitions("tenant", tenants)
        timed(instance, SWEEP_JOB, resources)  # discovers every connection
        control.reset_stats()
        wall, cpu, rows = timed(instance, SWEEP_JOB, resources)
        requests = control.stats()["total"]
        emit(BENCH, f"sweep_of_{count}_idle_tenants_seconds", round(wall, 2), "s", "<= 60")
        emit(BENCH, "requests_per_idle_tenant", round(requests / count, 3), "count", "<= 1")
        emit(BENCH, "cpu_seconds_per_idle_tenant_in_sweep", round(cpu / count, 4), "s", None)
        emit(BENCH, "event_log_rows_per_idle_tenant_in_sweep", round(rows / count, 3), "count", "<= 0.1")
        one = tenants[0]
        timed(instance, "deals_sync_job", resources, one)  # warm
        _, cpu_one, rows_one = timed(instance, "deals_sync_job", resources, one)
        emit(BENCH, "cpu_seconds_per_idle_tenant_in_own_run", round(cpu_one, 4), "s", None)
        emit(BENCH, "event_log_rows_per_idle_tenant_in_own_run", rows_one, "count", None)
        emit(BENCH, "cpu_gain_sweep_over_own_run", round(cpu_one / (cpu / count), 1), "x", ">= 5")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=1000)
    args = parser.parse_args()
    settings = Settings(database_name=f"crm_pipeline_bench_{os.getpid()}")
    with (
        tempfile.TemporaryDirectory() as folder,
        sandbox_process("--rate-limit", str(UNTHROTTLED)) as base_url,
        SandboxControl(base_url) as control,
    ):
        try:
            measure(settings, base_url, control, args.tenants, Path(folder))
        finally:
            asyncio.run(drop_database(settings))


if __name__ == "__main__":
    main()
