"""One tenant with ``--deals`` deals (default 100,000): its first load into Notion, then a quiet
pass and a one-deal pass at Notion's 3 requests/s, each sync pass a process of its own.

- First load: the agent's deals are written into the deal store in one bulk upsert (not timed),
  then sync passes, each a fresh process (``python bench_large_tenant.py --one-pass …``, a new
  interpreter, adapter and engine, as every Dagster run and ``crm-pipeline sync`` is) with the
  default time budget (48 s of a one-minute schedule), create the pages until every deal is
  linked. The sandbox Notion and the client are unthrottled. Figures: deals linked per second of
  the passes' wall time (process starts included), the passes it took, and the largest peak RSS
  any pass's process reported (its own, see ``peak_rss_mb``).
- Settling (not measured): an unthrottled load leaves thousands of pages in the last two minutes
  before its final edit, which every later pass's change read re-reads (Notion dates edits by the
  minute; see docs/architecture.md, "Speed") until a newer edit moves the watermark. At Notion's
  real 3 requests/s a load leaves at most a few hundred there. So the sandbox's clock moves ten
  minutes on, the agent changes one deal, and two unthrottled passes push it and read it back.
  They also run the reconciliation slice and the trash read when due (every five minutes: 50 page
  reads and one query, at any tenant size), so the passes measured next are plain ones.
- Then, with the sandbox limiting at 3 requests/s and the client at its default pacing: a pass with
  nothing changed, and a pass after the agent changed one deal. Each figure's seconds are the
  child's own, from opening the deal store to closing it after the pass (the interpreter's start and
  imports left out); its requests are the sandbox's count; its memory the child's peak RSS (most
  of it the interpreter and its imports).
- Beside them, the same quiet and one-deal passes of a tenant of ``--small-deals`` (1,000), measured
  first the same way, and the large tenant's over the small one's: what the tenant's size adds.

The deal store is the embedded PostgreSQL, in a database of its own that is dropped afterwards;
the sandbox runs as a process of its own. Run: ``.venv/bin/python benchmarks/bench_large_tenant.py
[--deals 100000]`` (100,000 deals took 40 minutes on a quiet 2-core machine, most of it the
first load, which slows as the sandbox's pages grow: every create invalidates its query caches, so
each key lookup rebuilds its columns). Prints one JSON line per figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_repository import drop_database, make_records  # noqa: E402
from report import emit  # noqa: E402
from sandbox_process import sandbox_process  # noqa: E402

from crm_pipeline.crm import NotionAdapter, PostgresAdapter  # noqa: E402
from crm_pipeline.crm.notion import RateLimit  # noqa: E402
from crm_pipeline.crm.notion.properties import SYNCED_PROPERTY_MAP, notion_properties_schema  # noqa: E402
from crm_pipeline.models import Actor, OpportunityUpdate  # noqa: E402
from crm_pipeline.sandbox import DEFAULT_TOKEN, SandboxControl  # noqa: E402
from crm_pipeline.settings import Settings  # noqa: E402
from crm_pipeline.store import Database, DealRepository  # noqa: E402
from crm_pipeline.sync import SyncEngine  # noqa: E402
from crm_pipeline.sync.ownership import DEFAULT_FIELD_OWNERSHIP  # noqa: E402

BENCH = "large_tenant"
AUTO_NUMBER = {"Deal ID": {"unique_id": {"prefix": "DEAL"}}}
"""An auto-numbered column, as the demo's Deals database has: an unthrottled load creates more pages
within one minute than a query returns (10,000), and the change read pages through such a minute
by it (without one it stops with a ``QueryWindowError``)."""
RATE = 3.0
UNTHROTTLED = RateLimit(requests_per_second=10_000, burst=100, max_in_flight=8)


async def one_pass(settings: Settings, tenant: str, base_url: str, database_id: str, unthrottled: bool) -> None:
    """A pass as a new process runs it; prints what it did, its seconds and its peak RSS (MB)."""
    started = time.monotonic()
    async with await Database.open(settings) as database:
        notion = NotionAdapter(
            DEFAULT_TOKEN,
            database_id,
            base_url=base_url,
            property_map=SYNCED_PROPERTY_MAP,
            rate_limit=UNTHROTTLED if unthrottled else RateLimit(),
        )
        engine = SyncEngine(PostgresAdapter(DealRepository(database), tenant), notion, DEFAULT_FIELD_OWNERSHIP)
        try:
            result = await engine.run_pass()
        finally:
            await engine.close()
    report = {"seconds": time.monotonic() - started, "peak_mb": peak_rss_mb(), **result.model_dump(exclude={"errors"})}
    print(json.dumps({**report, "errors": len(result.errors)}))


def peak_rss_mb() -> float:
    """This process's peak RSS since it started (Linux's VmHWM). Not ``ru_maxrss``: Linux carries it
    over ``exec`` from the process that forked this one, so a child started by a benchmark holding
    400 MB reports 400 MB however little it uses."""
    status = Path("/proc/self/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) / 1024


def run_pass(settings: Settings, tenant: str, base_url: str, database_id: str, *, unthrottled: bool) -> dict[str, Any]:
    command = [sys.executable, __file__, "--one-pass", "--database-name", settings.database_name]
    command += ["--tenant", tenant, "--base-url", base_url, "--database-id", database_id]
    command += ["--unthrottled"] if unthrottled else []
    output = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout
    report: dict[str, Any] = json.loads(output.splitlines()[-1])
    assert report["errors"] == 0, report
    return report


async def seed_deals(settings: Settings, deals: int) -> tuple[str, list[UUID]]:
    """A tenant holding ``deals`` of the agent's deals, written in one bulk upsert."""
    async with await Database.open(settings) as database:
        repository = DealRepository(database)
        tenant = f"bench-{uuid4().hex[:12]}"
        await repository.register_tenant(tenant)
        records = make_records(deals)
        await repository.bulk_upsert_opportunities(tenant, records, actor=Actor.AGENT)
    return tenant, [record.id for record in records if record.id is not None]


async def change_deal(settings: Settings, tenant: str, deal: UUID, value: int) -> None:
    async with await Database.open(settings) as database:
        await DealRepository(database).update_opportunity(
            tenant, deal, OpportunityUpdate(estimated_value=Decimal(value))
        )


@dataclass
class Passes:
    """One tenant's passes: its first load's, then the quiet one's and the one-deal one's (with
    the requests the sandbox counted for each)."""

    load: list[dict[str, Any]]
    load_seconds: float
    idle: dict[str, Any]
    idle_requests: int
    one: dict[str, Any]
    one_requests: int


def passes_of(settings: Settings, base_url: str, control: SandboxControl, deals: int) -> Passes:
    """A new tenant of ``deals`` deals with a Notion database of its own: its load, settling and
    measured passes (see the module docstring)."""
    unthrottled = control.settings()
    properties = {**notion_properties_schema(SYNCED_PROPERTY_MAP), **AUTO_NUMBER}
    [notion_db] = control.seed({"databases": [{"title": "Deals", "properties": properties}]})
    tenant, deal_ids = asyncio.run(seed_deals(settings, deals))

    def sync(*, unthrottled: bool) -> dict[str, Any]:
        return run_pass(settings, tenant, base_url, notion_db["database_id"], unthrottled=unthrottled)

    started = time.monotonic()
    load = [sync(unthrottled=True)]
    while sum(report["created"] for report in load) < deals:
        assert load[-1]["created"] or load[-1]["deferred"], load[-1]
        load.append(sync(unthrottled=True))
    load_seconds = time.monotonic() - started

    control.advance_clock(600)
    asyncio.run(change_deal(settings, tenant, deal_ids[0], 1))
    assert sync(unthrottled=True)["pushed"] == 1
    sync(unthrottled=True)

    control.configure(rate_limit=RATE, burst=1)
    control.reset_stats()
    idle = sync(unthrottled=False)
    assert idle["pushed"] == idle["pulled"] == idle["created"] == 0, idle
    idle_requests = control.stats()["total"]
    asyncio.run(change_deal(settings, tenant, deal_ids[1], 2))
    control.reset_stats()
    one = sync(unthrottled=False)
    assert one["pushed"] == 1 and one["pulled"] == one["created"] == 0, one
    one_requests = control.stats()["total"]
    control.configure(rate_limit=unthrottled["rate_limit"], burst=unthrottled["burst"])
    # Moved on, the clock stays where it was put: back to real time, or the next tenant's load
    # would date every page in one minute, which every pass's change read then reads again.
    control.real_clock()
    return Passes(load, load_seconds, idle, idle_requests, one, one_requests)


def measure(settings: Settings, base_url: str, control: SandboxControl, deals: int, small_deals: int) -> None:
    small = passes_of(settings, base_url, control, small_deals)
    large = passes_of(settings, base_url, control, deals)
    emit(BENCH, "first_load_deals", deals, "count")
    emit(BENCH, "first_load_deals_per_second", round(deals / large.load_seconds, 1), "deals/s")
    emit(BENCH, "first_load_peak_memory_mb", round(max(report["peak_mb"] for report in large.load)), "MB")
    emit(BENCH, "first_load_passes", len(large.load), "count")
    emit(BENCH, "idle_pass_seconds", round(large.idle["seconds"], 2), "s", "<= 2")
    emit(BENCH, "idle_pass_requests", large.idle_requests, "count")
    emit(BENCH, "idle_pass_peak_memory_mb", round(large.idle["peak_mb"]), "MB", "<= 300")
    emit(BENCH, "one_deal_pass_seconds", round(large.one["seconds"], 2), "s")
    emit(BENCH, "one_deal_pass_requests", large.one_requests, "count")
    emit(BENCH, "one_deal_pass_peak_memory_mb", round(large.one["peak_mb"]), "MB")
    # The same passes of a small tenant, beside them: what the tenant's size adds.
    for name, passed in (("idle_pass", small.idle), ("one_deal_pass", small.one)):
        peer = large.idle if name == "idle_pass" else large.one
        emit(BENCH, f"{name}_seconds_at_{small_deals}_deals", round(passed["seconds"], 2), "s")
        emit(BENCH, f"{name}_seconds_over_{small_deals}_deals", round(peer["seconds"] / passed["seconds"], 2), "x")
        emit(BENCH, f"{name}_peak_memory_mb_at_{small_deals}_deals", round(passed["peak_mb"]), "MB")
        emit(BENCH, f"{name}_peak_memory_over_{small_deals}_deals", round(peer["peak_mb"] / passed["peak_mb"], 2), "x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deals", type=int, default=100_000)
    parser.add_argument("--small-deals", type=int, default=1_000, help="the tenant measured beside it")
    parser.add_argument("--one-pass", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--database-name", help=argparse.SUPPRESS)
    parser.add_argument("--tenant", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--database-id", help=argparse.SUPPRESS)
    parser.add_argument("--unthrottled", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_pass:
        settings = Settings(database_name=args.database_name)
        asyncio.run(one_pass(settings, args.tenant, args.base_url, args.database_id, args.unthrottled))
        return
    settings = Settings(database_name=f"crm_pipeline_bench_{os.getpid()}")
    with sandbox_process("--rate-limit", "0") as base_url, SandboxControl(base_url) as control:
        try:
            measure(settings, base_url, control, args.deals, args.small_deals)
        finally:
            asyncio.run(drop_database(settings))


if __name__ == "__main__":
    main()
