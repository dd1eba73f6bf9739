"""NotionAdapter pacing benchmark: 300 page updates against a sandbox limiting at 3 requests/s.

The sandbox runs as a separate process (``crm-pipeline sandbox --rate-limit 3``), seeded with 300
deal pages through its control surface (not rate limited). The adapter first lists the deals
(binding the schema and filling its sync-key cache), then the timed part upserts all 300 at once.
The budget is 300 requests / 3 per second = 100 s; the sandbox's burst allowance (``--burst``)
lets its first few requests through early, which the figures report rather than hide.

Run: ``.venv/bin/python benchmarks/bench_notion_adapter.py [--burst 10] [--updates 300]``.
Prints one JSON line per figure.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from uuid import uuid4

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import emit  # noqa: E402
from sandbox_process import sandbox_process  # noqa: E402

from crm_pipeline.crm.notion import NotionAdapter, RateLimit  # noqa: E402
from crm_pipeline.crm.notion.properties import notion_properties_schema  # noqa: E402
from crm_pipeline.models import OpportunityCreate, OpportunityFilter  # noqa: E402
from crm_pipeline.sandbox import DEFAULT_TOKEN, SandboxControl  # noqa: E402

BENCH = "notion_adapter"

RATE = 3.0


async def run(base_url: str, control: SandboxControl, updates: int) -> None:
    keys = [uuid4() for _ in range(updates)]
    pages = [{"Deal Name": f"deal {i}", "Stage": "Lead", "Sync Key": str(key)} for i, key in enumerate(keys)]
    [deals] = control.seed(
        {"databases": [{"title": "Deals", "properties": notion_properties_schema(), "pages": pages}]}
    )
    adapter = NotionAdapter(
        DEFAULT_TOKEN,
        deals["database_id"],
        base_url=base_url,
        rate_limit=RateLimit(requests_per_second=RATE),
    )
    try:
        assert len(await adapter.list_opportunities(OpportunityFilter(limit=10_000))) == updates  # warm-up
        control.reset_stats()
        records = [OpportunityCreate(id=key, name=f"deal {i} v2", deal_stage="Qualified") for i, key in enumerate(keys)]
        started = time.monotonic()
        outcomes = await adapter.upsert_opportunities(records)
        elapsed = time.monotonic() - started
    finally:
        await adapter.aclose()
    stats = control.stats()
    budget = updates / RATE
    emit(BENCH, "elapsed", round(elapsed, 2), "s", None)
    emit(BENCH, "elapsed_over_budget", round(elapsed / budget, 3), "ratio", "<= 1.05")
    emit(BENCH, "failed_writes", sum(not o.ok for o in outcomes), "count", "== 0")
    emit(BENCH, "updates_applied", sum(o.action == "updated" for o in outcomes), "count", f"== {updates}")
    emit(BENCH, "rate_limited_responses", stats["by_status"].get("429", 0), "count", "== 0")
    emit(BENCH, "requests_sent", stats["total"], "count", f"== {updates}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=300)
    parser.add_argument("--burst", type=int, default=10, help="the sandbox's burst allowance")
    args = parser.parse_args()
    flags = ("--rate-limit", str(RATE), "--burst", str(args.burst))
    with sandbox_process(*flags) as base_url, SandboxControl(base_url) as control:
        emit(BENCH, "sandbox_burst", args.burst, "requests")
        asyncio.run(run(base_url, control, args.updates))


if __name__ == "__main__":
    main()
