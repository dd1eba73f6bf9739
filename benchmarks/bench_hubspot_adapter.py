"""HubSpotAdapter push benchmark: 1,000 changed deals to the local HubSpot under HubSpot's real
limits (100 requests per ten seconds per app, 5 searches a second).

The local HubSpot runs in a background thread with its default (real) limits and clock. The
adapter first creates the 1,000 deals (warm-up: schema, pipeline, the deals themselves), then the
timed parts push the same 1,000 deals changed: once carrying every synced field (as the sync's
writes do: one batch upsert per 100), once carrying one field each (their keys are read first: two
requests per 100). Notion's figure beside it is the same backlog at one request per deal under
its 3 requests/s (``bench_notion_adapter.py`` measures the pacing itself).

Then an engine pass: ``SyncEngine`` over the deal store (the embedded PostgreSQL, a database of its
own, dropped afterwards) and HubSpot, each pass with a new engine and adapter (discovery kept in the
store, as a new process has it). A tenant's 1,000 deals are synced (the clock then moved an overlap
past their writes: a stopped clock, so the local HubSpot's limits are lifted from then on, the
adapter still pacing itself). A pass that writes nothing is measured: its change search still finds
the 1,000 deals, since the cursor is the newest modification the search saw and they are the newest,
and reads them again (5 search pages, 20 reads with history). Then every deal is renamed in the
deal store and one pass pushes them all: the same reads, the schema checked before the first write,
then per 100 deals one batch update and one batch read of them as written.

Run: ``.venv/bin/python benchmarks/bench_hubspot_adapter.py [--deals 1000]``. Prints one JSON
line per figure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from decimal import Decimal
from pathlib import Path
from uuid import UUID, uuid4

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_repository import drop_database  # noqa: E402
from report import emit  # noqa: E402

from crm_pipeline.crm import PostgresAdapter  # noqa: E402
from crm_pipeline.crm.hubspot import HubSpotAdapter  # noqa: E402
from crm_pipeline.crm.hubspot.api import MAX_BATCH  # noqa: E402
from crm_pipeline.hubspot_sandbox import DEFAULT_TOKEN, HubSpotControl, serve_hubspot_in_thread  # noqa: E402
from crm_pipeline.models import OpportunityCreate, OpportunityUpdate, SyncResult  # noqa: E402
from crm_pipeline.settings import Settings  # noqa: E402
from crm_pipeline.store import Database, DealRepository  # noqa: E402
from crm_pipeline.sync import SyncEngine  # noqa: E402
from crm_pipeline.sync.ownership import DEFAULT_FIELD_OWNERSHIP  # noqa: E402

BENCH = "hubspot_adapter"
NOTION_RATE = 3.0
OVERLAP_S = 60
"""The adapter's default overlap of change reads."""
SCHEMA_CHECK = 2
"""Requests a pass that writes asks before its first write: the schema reused from the deal store
checked again (pipelines, properties)."""


def full(key: object, i: int, stage: str) -> OpportunityCreate:
    return OpportunityCreate(
        id=key,
        name=f"deal {i}",
        deal_stage=stage,
        estimated_value=Decimal(1000 + i),
        close_date=None,
        product_line="Platform",
        probability=Decimal("0.4"),
        source="Referral",
        contact_name=None,
        contact_email=None,
        custom_notes=None,
        override_stage=None,
        manual_tags=["benchmark"],
    )


async def run(base_url: str, control: HubSpotControl, deals: int) -> None:
    keys = [uuid4() for _ in range(deals)]
    adapter = HubSpotAdapter(DEFAULT_TOKEN, base_url=base_url)
    try:
        assert all(o.ok for o in await adapter.upsert_opportunities([full(k, i, "Lead") for i, k in enumerate(keys)]))
        control.reset_stats()
        started = time.monotonic()
        changed = await adapter.upsert_opportunities([full(k, i, "Qualified") for i, k in enumerate(keys)])
        elapsed = time.monotonic() - started
        full_stats = control.stats()
        control.reset_stats()
        started = time.monotonic()
        renamed = await adapter.upsert_opportunities(
            [OpportunityCreate(id=k, name=f"deal {i} v3") for i, k in enumerate(keys)]
        )
        partial_elapsed = time.monotonic() - started
        partial_stats = control.stats()
    finally:
        await adapter.aclose()
    emit(BENCH, "requests_full_records", full_stats["total"], "count", f"<= {-(-deals // 100) + 2}")
    emit(BENCH, "elapsed_full_records", round(elapsed, 2), "s", None)
    emit(BENCH, "requests_one_field", partial_stats["total"], "count", f"<= {2 * -(-deals // 100)}")
    emit(BENCH, "elapsed_one_field", round(partial_elapsed, 2), "s", None)
    emit(BENCH, "failed_writes", sum(not o.ok for o in changed + renamed), "count", "== 0")
    emit(BENCH, "rate_limited_responses", full_stats["by_status"].get("429", 0), "count", "== 0")
    emit(BENCH, "notion_requests_same_backlog", deals, "count", None)
    emit(BENCH, "notion_budget_same_backlog", round(deals / NOTION_RATE, 1), "s", None)


async def one_pass(database: Database, tenant: str, base_url: str) -> SyncResult:
    """A pass as a new process runs it: a new engine and adapter, what was discovered kept in the store."""
    external = HubSpotAdapter(DEFAULT_TOKEN, base_url=base_url)
    engine = SyncEngine(PostgresAdapter(DealRepository(database), tenant), external, DEFAULT_FIELD_OWNERSHIP)
    try:
        return await engine.run_pass()
    finally:
        await engine.close()


async def pushing_pass(settings: Settings, base_url: str, control: HubSpotControl, deals: int) -> None:
    control.reset()  # the push's deals carry keys this tenant has not
    async with await Database.open(settings) as database:
        repository = DealRepository(database)
        tenant = f"bench-{uuid4().hex[:12]}"
        await repository.register_tenant(tenant)
        created: list[UUID] = [
            (await repository.create_opportunity(tenant, OpportunityCreate(name=f"Deal {n}"))).id for n in range(deals)
        ]
        assert (await one_pass(database, tenant, base_url)).created == deals
        control.advance_clock(OVERLAP_S + 60)  # stops the clock, so its rate windows would never empty
        control.configure(ten_secondly_limit=0, search_per_second=0)
        await one_pass(database, tenant, base_url)  # reads its own writes back, an overlap past them
        control.reset_stats()
        assert (await one_pass(database, tenant, base_url)).pushed == 0
        quiet = control.stats()["total"]
        for n, deal in enumerate(created):
            await repository.update_opportunity(tenant, deal, OpportunityUpdate(name=f"Deal {n} renamed"))
        control.reset_stats()
        started = time.monotonic()
        result = await one_pass(database, tenant, base_url)
        elapsed = time.monotonic() - started
        assert (result.pushed, result.errors) == (deals, []), result
        stats = control.stats()
    batches = -(-deals // MAX_BATCH)
    emit(BENCH, f"requests_quiet_pass_{deals}_written", quiet, "count", None)
    goal = f"<= {quiet + SCHEMA_CHECK + 2 * batches}"  # the same reads, the schema check, 2 per 100 deals
    emit(BENCH, f"requests_pass_pushing_{deals}_deals", stats["total"], "count", goal)
    emit(BENCH, f"elapsed_pass_pushing_{deals}_deals", round(elapsed, 2), "s", None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deals", type=int, default=1000)
    args = parser.parse_args()
    settings = Settings(database_name=f"crm_pipeline_bench_{os.getpid()}")
    with serve_hubspot_in_thread() as running, HubSpotControl(running.base_url) as control:
        asyncio.run(run(running.base_url, control, args.deals))
        try:
            asyncio.run(pushing_pass(settings, running.base_url, control, args.deals))
        finally:
            asyncio.run(drop_database(settings))


if __name__ == "__main__":
    main()
