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
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from uuid import uuid4

import httpx

from crm_pipeline.crm.notion import NotionAdapter, RateLimit
from crm_pipeline.models import OpportunityCreate, OpportunityFilter
from crm_pipeline.sandbox.config import DEFAULT_TOKEN
from crm_pipeline.sandbox.control_client import SandboxControl

RATE = 3.0
SCHEMA = {
    "Deal Name": {"title": {}},
    "Stage": {"select": {"options": [{"name": "Lead"}, {"name": "Qualified"}]}},
    "Value": {"number": {}},
    "Close Date": {"date": {}},
    "Product": {"select": {"options": []}},
    "Probability": {"number": {}},
    "Source": {"select": {"options": []}},
    "Contact": {"rich_text": {}},
    "Email": {"email": {}},
    "Sync Key": {"rich_text": {}},
}


def figure(name: str, value: float, unit: str, goal: str | int | None) -> None:
    print(
        json.dumps(
            {
                "bench": "notion_adapter",
                "figure": name,
                "value": value,
                "unit": unit,
                "goal": goal,
            }
        ),
        flush=True,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def sandbox_process(burst: int) -> Iterator[str]:
    """A sandbox server in its own process, stopped on exit."""
    port = free_port()
    command = [
        str(Path(sys.executable).with_name("crm-pipeline")),
        "sandbox",
        "--port",
        str(port),
        "--rate-limit",
        str(RATE),
        "--burst",
        str(burst),
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{base_url}/_sandbox/health", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the sandbox did not start") from None
                time.sleep(0.1)
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=10)


async def run(base_url: str, control: SandboxControl, updates: int) -> None:
    keys = [uuid4() for _ in range(updates)]
    pages = [
        {"Deal Name": f"deal {i}", "Stage": "Lead", "Sync Key": str(key)}
        for i, key in enumerate(keys)
    ]
    [deals] = control.seed(
        {"databases": [{"title": "Deals", "properties": SCHEMA, "pages": pages}]}
    )
    adapter = NotionAdapter(
        DEFAULT_TOKEN,
        deals["database_id"],
        base_url=base_url,
        rate_limit=RateLimit(requests_per_second=RATE),
    )
    try:
        assert (
            len(await adapter.list_opportunities(OpportunityFilter(limit=10_000)))
            == updates
        )  # warm-up
        control.reset_stats()
        records = [
            OpportunityCreate(id=key, name=f"deal {i} v2", deal_stage="Qualified")
            for i, key in enumerate(keys)
        ]
        started = time.monotonic()
        outcomes = await adapter.upsert_opportunities(records)
        elapsed = time.monotonic() - started
    finally:
        await adapter.aclose()
    stats = control.stats()
    budget = updates / RATE
    figure("elapsed", round(elapsed, 2), "s", None)
    figure("elapsed_over_budget", round(elapsed / budget, 3), "ratio", "<= 1.05")
    figure("failed_writes", sum(not o.ok for o in outcomes), "count", 0)
    figure(
        "updates_applied",
        sum(o.action == "updated" for o in outcomes),
        "count",
        updates,
    )
    figure("rate_limited_responses", stats["by_status"].get("429", 0), "count", 0)
    figure("requests_sent", stats["total"], "count", updates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=300)
    parser.add_argument(
        "--burst", type=int, default=10, help="the sandbox's burst allowance"
    )
    args = parser.parse_args()
    with sandbox_process(args.burst) as base_url, SandboxControl(base_url) as control:
        figure("sandbox_burst", args.burst, "requests", None)
        asyncio.run(run(base_url, control, args.updates))


if __name__ == "__main__":
    main()
