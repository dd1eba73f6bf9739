"""SalesforceAdapter benchmark against the local Salesforce with an Enterprise org's allowance
(100,000 requests a day), through the real ``simple-salesforce`` client.

- Push: 1,000 deals are created (warm-up: set-up and the deals), then pushed changed, once with
  every synced field (as the sync's writes are) and once with one field each. Each 200 records
  cost two requests: the keys' lookup (queryAll: new or existing, or in the Recycle Bin) and one
  collections upsert. Beside it, the read of those 1,000 changed deals (a change query of up to
  2,000 rows, then their field history, 200 records a query).
- Quiet pass: ``SyncEngine`` over the deal store (the embedded PostgreSQL) and Salesforce, each pass
  with a new engine and adapter, discovery kept in the deal store (as a new process has it), after
  two passes synced ``--quiet-deals`` deals. A quiet pass asks the change query, and the field
  history of the records it finds within the overlap before its cursor, where the last records
  written always are (the overlap catches a row committed after a newer one was read); the trash
  and reconciliation reads come every five minutes. Then a pass with one deal changed: the same
  two reads, the set-up asked again before writing (a discovery reused from the store is checked
  before the first write: describe, stages, integration user), the update, and the record read
  back as written (one query). Last, the quiet passes of a tenant whose ``--deals`` deals were
  just written: while Salesforce's clock is within the overlap (5 minutes) of them, each pass reads
  them again with their field history (one query per 200: a row may still become visible late with
  such a stamp); once a pass has read an overlap past them, its cursor is Salesforce's time of that
  read, and quiet passes are back to the change query alone. Then every one of those deals is
  renamed in the deal store, and a pass pushes them all: the one-deal pass's reads, then per 200
  deals one collections update and one query reading them back as written.
- Allowance: an org with a small allowance (``SMALL_ALLOWANCE``) already near the floor the adapter
  leaves to the org's people (10%). A push of 2,000 deals slows within the band above the floor,
  then stops with ``AllowanceFloorError`` before Salesforce refuses anything; a later pass
  resumes (the upserts are keyed, so what was written is not written twice).

The local Salesforce runs in a background thread on the real clock; the deal store is the
embedded PostgreSQL, in a database of its own that is dropped afterwards.

Run: ``.venv/bin/python benchmarks/bench_salesforce_adapter.py [--deals 1000] [--quiet-deals 20]``.
Prints one JSON line per figure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from pathlib import Path
from uuid import UUID, uuid4

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_repository import drop_database  # noqa: E402
from report import emit  # noqa: E402

from crm_pipeline.crm import PostgresAdapter  # noqa: E402
from crm_pipeline.crm.salesforce import AllowanceFloorError, SalesforceAdapter  # noqa: E402
from crm_pipeline.crm.salesforce.api import MAX_COLLECTION  # noqa: E402
from crm_pipeline.crm.salesforce.setup import CHANGE_OVERLAP  # noqa: E402
from crm_pipeline.demo import salesforce_custom_fields  # noqa: E402
from crm_pipeline.models import OpportunityCreate, OpportunityUpdate, SyncResult  # noqa: E402
from crm_pipeline.salesforce_sandbox import (  # noqa: E402
    DEFAULT_TOKEN,
    INTEGRATION_USERNAME,
    SalesforceControl,
    SalesforceSandboxConfig,
    serve_salesforce_in_thread,
)
from crm_pipeline.settings import Settings  # noqa: E402
from crm_pipeline.store import Database, DealRepository  # noqa: E402
from crm_pipeline.sync import SyncEngine  # noqa: E402
from crm_pipeline.sync.ownership import DEFAULT_FIELD_OWNERSHIP  # noqa: E402

BENCH = "salesforce_adapter"
ENTERPRISE_DAILY = 100_000
SMALL_ALLOWANCE = 1_000
ABOVE_FLOOR = 12
"""Requests the small org has left above the adapter's floor when the allowance run starts."""
CLOSE = date(2026, 6, 30)
CUSTOM_FIELDS = salesforce_custom_fields()


def full(key: UUID, i: int, stage: str) -> OpportunityCreate:
    return OpportunityCreate(
        id=key,
        name=f"deal {i}",
        deal_stage=stage,
        estimated_value=Decimal(1000 + i),
        close_date=CLOSE,
        product_line="Platform",
        probability=Decimal("0.4"),
        source="Referral",
        manual_tags=["benchmark"],
    )


def adapter(base_url: str) -> SalesforceAdapter:
    return SalesforceAdapter(DEFAULT_TOKEN, instance_url=base_url, integration_username=INTEGRATION_USERNAME)


def requests_of(control: SalesforceControl) -> int:
    return int(control.stats()["total"])


async def push(base_url: str, control: SalesforceControl, deals: int) -> None:
    keys = [uuid4() for _ in range(deals)]
    sf = adapter(base_url)
    try:
        assert all(o.ok for o in await sf.upsert_opportunities([full(k, i, "Lead") for i, k in enumerate(keys)]))
        cursor = (await sf.read_changes(None)).cursor
        control.reset_stats()
        started = time.monotonic()
        changed = await sf.upsert_opportunities([full(k, i, "Qualified") for i, k in enumerate(keys)])
        elapsed, full_requests = time.monotonic() - started, requests_of(control)
        control.reset_stats()
        started = time.monotonic()
        renamed = await sf.upsert_opportunities(
            [OpportunityCreate(id=k, name=f"deal {i} v3") for i, k in enumerate(keys)]
        )
        partial_elapsed, partial_requests = time.monotonic() - started, requests_of(control)
        control.reset_stats()
        started = time.monotonic()
        read = await sf.read_changes(cursor)
        read_elapsed, read_requests = time.monotonic() - started, requests_of(control)
    finally:
        await sf.aclose()
    assert len(read.changes) >= deals, len(read.changes)
    batches = -(-deals // 200)
    emit(BENCH, "requests_full_records", full_requests, "count", "<= 12")
    emit(BENCH, "elapsed_full_records", round(elapsed, 2), "s", None)
    emit(BENCH, "requests_one_field", partial_requests, "count", f"<= {2 * batches}")
    emit(BENCH, "elapsed_one_field", round(partial_elapsed, 2), "s", None)
    emit(BENCH, "failed_writes", sum(not o.ok for o in changed + renamed), "count", "== 0")
    emit(BENCH, "requests_read_changed", read_requests, "count", f"<= {1 + batches}")
    emit(BENCH, "elapsed_read_changed", round(read_elapsed, 2), "s", None)


async def one_pass(database: Database, tenant: str, base_url: str) -> SyncResult:
    """A pass as a new process runs it: a new engine and adapter, what was discovered kept in the store."""
    engine = SyncEngine(PostgresAdapter(DealRepository(database), tenant), adapter(base_url), DEFAULT_FIELD_OWNERSHIP)
    try:
        return await engine.run_pass()
    finally:
        await engine.close()


async def synced_tenant(
    database: Database, base_url: str, control: SalesforceControl, deals: int
) -> tuple[str, list[UUID]]:
    """A tenant of ``deals`` deals synced to an org of its own (the org reset first: other tenants'
    records would carry keys this tenant has not); its id and its deals'."""
    control.reset()
    control.setup(custom_fields=CUSTOM_FIELDS)
    repository = DealRepository(database)
    tenant = f"bench-{uuid4().hex[:12]}"
    await repository.register_tenant(tenant)
    created = [
        await repository.create_opportunity(tenant, OpportunityCreate(name=f"Deal {n}", close_date=CLOSE))
        for n in range(deals)
    ]
    assert (await one_pass(database, tenant, base_url)).created == deals
    await one_pass(database, tenant, base_url)  # settles the trash and reconciliation watermarks
    return tenant, [deal.id for deal in created]


async def measured_pass(
    database: Database, tenant: str, base_url: str, control: SalesforceControl
) -> tuple[int, float]:
    """The requests and seconds of one pass that writes nothing."""
    control.reset_stats()
    started = time.monotonic()
    result = await one_pass(database, tenant, base_url)
    elapsed = time.monotonic() - started
    assert result.pushed == result.pulled == result.created == 0, result
    return requests_of(control), elapsed


async def pushing_pass(
    database: Database, tenant: str, base_url: str, control: SalesforceControl, deals: Sequence[UUID]
) -> tuple[int, float]:
    """The requests and seconds of a pass pushing a rename of every one of ``deals`` (linked)."""
    repository = DealRepository(database)
    for n, deal in enumerate(deals):
        await repository.update_opportunity(tenant, deal, OpportunityUpdate(name=f"Deal {n} renamed"))
    control.reset_stats()
    started = time.monotonic()
    result = await one_pass(database, tenant, base_url)
    elapsed = time.monotonic() - started
    assert (result.pushed, result.errors) == (len(deals), []), result
    return requests_of(control), elapsed


async def quiet_passes(settings: Settings, base_url: str, control: SalesforceControl, deals: int, burst: int) -> None:
    async with await Database.open(settings) as database:
        tenant, (first, *_) = await synced_tenant(database, base_url, control, deals)
        quiet, elapsed = await measured_pass(database, tenant, base_url, control)
        await DealRepository(database).update_opportunity(tenant, first, OpportunityUpdate(name="Deal 0 renamed"))
        control.reset_stats()
        changed = await one_pass(database, tenant, base_url)
        assert changed.pushed == 1, changed
        one_deal = requests_of(control)
        tenant, burst_deals = await synced_tenant(database, base_url, control, burst)
        after_burst, burst_elapsed = await measured_pass(database, tenant, base_url, control)
        control.advance_clock(CHANGE_OVERLAP.total_seconds() + 60)
        await measured_pass(database, tenant, base_url, control)  # its read ran an overlap past the burst
        settled, settled_elapsed = await measured_pass(database, tenant, base_url, control)
        pushed, pushed_elapsed = await pushing_pass(database, tenant, base_url, control, burst_deals)
    emit(BENCH, "requests_quiet_pass", quiet, "count", "<= 2")
    emit(BENCH, "elapsed_quiet_pass", round(elapsed, 2), "s", None)
    emit(BENCH, "requests_one_deal_pass", one_deal, "count", None)
    # the one-deal pass's requests less its update and read-back, then both per 200 deals
    batches = -(-burst // MAX_COLLECTION)
    emit(BENCH, f"requests_pass_pushing_{burst}_deals", pushed, "count", f"<= {one_deal - 2 + 2 * batches}")
    emit(BENCH, f"elapsed_pass_pushing_{burst}_deals", round(pushed_elapsed, 2), "s", None)
    emit(BENCH, f"requests_quiet_pass_{burst}_just_written", after_burst, "count", f"<= {1 + -(-burst // 200)}")
    emit(BENCH, f"elapsed_quiet_pass_{burst}_just_written", round(burst_elapsed, 2), "s", None)
    emit(BENCH, f"requests_quiet_pass_{burst}_written_an_overlap_ago", settled, "count", "<= 2")
    emit(BENCH, f"elapsed_quiet_pass_{burst}_written_an_overlap_ago", round(settled_elapsed, 2), "s", None)


async def near_the_floor(base_url: str, control: SalesforceControl, deals: int) -> None:
    """A push that would run through the floor of a small allowance."""
    floor = SMALL_ALLOWANCE // 10
    control.configure(daily_api_max=SMALL_ALLOWANCE, used=SMALL_ALLOWANCE - floor - ABOVE_FLOOR)
    control.reset_stats()
    sf = adapter(base_url)
    started, stopped = time.monotonic(), 0
    try:
        await sf.upsert_opportunities([full(uuid4(), i, "Lead") for i in range(deals)])
    except AllowanceFloorError:
        stopped = 1
    finally:
        await sf.aclose()
    elapsed, stats = time.monotonic() - started, control.stats()
    written = len(control.all_records("Opportunity"))
    emit(BENCH, "allowance_refused_requests", stats["by_status"].get("403", 0), "count", "== 0")
    emit(BENCH, "allowance_requests_sent", stats["total"], "count", f"<= {ABOVE_FLOOR}")
    emit(BENCH, "allowance_stopped_at_floor", stopped, "count", "== 1")
    emit(BENCH, "allowance_deals_written_before_stop", written, "count", None)
    emit(BENCH, "allowance_elapsed_slowed", round(elapsed, 2), "s", None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deals", type=int, default=1000)
    parser.add_argument("--quiet-deals", type=int, default=20)
    args = parser.parse_args()
    settings = Settings(database_name=f"crm_pipeline_bench_{os.getpid()}")
    config = SalesforceSandboxConfig(daily_api_max=ENTERPRISE_DAILY)
    with serve_salesforce_in_thread(config) as running, SalesforceControl(running.base_url) as control:
        control.setup(custom_fields=CUSTOM_FIELDS)
        asyncio.run(push(running.base_url, control, args.deals))
        try:
            asyncio.run(quiet_passes(settings, running.base_url, control, args.quiet_deals, args.deals))
        finally:
            asyncio.run(drop_database(settings))
        control.reset()
        control.setup(custom_fields=CUSTOM_FIELDS)
        asyncio.run(near_the_floor(running.base_url, control, 2 * args.deals))


if __name__ == "__main__":
    main()
