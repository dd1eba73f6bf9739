"""SyncEngine benchmark, P1–P3, on the real deal store and the sandbox Notion limiting at 3 requests/s.

Set-up (unthrottled): ``--deals`` deals are created in the deal store and synced, so each has its
page, then a warm-up pass settles every watermark. Then:

- P1: the agent changes every deal; one pass pushes the backlog. Useful page writes per second
  against the 3 requests/s budget (goal ≥ 0.95), failed records (goal 0).
- P2: a pass with nothing changed, on a tenant of its own (40 deals): Notion requests (goal ≤ 1)
  and writes (goal 0). The same figure right after P1's push is reported beside it: the inbound
  read re-reads the pages edited in the two minutes before the last edit (Notion's minute
  rounding), 100 per request, until newer edits move the watermark on.
- P3: the pass after the push: inbound changes applied (goal 0) and writes sent (goal 0): the
  push's echo is recognised by value.
- Initial load: ``--load-deals`` deals never synced, against the sandbox limiting at
  ``LOAD_RATE`` requests/s, by passes of an ``LOAD_INTERVAL``-second schedule (budget 80% of it)
  until none is left: the passes it took, deals created twice (goal 0), and the longest pass's
  overrun past its budget (goal: within the rest of the interval, so no pass runs into the next).
  At Notion's 3 requests/s, 100,000 deals drain the same way in about nine hours of passes.

The sandbox runs as a process of its own (``crm-pipeline sandbox``); the deal store is the embedded
PostgreSQL, in a database of its own that is dropped afterwards.

Run: ``.venv/bin/python benchmarks/bench_sync.py [--deals 1000] [--load-deals 5000]`` (1,000 deals
take about six minutes: the budget is the point; the load about two more). Prints one JSON line
per figure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any
from uuid import uuid4

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_repository import drop_database  # noqa: E402
from report import emit  # noqa: E402
from sandbox_process import sandbox_process  # noqa: E402

from crm_pipeline.crm import NotionAdapter, PostgresAdapter  # noqa: E402
from crm_pipeline.crm.notion import RateLimit  # noqa: E402
from crm_pipeline.crm.notion.properties import SYNCED_PROPERTY_MAP, notion_properties_schema  # noqa: E402
from crm_pipeline.models import OpportunityCreate, OpportunityRead, OpportunityUpdate  # noqa: E402
from crm_pipeline.sandbox import DEFAULT_TOKEN, SandboxControl  # noqa: E402
from crm_pipeline.settings import Settings  # noqa: E402
from crm_pipeline.store import Database, DealRepository  # noqa: E402
from crm_pipeline.sync import SyncEngine  # noqa: E402
from crm_pipeline.sync.ownership import DEFAULT_FIELD_OWNERSHIP  # noqa: E402

BENCH = "sync"
RATE = 3.0
UNTHROTTLED = 1000.0
QUIET_DEALS = 40
LOAD_RATE = 100.0
LOAD_INTERVAL = 10


def page_writes(stats: dict[str, Any]) -> tuple[int, int]:
    """(successful, all) page writes in the sandbox's statistics."""
    routes = stats["by_route"]
    writes = [routes.get(route, {}) for route in ("POST /v1/pages", "PATCH /v1/pages/{page_id}")]
    return sum(by.get("200", 0) for by in writes), sum(sum(by.values()) for by in writes)


def engine(
    repository: DealRepository,
    tenant: str,
    base_url: str,
    database_id: str,
    rate: float,
    *,
    interval: int = 60,
    budget: float | None = 3600,
) -> SyncEngine:
    notion = NotionAdapter(
        DEFAULT_TOKEN,
        database_id,
        base_url=base_url,
        property_map=SYNCED_PROPERTY_MAP,
        rate_limit=RateLimit(requests_per_second=rate, burst=1, max_in_flight=3),
    )
    primary = PostgresAdapter(repository, tenant)
    return SyncEngine(primary, notion, DEFAULT_FIELD_OWNERSHIP, interval, time_budget_seconds=budget)


async def synced_tenant(
    repository: DealRepository, base_url: str, control: SandboxControl, deals: int
) -> tuple[str, str, list[OpportunityRead]]:
    """A tenant with ``deals`` deals synced to a database of its own, unthrottled; its id, the
    database's id and the deals."""
    [notion_db] = control.seed(
        {"databases": [{"title": "Deals", "properties": notion_properties_schema(SYNCED_PROPERTY_MAP)}]}
    )
    tenant = f"bench-{uuid4().hex[:12]}"
    await repository.register_tenant(tenant)
    records = [OpportunityCreate(name=f"Deal {n}", estimated_value=n) for n in range(deals)]
    created = [await repository.create_opportunity(tenant, record) for record in records]
    control.configure(rate_limit=UNTHROTTLED, burst=100)
    setup = engine(repository, tenant, base_url, notion_db["database_id"], UNTHROTTLED)
    assert (await setup.run_pass()).created == deals
    await setup.run_pass()  # settles the trash and reconciliation watermarks
    await setup.close()
    control.configure(rate_limit=RATE, burst=1)
    return tenant, notion_db["database_id"], created


async def initial_load(repository: DealRepository, base_url: str, control: SandboxControl, deals: int) -> None:
    """``deals`` deals never synced, drained by passes of a ``LOAD_INTERVAL``-second schedule."""
    [notion_db] = control.seed(
        {"databases": [{"title": "Deals", "properties": notion_properties_schema(SYNCED_PROPERTY_MAP)}]}
    )
    tenant = f"bench-{uuid4().hex[:12]}"
    await repository.register_tenant(tenant)
    for n in range(deals):
        await repository.create_opportunity(tenant, OpportunityCreate(name=f"Deal {n}", estimated_value=n))
    control.configure(rate_limit=LOAD_RATE, burst=10)
    loader = engine(
        repository, tenant, base_url, notion_db["database_id"], LOAD_RATE, interval=LOAD_INTERVAL, budget=None
    )
    overruns, created, passes = [], 0, 0
    while created < deals and passes < 10 * deals:
        started = time.monotonic()
        result = await loader.run_pass()
        overruns.append(time.monotonic() - started - loader.time_budget_seconds)
        created += result.created
        passes += 1
    pages = control.all_pages(notion_db["data_source_id"])
    keys = ["".join(t["plain_text"] for t in page["properties"]["Sync Key"]["rich_text"]) for page in pages]
    await loader.close()
    emit(BENCH, "load_deals", deals, "count")
    emit(BENCH, "load_passes", passes, "count")
    emit(BENCH, "load_deals_left", deals - created, "count", "== 0")
    emit(BENCH, "load_pages_created_twice", len(keys) - len(set(keys)), "count", "== 0")
    rest = LOAD_INTERVAL - loader.time_budget_seconds
    emit(BENCH, "load_max_pass_overrun_past_budget", round(max(overruns), 2), "s", f"<= {rest:g}")


async def measure(settings: Settings, base_url: str, control: SandboxControl, deals: int, load_deals: int) -> None:
    async with await Database.open(settings) as database:
        repository = DealRepository(database)
        tenant, database_id, created = await synced_tenant(repository, base_url, control, deals)
        timed = engine(repository, tenant, base_url, database_id, RATE)
        for deal in created:
            await repository.update_opportunity(tenant, deal.id, OpportunityUpdate(deal_stage="Qualified"))
        control.reset_stats()
        started = time.monotonic()
        pushed = await timed.run_pass()
        elapsed = time.monotonic() - started
        useful, _ = page_writes(control.stats())
        emit(BENCH, "p1_backlog_deals", deals, "count")
        emit(BENCH, "p1_elapsed", round(elapsed, 2), "s")
        emit(BENCH, "p1_useful_writes_per_s_over_budget", round(useful / elapsed / RATE, 3), "ratio", ">= 0.95")
        emit(BENCH, "p1_failed_records", len(pushed.errors), "count", "== 0")

        control.reset_stats()
        echo = await timed.run_pass()
        emit(BENCH, "p3_inbound_applied_after_push", echo.pulled, "count", "== 0")
        emit(BENCH, "p3_writes_after_push", page_writes(control.stats())[1], "count", "== 0")
        control.reset_stats()
        await timed.run_pass()
        emit(BENCH, "p2_requests_pass_right_after_the_push", control.stats()["total"], "count")
        await timed.close()

        quiet_tenant, quiet_database, _ = await synced_tenant(repository, base_url, control, QUIET_DEALS)
        quiet = engine(repository, quiet_tenant, base_url, quiet_database, RATE)
        await quiet.run_pass()  # the adapter's one-time set-up (database, schema, bot user)
        control.reset_stats()
        await quiet.run_pass()
        stats = control.stats()
        emit(BENCH, "p2_requests_quiet_pass", stats["total"], "count", "<= 1")
        emit(BENCH, "p2_writes_quiet_pass", page_writes(stats)[1], "count", "== 0")
        await quiet.close()

        if load_deals:
            await initial_load(repository, base_url, control, load_deals)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deals", type=int, default=1000)
    parser.add_argument("--load-deals", type=int, default=5000, help="the initial load's size (0: skip it)")
    args = parser.parse_args()
    settings = Settings(database_name=f"crm_pipeline_bench_{os.getpid()}")
    with sandbox_process("--rate-limit", str(RATE)) as base_url, SandboxControl(base_url) as control:
        try:
            asyncio.run(measure(settings, base_url, control, args.deals, args.load_deals))
        finally:
            asyncio.run(drop_database(settings))


if __name__ == "__main__":
    main()
