"""The shared request budget: its reservations in the deal store, two processes of one HubSpot
app against the local HubSpot under HubSpot's own limits, and a Notion integration spending it."""

from __future__ import annotations

import asyncio
import math
import multiprocessing
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from uuid import uuid4

import pytest
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError

from crm_pipeline.crm.budget import DailyBudgetSpentError, PostgresBudget, Window
from crm_pipeline.crm.notion import RateLimit
from crm_pipeline.hubspot_sandbox import HubSpotControl, RunningHubSpot
from crm_pipeline.store import Database
from crm_pipeline_tests.crm.budget_worker import spend
from crm_pipeline_tests.crm.conftest import Workspace

pytestmark = pytest.mark.integration

LONG = Window("requests", 3, 600.0)
"""A window no test outlives: what it refuses, it refuses for the whole test."""


@pytest.fixture
def budget(database: Database) -> PostgresBudget:
    return PostgresBudget(database.engine)


async def test_concurrent_reservations_never_exceed_the_window(budget: PostgresBudget) -> None:
    key = f"test:{uuid4()}"
    waits = await asyncio.gather(*(budget.reserve(key, LONG) for _ in range(12)))
    assert sorted(waits)[:3] == [0.0, 0.0, 0.0]
    assert all(0 < wait <= LONG.seconds for wait in sorted(waits)[3:])


async def test_pools_and_keys_are_counted_apart(budget: PostgresBudget) -> None:
    key, other = f"test:{uuid4()}", f"test:{uuid4()}"
    search = Window("search", 1, 600.0)
    assert [await budget.reserve(key, LONG) for _ in range(3)] == [0.0] * 3
    assert await budget.reserve(key, LONG) > 0
    assert await budget.reserve(key, search) == 0.0
    assert await budget.reserve(key, search) > 0
    assert await budget.reserve(other, LONG) == 0.0


async def test_a_spent_day_is_never_waited_out(budget: PostgresBudget) -> None:
    key = f"test:{uuid4()}"
    roomy = Window("requests", 100, 1.0)
    for _ in range(2):
        await budget.acquire(key, roomy, per_day=2)
    assert math.isinf(await budget.reserve(key, Window("search", 100, 1.0), per_day=2))  # every pool counts
    waited: list[float] = []

    async def sleep(seconds: float) -> None:
        waited.append(seconds)

    with pytest.raises(DailyBudgetSpentError):
        await budget.acquire(key, roomy, per_day=2, sleep=sleep)
    assert waited == []


async def test_the_application_role_may_reserve_but_not_touch_the_counts(database: Database) -> None:
    for statement in ("SELECT * FROM crm.request_budgets", "DELETE FROM crm.request_reservations"):
        with pytest.raises(ProgrammingError, match="permission denied"):
            async with database.engine.begin() as connection:
                await connection.execute(text(statement))


def run_two_processes(base_url: str, database_url: str | None, requests: int) -> list[dict[str, int]]:
    """Two processes of one app (own loop, adapter and pool each) spending ``requests`` each at once."""
    context = multiprocessing.get_context("spawn")
    app = f"test-app-{uuid4()}"
    with context.Manager() as manager, ProcessPoolExecutor(2, mp_context=context) as pool:
        start = manager.Barrier(2)
        runs = [pool.submit(spend, base_url, database_url, app, requests, start) for _ in range(2)]
        return [run.result(timeout=300) for run in runs]


@pytest.fixture
def limited_hubspot(hubspot_server: RunningHubSpot, hubspot_control: HubSpotControl) -> Iterator[RunningHubSpot]:
    """The local HubSpot with HubSpot's Free/Starter limits (100 per ten seconds per app)."""
    hubspot_control.reset()
    hubspot_control.configure(ten_secondly_limit=100, daily_limit=250_000, search_per_second=5)
    yield hubspot_server
    hubspot_control.reset()


REQUESTS = 75
"""Per process: under each process's own pacing (90 per ten seconds), over the app's 100 together."""


def test_two_processes_with_one_shared_budget_stay_under_the_apps_limit(
    limited_hubspot: RunningHubSpot, hubspot_control: HubSpotControl, database: Database
) -> None:
    url = database.app_url.render_as_string(hide_password=False)
    answers = run_two_processes(limited_hubspot.base_url, url, REQUESTS)
    assert [a["200"] for a in answers] == [REQUESTS, REQUESTS]
    assert [a["sent"] for a in answers] == [REQUESTS, REQUESTS]
    assert hubspot_control.stats()["by_status"] == {"200": 2 * REQUESTS}


def test_two_processes_pacing_themselves_exceed_the_apps_limit(
    limited_hubspot: RunningHubSpot, hubspot_control: HubSpotControl
) -> None:
    """The control: the same two processes, each with only its own budget, draw 429s. The local
    HubSpot's clock stands still, so all their requests fall in one of its windows however fast
    they are sent."""
    hubspot_control.set_clock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    answers = run_two_processes(limited_hubspot.base_url, None, REQUESTS)
    total = sum((Counter(a) for a in answers), Counter())
    assert (total["200"], total["429"]) == (100, 2 * REQUESTS - 100)
    assert hubspot_control.stats()["by_status"].get("429", 0) == total["429"]


async def test_a_notion_integration_spends_the_shared_budget(workspace: Workspace, budget: PostgresBudget) -> None:
    """Notion's integration budget is kept by the same store: a request of one adapter takes the
    integration's slot, which another process (here: a reservation beside it) then waits for."""
    integration = f"test-integration-{uuid4()}"
    fifty_in_ten_minutes = RateLimit(requests_per_second=50 / 600, burst=50, shared=budget, integration=integration)
    adapter = workspace.adapter(rate_limit=fifty_in_ten_minutes)
    try:
        assert await adapter.get_opportunity(str(uuid4())) is None
    finally:
        await adapter.aclose()
    assert await budget.reserve(f"notion:{integration}", Window("requests", 1, 600.0)) > 0
    assert await budget.reserve(f"notion:test-integration-{uuid4()}", Window("requests", 1, 600.0)) == 0.0
