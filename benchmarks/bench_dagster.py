"""The scheduled sync run, through the code location's own job, at Notion's 3 requests/s.

A tenant with ``--deals`` deals (default 100) is synced once unthrottled; then, with the sandbox
and the client both at 3 requests/s:

- idle: a run of ``deals_sync_job`` with nothing changed (goal ≤ 10 s), in process: the run itself.
- changed: the agent changes every deal, then one run pushes them all (goal ≤ 60 s: inside the
  schedule's interval).
- the same two under Dagster's own processes (`dagster dev` on an instance of the benchmark's own:
  the daemon's scheduler, the queued run coordinator, the default run launcher starting each run
  in a process): from the ``sync_every_minute`` tick's scheduled time, as the daemon records it,
  to the run's success. That adds the tick's evaluation, the queue and the run process's start.

The deal store is the embedded PostgreSQL, in a database of its own that is dropped afterwards
(Dagster's storage too, in its schema public); the sandbox runs as a process of its own. Run:
``.venv/bin/python benchmarks/bench_dagster.py``. Prints one JSON line per figure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from uuid import UUID, uuid4

import dagster as dg

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT)]

from bench_repository import drop_database  # noqa: E402
from report import emit  # noqa: E402
from sandbox_process import sandbox_process  # noqa: E402

from crm_pipeline.crm.notion.properties import SYNCED_PROPERTY_MAP, notion_properties_schema  # noqa: E402
from crm_pipeline.definitions import defs  # noqa: E402
from crm_pipeline.defs.resources import CRMConnectionResource, DealStoreResource, NotionConnector, TenantsResource  # noqa: E402
from crm_pipeline.defs.schedules import sync_every_minute  # noqa: E402
from crm_pipeline.defs.tenants import TenantConnection, save_tenants  # noqa: E402
from crm_pipeline.models import OpportunityCreate, OpportunityUpdate  # noqa: E402
from crm_pipeline.sandbox import SandboxControl  # noqa: E402
from crm_pipeline.settings import Settings  # noqa: E402
from crm_pipeline.store import Database, DealRepository  # noqa: E402
from crm_pipeline_tests.dagster_processes import RunningDagster, dagster_dev  # noqa: E402

BENCH = "dagster"
RATE = 3.0
UNTHROTTLED = 1000.0
TICK_WAIT = 150.0
"""Seconds to wait for a tick that requests a run: the next minute's, on a loaded machine."""


def timed_run(instance: dg.DagsterInstance, resources: dict[str, object], tenant: str) -> float:
    job = defs.resolve_job_def("deals_sync_job")
    started = time.monotonic()
    result = job.execute_in_process(resources=resources, instance=instance, partition_key=tenant)
    elapsed = time.monotonic() - started
    assert result.success
    return elapsed


def scheduled_run_seconds(dagster: RunningDagster, after: float) -> float:
    """Seconds from the first ``sync_every_minute`` tick scheduled after ``after`` (epoch seconds)
    to the success of the run it requested, as the daemon's tick record and the run record say."""
    deadline = time.monotonic() + TICK_WAIT
    while time.monotonic() < deadline:
        # The daemon records the schedule's state with its first tick.
        for state in dagster.instance.all_instigator_state():
            if state.name != sync_every_minute.name:
                continue
            ticks = dagster.instance.get_ticks(state.instigator_origin_id, state.selector_id, after=after)
            requested = sorted((tick for tick in ticks if tick.run_ids), key=lambda tick: tick.timestamp)
            if requested:
                [record] = dagster.wait_for_runs(requested[0].run_ids)
                assert record.dagster_run.status == dg.DagsterRunStatus.SUCCESS, dagster.log_tail()
                assert record.end_time is not None
                return record.end_time - requested[0].timestamp
        time.sleep(0.5)
    raise TimeoutError(f"no tick requested a run within {TICK_WAIT} s:\n{dagster.log_tail()}")


async def change_every_deal(repository: DealRepository, tenant: str, deals: list[UUID], value: int) -> None:
    for deal in deals:
        await repository.update_opportunity(tenant, deal, OpportunityUpdate(estimated_value=Decimal(value)))


async def measure(settings: Settings, base_url: str, control: SandboxControl, deals: int, folder: Path) -> None:
    async with await Database.open(settings) as database:
        repository = DealRepository(database)
        tenant = f"bench-{uuid4().hex[:12]}"
        await repository.register_tenant(tenant)
        created = [
            await repository.create_opportunity(tenant, OpportunityCreate(name=f"Deal {n}")) for n in range(deals)
        ]
        [notion_db] = control.seed(
            {"databases": [{"title": "Deals", "properties": notion_properties_schema(SYNCED_PROPERTY_MAP)}]}
        )
        tenants_file = folder / "tenants.toml"
        save_tenants(
            tenants_file,
            [
                TenantConnection(
                    tenant_id=tenant,
                    database_id=notion_db["database_id"],
                    token_env="BENCH_NO_TOKEN",
                    base_url=base_url,
                )
            ],
        )

        def resources(rate: float) -> dict[str, object]:
            return {
                "deal_store": DealStoreResource(
                    database_url=database.url.render_as_string(hide_password=False),
                    app_database_url=database.app_url.render_as_string(hide_password=False),
                ),
                "crm": CRMConnectionResource(notion=NotionConnector(base_url=base_url, requests_per_second=rate)),
                "tenants": TenantsResource(tenants_file=str(tenants_file)),
            }

        with dg.instance_for_test(temp_dir=str(folder)) as instance:
            instance.add_dynamic_partitions("tenant", [tenant])
            control.configure(rate_limit=UNTHROTTLED, burst=100)
            await asyncio.to_thread(timed_run, instance, resources(UNTHROTTLED), tenant)  # every page created
            await asyncio.to_thread(timed_run, instance, resources(UNTHROTTLED), tenant)  # watermarks settled
            control.configure(rate_limit=RATE, burst=1)

            control.reset_stats()
            idle = await asyncio.to_thread(timed_run, instance, resources(RATE), tenant)
            emit(BENCH, "idle_run_seconds", round(idle, 2), "s", "<= 10")
            emit(BENCH, "idle_run_requests", control.stats()["total"], "count")

            deal_ids = [deal.id for deal in created]
            await change_every_deal(repository, tenant, deal_ids, 777)
            changed = await asyncio.to_thread(timed_run, instance, resources(RATE), tenant)
            emit(BENCH, f"run_with_{deals}_changed_deals_seconds", round(changed, 2), "s", "<= 60")

        # The code location's own resources, from the settings in the environment: the client at
        # its default 3 requests/s, the tenant's Notion the sandbox its connection names.
        environment = {"CRM_PIPELINE_TENANTS_FILE": str(tenants_file)}
        home = folder / "dagster"
        home.mkdir()
        with dagster_dev(home, database, environment) as dagster:
            dagster.instance.add_dynamic_partitions("tenant", [tenant])
            control.reset_stats()
            idle_tick = await asyncio.to_thread(scheduled_run_seconds, dagster, time.time())
            emit(BENCH, "idle_tick_to_run_success_seconds", round(idle_tick, 2), "s", "<= 10")
            emit(BENCH, "idle_tick_requests", control.stats()["total"], "count")
            await change_every_deal(repository, tenant, deal_ids, 888)
            changed_tick = await asyncio.to_thread(scheduled_run_seconds, dagster, time.time())
            emit(BENCH, f"tick_with_{deals}_changed_deals_to_run_success_seconds", round(changed_tick, 2), "s", "<= 60")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deals", type=int, default=100)
    args = parser.parse_args()
    settings = Settings(database_name=f"crm_pipeline_bench_{os.getpid()}")
    with (
        tempfile.TemporaryDirectory() as folder,
        sandbox_process("--rate-limit", str(RATE)) as base_url,
        SandboxControl(base_url) as control,
    ):
        try:
            asyncio.run(measure(settings, base_url, control, args.deals, Path(folder)))
        finally:
            asyncio.run(drop_database(settings))


if __name__ == "__main__":
    main()
