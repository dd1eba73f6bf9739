"""Requests per quiet sync pass in a fresh process, Notion and HubSpot, with the connection's
discovery kept in the deal store and without it (the kept state cleared before each pass).

Set-up: a tenant per CRM with ``--deals`` deals, synced by two passes (the second settles the
trash and reconciliation watermarks). Then each figure is ``--passes`` passes with nothing changed,
each pass in a process of its own (``python bench_idle_pass.py --one-pass …``: a new interpreter,
a new adapter and engine, as every Dagster run and ``crm-pipeline sync`` is), counted by the CRM's
own statistics; the largest count is reported. Without the kept discovery a Notion pass asks for
the database, its data source and the bot user before its query; a HubSpot pass for the deal
properties and the pipeline before its search.

HubSpot's quiet pass costs two requests (goal <= 2): the change search, and the read (with
property history) of the deals it finds in the overlap before its cursor, where the last deal
written always is. The overlap is what catches an edit the search index had not seen yet, and
another edit within the same millisecond, so those deals cannot be skipped by their last-modified
time (``test_change_reads_never_miss_an_edit`` makes such an edit); the search answers with ids
and dates only. Notion's query returns the pages it finds in the same request.

The sandbox Notion runs as a process of its own, the local HubSpot in a thread; the deal store is
the embedded PostgreSQL, in a database of its own that is dropped afterwards.

Run: ``.venv/bin/python benchmarks/bench_idle_pass.py [--deals 20] [--passes 3]``. Prints one JSON
line per figure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from uuid import uuid4

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_repository import drop_database  # noqa: E402
from report import emit  # noqa: E402
from sandbox_process import sandbox_process  # noqa: E402
from sqlalchemy import text  # noqa: E402

from crm_pipeline.crm import CRMAdapter, HubSpotAdapter, NotionAdapter, PostgresAdapter  # noqa: E402
from crm_pipeline.crm.notion.properties import SYNCED_PROPERTY_MAP, notion_properties_schema  # noqa: E402
from crm_pipeline.emulation.control_client import ControlClient  # noqa: E402
from crm_pipeline.hubspot_sandbox import DEFAULT_TOKEN as HUBSPOT_TOKEN  # noqa: E402
from crm_pipeline.hubspot_sandbox import HubSpotControl, HubSpotSandboxConfig, serve_hubspot_in_thread  # noqa: E402
from crm_pipeline.models import OpportunityCreate  # noqa: E402
from crm_pipeline.sandbox import DEFAULT_TOKEN as NOTION_TOKEN  # noqa: E402
from crm_pipeline.sandbox import SandboxControl  # noqa: E402
from crm_pipeline.settings import Settings  # noqa: E402
from crm_pipeline.store import Database, DealRepository  # noqa: E402
from crm_pipeline.sync import SyncEngine  # noqa: E402
from crm_pipeline.sync.ownership import DEFAULT_FIELD_OWNERSHIP  # noqa: E402

BENCH = "idle_pass"
GOALS = {"notion": "<= 1", "hubspot": "<= 2"}


def adapter(connector: str, base_url: str, database_id: str) -> CRMAdapter:
    if connector == "notion":
        return NotionAdapter(NOTION_TOKEN, database_id, base_url=base_url, property_map=SYNCED_PROPERTY_MAP)
    return HubSpotAdapter(HUBSPOT_TOKEN, base_url=base_url)


async def one_pass(settings: Settings, tenant: str, connector: str, base_url: str, database_id: str) -> None:
    """A pass as a new process runs it: nothing known but the deal store."""
    async with await Database.open(settings) as database:
        engine = SyncEngine(
            PostgresAdapter(DealRepository(database), tenant),
            adapter(connector, base_url, database_id),
            DEFAULT_FIELD_OWNERSHIP,
        )
        try:
            result = await engine.run_pass()
        finally:
            await engine.close()
    assert result.pushed == result.pulled == result.created == 0, result


async def synced_tenant(database: Database, connector: str, base_url: str, database_id: str, deals: int) -> str:
    repository = DealRepository(database)
    tenant = f"bench-{uuid4().hex[:12]}"
    await repository.register_tenant(tenant)
    for n in range(deals):
        await repository.create_opportunity(tenant, OpportunityCreate(name=f"Deal {n}", estimated_value=Decimal(n)))
    engine = SyncEngine(
        PostgresAdapter(repository, tenant), adapter(connector, base_url, database_id), DEFAULT_FIELD_OWNERSHIP
    )
    try:
        assert (await engine.run_pass()).created == deals
        await engine.run_pass()  # settles the trash and reconciliation watermarks
    finally:
        await engine.close()
    return tenant


async def forget_discovery(database: Database, tenant: str) -> None:
    """What a pass knew before discovery was kept: nothing (as the tables' owner)."""
    async with database.owner_transaction() as connection:
        await connection.execute(text("DELETE FROM crm.sync_connections WHERE tenant_id = :t"), {"t": tenant})


def measure_passes(
    settings: Settings, control: ControlClient, arguments: list[str], passes: int, before: Callable[[], None]
) -> int:
    """The most requests any of ``passes`` fresh-process passes sent."""
    counts = []
    for _ in range(passes):
        before()
        control.reset_stats()
        command = [sys.executable, __file__, "--one-pass", "--database-name", settings.database_name, *arguments]
        subprocess.run(command, check=True)
        counts.append(int(control.stats()["total"]))
    return max(counts)


def measure_connector(
    settings: Settings, control: ControlClient, connector: str, base_url: str, database_id: str, deals: int, passes: int
) -> None:
    async def set_up() -> str:
        async with await Database.open(settings) as database:
            return await synced_tenant(database, connector, base_url, database_id, deals)

    tenant = asyncio.run(set_up())

    def forget() -> None:
        async def run() -> None:
            async with await Database.open(settings) as database:
                await forget_discovery(database, tenant)

        asyncio.run(run())

    arguments = ["--tenant", tenant, "--connector", connector, "--base-url", base_url, "--database-id", database_id]
    kept = measure_passes(settings, control, arguments, passes, lambda: None)
    cleared = measure_passes(settings, control, arguments, passes, forget)
    emit(BENCH, f"{connector}_requests_per_quiet_pass_discovery_cleared", cleared, "count")
    emit(BENCH, f"{connector}_requests_per_quiet_pass_discovery_kept", kept, "count", GOALS[connector])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deals", type=int, default=20)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--one-pass", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--database-name", help=argparse.SUPPRESS)
    parser.add_argument("--tenant", help=argparse.SUPPRESS)
    parser.add_argument("--connector", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--database-id", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_pass:
        settings = Settings(database_name=args.database_name)
        asyncio.run(one_pass(settings, args.tenant, args.connector, args.base_url, args.database_id))
        return
    settings = Settings(database_name=f"crm_pipeline_bench_{os.getpid()}")
    unlimited = HubSpotSandboxConfig(ten_secondly_limit=0, daily_limit=0, search_per_second=0)
    with (
        sandbox_process("--rate-limit", "0") as notion_url,
        SandboxControl(notion_url) as notion_control,
        serve_hubspot_in_thread(unlimited) as hubspot,
        HubSpotControl(hubspot.base_url) as hubspot_control,
    ):
        try:
            [deals_db] = notion_control.seed(
                {"databases": [{"title": "Deals", "properties": notion_properties_schema(SYNCED_PROPERTY_MAP)}]}
            )
            measure_connector(
                settings, notion_control, "notion", notion_url, deals_db["database_id"], args.deals, args.passes
            )
            measure_connector(settings, hubspot_control, "hubspot", hubspot.base_url, "", args.deals, args.passes)
        finally:
            asyncio.run(drop_database(settings))


if __name__ == "__main__":
    main()
