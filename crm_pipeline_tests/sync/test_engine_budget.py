"""An initial load drains across passes, none overrunning its time budget by more than one batch.

Time here is Notion's request budget, made deterministic: a virtual clock that every HTTP request
to Notion moves on by ``1 / RATE`` seconds (a tenant limited to RATE requests/s spends exactly
that), read by the engine and the executor in place of the machine's clock. So the figures do not
depend on the machine's speed; benchmarks/bench_sync.py measures the same on the real clock.
"""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from notion_client import AsyncClient

from crm_pipeline.crm import NotionAdapter, PostgresAdapter
from crm_pipeline.models import OpportunityCreate
from crm_pipeline.store import DealRepository
from crm_pipeline.sync import SyncEngine
from crm_pipeline.sync.executor import CREATE_BATCH
from crm_pipeline.sync.ownership import DEFAULT_FIELD_OWNERSHIP
from crm_pipeline_tests.crm.conftest import Workspace

pytestmark = pytest.mark.integration

RATE = 10.0
"""Notion requests per second of the virtual clock."""
BUDGET = 2.4
"""Each pass's time budget: 24 requests, a batch of creates and then some."""
DEALS = 240
BATCH_REQUESTS = CREATE_BATCH + 2
"""One batch of creates: the key lookup (live pages, then the trash), then a page per deal."""


class NotionClock:
    """Notion's budget spent: every request moves it on by ``1 / RATE`` seconds."""

    def __init__(self) -> None:
        self.requests = 0

    def monotonic(self) -> float:
        return self.requests / RATE


async def test_an_initial_load_drains_across_passes_none_overrunning(
    primary: PostgresAdapter,
    notion: NotionAdapter,
    repository: DealRepository,
    tenant: str,
    workspace: Workspace,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = NotionClock()
    request = AsyncClient.request

    async def paced(self: AsyncClient, *args: Any, **kwargs: Any) -> Any:
        clock.requests += 1
        return await request(self, *args, **kwargs)

    monkeypatch.setattr(AsyncClient, "request", paced)
    virtual_time = SimpleNamespace(monotonic=clock.monotonic)
    monkeypatch.setattr("crm_pipeline.sync.engine.time", virtual_time)
    monkeypatch.setattr("crm_pipeline.sync.executor.time", virtual_time)
    for n in range(DEALS):
        await repository.create_opportunity(tenant, OpportunityCreate(name=f"Deal {n}", estimated_value=Decimal(n)))
    engine = SyncEngine(primary, notion, DEFAULT_FIELD_OWNERSHIP, time_budget_seconds=BUDGET)
    await notion.bot_user_id()  # the adapter's one-time set-up, outside any pass

    created, passes = 0, 0
    while created < DEALS:
        passes += 1
        assert passes <= DEALS // CREATE_BATCH, "the backlog does not drain"
        started = clock.requests
        result = await engine.run_pass()
        assert result.errors == []
        assert result.created + result.deferred == DEALS - created  # what is not created waits, none lost
        created += result.created
        # the last batch starts within the budget, the reads before the writes included
        assert clock.requests - started <= BUDGET * RATE + BATCH_REQUESTS, f"pass {passes} overran"
    assert passes >= DEALS // (2 * CREATE_BATCH)  # a pass starts no batch after its budget: two fit in one

    live = [page for page in workspace.control.all_pages(workspace.data_source_id) if not page["in_trash"]]
    keys = ["".join(t["plain_text"] for t in page["properties"]["Sync Key"]["rich_text"]) for page in live]
    assert len(keys) == len(set(keys)) == DEALS  # one page per deal: nothing created twice
    assert await engine.status.errors() == []
