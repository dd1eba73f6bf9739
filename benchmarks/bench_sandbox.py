"""Throughput of the Notion sandbox with rate limiting off.

The server runs in its own process (`crm-pipeline sandbox`, one uvicorn worker, so one core);
this process generates load over loopback HTTP with a minimal keep-alive client (httpx itself
tops out near 200 requests/s per process, which would measure the client, not the server).
Prints one JSON line per figure.

    .venv/bin/python benchmarks/bench_sandbox.py
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import emit  # noqa: E402
from sandbox_process import sandbox_process  # noqa: E402

from crm_pipeline.sandbox import DEFAULT_TOKEN, NOTION_VERSION, SandboxControl  # noqa: E402

CONCURRENCY = 16
PHASE_SECONDS = 4.0
QUERY_ROWS = 10_000
STAGES = ["Lead", "Qualified", "Negotiation", "Closed Won", "Closed Lost"]


def deals_seed(count: int) -> dict[str, Any]:
    rng = random.Random(7)
    rows = [
        {
            "Deal Name": f"Deal {i:05}",
            "Stage": rng.choice(STAGES),
            "Value": rng.randint(1, 100_000),
            "Close Date": f"2026-{rng.randint(1, 12):02}-{rng.randint(1, 28):02}",
            "Contact": f"Contact {i}",
            "Email": f"buyer{i}@example.com",
            "Sync Key": f"deal-{i}",
        }
        for i in range(count)
    ]
    properties = {
        "Deal Name": {"title": {}},
        "Stage": {"select": {"options": [{"name": s} for s in STAGES]}},
        "Value": {"number": {}},
        "Close Date": {"date": {}},
        "Contact": {"rich_text": {}},
        "Email": {"email": {}},
        "Sync Key": {"rich_text": {}},
    }
    return {"databases": [{"title": "Deals", "properties": properties, "pages": rows}]}


class Connection:
    """One keep-alive HTTP/1.1 connection speaking just enough of the protocol for JSON APIs."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        payload = b"" if body is None else json.dumps(body).encode()
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: sandbox\r\nNotion-Version: {NOTION_VERSION}\r\n"
            f"Authorization: Bearer {DEFAULT_TOKEN}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        )
        self._writer.write(head.encode() + payload)
        status_line, *header_lines = (await self._reader.readuntil(b"\r\n\r\n")).split(b"\r\n")
        length = next(int(line.split(b":")[1]) for line in header_lines if line.lower().startswith(b"content-length:"))
        text = await self._reader.readexactly(length)
        if not status_line.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"{status_line!r}: {text[:200]!r}")
        return json.loads(text)

    def close(self) -> None:
        self._writer.close()


Request = Callable[[Connection, int], Awaitable[None]]


async def measure(port: int, name: str, goal: float, request: Request) -> None:
    """Run `request(connection, i)` from CONCURRENCY connections for PHASE_SECONDS; print requests/s."""
    counter = iter(range(10**9))
    connections = [await Connection.open(port) for _ in range(CONCURRENCY)]
    deadline = time.monotonic() + PHASE_SECONDS
    done = 0

    async def worker(connection: Connection) -> None:
        nonlocal done
        while time.monotonic() < deadline:
            await request(connection, next(counter))
            done += 1

    started = time.monotonic()
    await asyncio.gather(*(worker(c) for c in connections))
    rate = done / (time.monotonic() - started)
    for connection in connections:
        connection.close()
    emit("sandbox", name, round(rate, 1), "requests/s", f">= {goal:g}")


async def run(port: int, control: SandboxControl) -> None:
    ds_id = control.seed(deals_seed(0))[0]["data_source_id"]
    created: list[str] = []

    async def create(http: Connection, i: int) -> None:
        body = {
            "parent": {"data_source_id": ds_id},
            "properties": {
                "Deal Name": {"title": [{"text": {"content": f"Bench {i}"}}]},
                "Stage": {"select": {"name": STAGES[i % 5]}},
                "Value": {"number": i},
                "Sync Key": {"rich_text": [{"text": {"content": f"bench-{i}"}}]},
            },
        }
        created.append((await http.request("POST", "/v1/pages", body))["id"])

    async def update(http: Connection, i: int) -> None:
        body = {"properties": {"Value": {"number": i}, "Stage": {"select": {"name": STAGES[i % 5]}}}}
        await http.request("PATCH", f"/v1/pages/{created[i % len(created)]}", body)

    async def retrieve(http: Connection, i: int) -> None:
        await http.request("GET", f"/v1/pages/{created[i % len(created)]}")

    await measure(port, "page creates", 500, create)
    await measure(port, "page updates", 500, update)
    await measure(port, "page retrievals", 500, retrieve)

    control.reset()
    big_ds = control.seed(deals_seed(QUERY_ROWS))[0]["data_source_id"]

    async def filtered_query(http: Connection, i: int) -> None:
        # A different threshold each time, so no request is answered from the result cache.
        body = {
            "filter": {"and": [
                {"property": "Value", "number": {"greater_than": i % 50_000}},
                {"property": "Stage", "select": {"does_not_equal": "Closed Lost"}},
            ]},
            "sorts": [{"property": "Value", "direction": "ascending"}],
            "page_size": 100,
        }  # fmt: skip
        result = await http.request("POST", f"/v1/data_sources/{big_ds}/query", body)
        if len(result["results"]) != 100:
            raise RuntimeError("expected a full page of 100 rows")

    cursors: dict[int, str | None] = {}

    async def paginated_scan(http: Connection, i: int) -> None:
        body: dict[str, Any] = {"page_size": 100, "sorts": [{"timestamp": "created_time", "direction": "ascending"}]}
        if cursors.get(i % CONCURRENCY):
            body["start_cursor"] = cursors[i % CONCURRENCY]
        result = await http.request("POST", f"/v1/data_sources/{big_ds}/query", body)
        cursors[i % CONCURRENCY] = result["next_cursor"]

    await measure(port, "filtered 100-row queries over 10k pages (distinct filters)", 100, filtered_query)
    await measure(port, "100-row pages of a full 10k scan (same query, cursors)", 100, paginated_scan)


def main() -> int:
    with sandbox_process("--rate-limit", "0") as base_url, SandboxControl(base_url, timeout=60) as control:
        asyncio.run(run(httpx.URL(base_url).port, control))
    return 0


if __name__ == "__main__":
    sys.exit(main())
