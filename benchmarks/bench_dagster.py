"""The scheduled sync run, through the code location's own job, at Notion's 3 requests/s.

A tenant with ``--deals`` deals (default 100) is synced once unthrottled; then, with the sandbox
and the client both at 3 requests/s:

- idle: a run of ``deals_sync_job`` with nothing changed (goal ≤ 10 s). This is the run itself,
  in process; under the daemon, the queue adds its dequeue interval (about 5 s) before it starts.
- changed: the agent changes every deal, then one run pushes them all (goal ≤ 60 s: inside the
  schedule's interval).

The deal store is the embedded PostgreSQL, in a database of its own that is dropped afterwards;
the sandbox runs as a process of its own. Run: ``.venv/bin/python benchmarks/bench_dagster.py``.
Prints one JSON line per figure.
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
from uuid import uuid4

import dagster as dg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_repository import drop_database  # noqa: E402
from report import emit  # noqa: E402
from sandbox_process import sandbox_process  # noqa: E402

from crm_pipeline.crm.field_mapping import SYNCED_PROPERTY_MAP, notion_properties_schema  # noqa: E402
from crm_pipeline.definitions import defs  # noqa: E402
from crm_pipeline.defs.resources import CRMConnectionResource, DealStoreResource, NotionConnector, TenantsResource  # noqa: E402
from crm_pipeline.defs.tenants import TenantConnection, save_tenants  # noqa: E402
from crm_pipeline.models import OpportunityCreate, OpportunityUpdate  # noqa: E402
from crm_pipeline.sandbox import SandboxControl  # noqa: E402
from crm_pipeline.settings import Settings  # noqa: E402
from crm_pipeline.store import Database, DealRepository  # noqa: E402

BENCH = "dagster"
RATE = 3.0
UNTHROTTLED = 1000.0


def timed_run(instance: dg.DagsterInstance, resources: dict[str, object], tenant: str) -> float:
    job = defs.resolve_job_def("deals_sync_job")
    started = time.monotonic()
    result = job.execute_in_process(resources=resources, instance=instance, partition_key=tenant)
    elapsed = time.monotonic() - started
    assert result.success
    return elapsed


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
            [TenantConnection(tenant_id=tenant, database_id=notion_db["database_id"], token_env="BENCH_NO_TOKEN")],
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

            for deal in created:
                await repository.update_opportunity(tenant, deal.id, OpportunityUpdate(estimated_value=Decimal(777)))
            changed = await asyncio.to_thread(timed_run, instance, resources(RATE), tenant)
            emit(BENCH, f"run_with_{deals}_changed_deals_seconds", round(changed, 2), "s", "<= 60")


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
