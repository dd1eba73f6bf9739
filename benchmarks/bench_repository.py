"""Deal-store benchmark: bulk upsert of 100,000 opportunities and changes_since over them, side by
side with row-by-row creates of a sample, on the same PostgreSQL in the same run.

    .venv/bin/python benchmarks/bench_repository.py [--rows 100000] [--sample 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from uuid import uuid4

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import emit  # noqa: E402

from crm_pipeline.models import DEAL_STAGES, OpportunityCreate  # noqa: E402
from crm_pipeline.settings import Settings  # noqa: E402
from crm_pipeline.store import Database, DealRepository  # noqa: E402

BENCH = "repository"
CHANGE_PAGE = 10_000


def make_records(count: int) -> list[OpportunityCreate]:
    return [
        OpportunityCreate(
            id=uuid4(),
            name=f"Deal {n}",
            deal_stage=DEAL_STAGES[n % len(DEAL_STAGES)],
            estimated_value=Decimal(n % 100_000) + Decimal("0.5"),
            probability=Decimal("0.25"),
            source="benchmark",
            qualification_snapshot={"n": n, "budget": "approved"},
        )
        for n in range(count)
    ]


async def run(rows: int, sample: int) -> None:
    # A database of its own (on the embedded server), so earlier runs never skew the figures.
    settings = Settings(database_name=f"crm_pipeline_bench_{os.getpid()}")
    try:
        await measure(settings, rows, sample)
    finally:
        if settings.database_url is None:
            await drop_database(settings)


async def drop_database(settings: Settings) -> None:
    async with await Database.open(settings) as database:
        admin = database.url.set(database="postgres")
    engine = create_async_engine(admin, isolation_level="AUTOCOMMIT")
    async with engine.connect() as connection:
        await connection.execute(text(f'DROP DATABASE IF EXISTS "{settings.database_name}" WITH (FORCE)'))
    await engine.dispose()


async def measure(settings: Settings, rows: int, sample: int) -> None:
    async with await Database.open(settings) as database:
        repository = DealRepository(database)
        tenant = f"bench-{uuid4().hex[:12]}"
        await repository.register_tenant(tenant)
        since = datetime.now(UTC) - timedelta(seconds=1)

        bulk_records = make_records(rows)
        started = time.perf_counter()
        result = await repository.bulk_upsert_opportunities(tenant, bulk_records)
        bulk_seconds = time.perf_counter() - started
        assert result.created == rows, result

        started = time.perf_counter()
        changes = await repository.changes_since(tenant, since)
        changes_seconds = time.perf_counter() - started
        assert len(changes) == rows, len(changes)

        started = time.perf_counter()
        paged, cursor = 0, None
        while (page := await repository.change_feed(tenant, cursor, limit=CHANGE_PAGE)).entries:
            paged += len(page.entries)
            cursor = page.cursor
        paged_seconds = time.perf_counter() - started
        assert paged == rows, paged

        changed = [
            record.model_copy(update={"name": f"{record.name} (renamed)"}) if index % 10 == 0 else record
            for index, record in enumerate(bulk_records)
        ]
        started = time.perf_counter()
        second = await repository.bulk_upsert_opportunities(tenant, changed)
        update_seconds = time.perf_counter() - started
        assert (second.updated, second.unchanged) == (rows // 10 + (rows % 10 > 0), rows - rows // 10 - (rows % 10 > 0))

        single_records = make_records(sample)
        started = time.perf_counter()
        for record in single_records:
            await repository.create_opportunity(tenant, record)
        single_seconds = time.perf_counter() - started

    bulk_per_row = bulk_seconds / rows * 1e6
    single_per_row = single_seconds / sample * 1e6
    emit(BENCH, "bulk_upsert_rows", rows, "rows")
    emit(BENCH, "bulk_upsert_per_row", round(bulk_per_row, 1), "us/row")
    emit(BENCH, "bulk_upsert_throughput", round(rows / bulk_seconds), "rows/s")
    emit(BENCH, "row_by_row_create_per_row", round(single_per_row, 1), "us/row")
    emit(BENCH, "bulk_speedup_per_row", round(single_per_row / bulk_per_row, 1), "x", ">= 10")
    emit(BENCH, "bulk_upsert_10pct_changed_per_row", round(update_seconds / rows * 1e6, 1), "us/row")
    emit(BENCH, "changes_since_rows", len(changes), "rows")
    emit(BENCH, "changes_since_one_call_throughput", round(len(changes) / changes_seconds), "rows/s")
    emit(BENCH, f"change_feed_pages_of_{CHANGE_PAGE}_throughput", round(paged / paged_seconds), "rows/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--sample", type=int, default=1_000)
    args = parser.parse_args()
    asyncio.run(run(args.rows, args.sample))


if __name__ == "__main__":
    main()
