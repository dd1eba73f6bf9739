"""The session's sandbox server (from the top-level conftest), reset before each test."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from notion_client import AsyncClient

from crm_pipeline.sandbox import (
    DEFAULT_TOKEN,
    NOTION_VERSION,
    RunningSandbox,
    SandboxControl,
)

DEALS_SEED = json.loads((Path(__file__).parents[2] / "crm_pipeline/sandbox/deals_seed.json").read_text())
# One logger for every client: the SDK adds a console handler per client when it makes its own.
SDK_LOGGER = logging.getLogger("crm_pipeline_tests.notion_client")


@pytest.fixture
def sandbox(sandbox_server: RunningSandbox, control: SandboxControl) -> RunningSandbox:
    control.reset()
    return sandbox_server


@pytest_asyncio.fixture
async def make_notion(sandbox: RunningSandbox) -> AsyncIterator[Callable[..., AsyncClient]]:
    """Build SDK clients against the sandbox (retries off unless asked for); all closed afterwards."""
    clients: list[AsyncClient] = []

    def make(**options: Any) -> AsyncClient:
        options.setdefault("retry", False)
        options.setdefault("auth", DEFAULT_TOKEN)
        client = AsyncClient(base_url=sandbox.base_url, logger=SDK_LOGGER, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


@pytest_asyncio.fixture
async def notion(make_notion: Callable[..., AsyncClient]) -> AsyncClient:
    return make_notion()


@pytest_asyncio.fixture
async def raw(sandbox: RunningSandbox) -> AsyncIterator[httpx.AsyncClient]:
    """Plain HTTP with the headers the SDK sends, for requests the SDK would never make."""
    headers = {"Notion-Version": NOTION_VERSION, "Authorization": f"Bearer {DEFAULT_TOKEN}"}
    async with httpx.AsyncClient(base_url=sandbox.base_url, headers=headers) as client:
        yield client


@pytest.fixture
def deals(control: SandboxControl, sandbox: RunningSandbox) -> dict[str, Any]:
    """The example "Deals" database (three pages); returns its database and data source ids."""
    return control.seed(DEALS_SEED)[0]


def title(page: dict[str, Any], name: str = "Deal Name") -> str:
    return "".join(item["plain_text"] for item in page["properties"][name]["title"])


def rows(*specs: dict[str, Any]) -> dict[str, Any]:
    """A seed document: the Deals schema with the given shorthand rows."""
    database = {k: v for k, v in DEALS_SEED["databases"][0].items() if k not in ("id", "data_source_id")}
    return {"databases": [{**database, "pages": list(specs)}]}


async def eventually(check: Callable[[], bool], what: str, attempts: int = 500) -> None:
    """Poll for something another thread does (e.g. the server noticing a disconnect); the
    generous bound only decides how long a genuine failure takes to report."""
    for _ in range(attempts):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"never happened: {what}")


class HeldDelays:
    """Stands in for the server's simulated delays (latency, hangs): each one lasts until the test
    releases it, so "the client gave up first" is a fact the test arranges, not a race."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self._entered = threading.Semaphore(0)
        self._released = False

    async def sleep(self, seconds: float) -> None:  # runs on the server's event loop
        gate = asyncio.Event()
        with self._lock:
            if self._released:
                return
            self._held.append((asyncio.get_running_loop(), gate))
        self._entered.release()
        await gate.wait()

    async def started(self) -> None:
        """Wait until the server is inside one more delay."""
        assert await asyncio.to_thread(self._entered.acquire, True, 10), "the server never started a delay"

    def release(self) -> None:
        """End every delay, now and from now on."""
        with self._lock:
            self._released = True
            held, self._held = self._held, []
        for loop, gate in held:
            loop.call_soon_threadsafe(gate.set)


@pytest.fixture
def held_delays(sandbox: RunningSandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[HeldDelays]:
    delays = HeldDelays()
    monkeypatch.setattr(sandbox.sandbox, "sleep", delays.sleep)
    yield delays
    delays.release()
