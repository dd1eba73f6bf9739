"""A process of its own spending a HubSpot app's requests, as a Dagster run would: its own event
loop, adapter and database pool (test_request_budget.py starts two at once)."""

from __future__ import annotations

import asyncio
from threading import Barrier

from sqlalchemy.ext.asyncio import create_async_engine

from crm_pipeline.crm.budget import PostgresBudget
from crm_pipeline.crm.hubspot import HubSpotAdapter, RateLimit, RetryPolicy
from crm_pipeline.crm.hubspot.client import status_of
from crm_pipeline.hubspot_sandbox import DEFAULT_TOKEN


def spend(base_url: str, database_url: str | None, app: str, requests: int, start: Barrier) -> dict[str, int]:
    """Send ``requests`` reads once every worker is ready; answers by status ("200", "429" …).
    With ``database_url`` the app's budget is the deal store's, else this process's own."""
    return asyncio.run(_spend(base_url, database_url, app, requests, start))


async def _spend(base_url: str, database_url: str | None, app: str, requests: int, start: Barrier) -> dict[str, int]:
    engine = create_async_engine(database_url) if database_url else None
    limit = RateLimit(shared=PostgresBudget(engine) if engine else None, app=app)
    adapter = HubSpotAdapter(DEFAULT_TOKEN, base_url=base_url, rate_limit=limit, retry=RetryPolicy(max_attempts=1))
    answers: dict[str, int] = {}

    async def read() -> None:
        try:
            await adapter.api.pipelines()
            status = "200"
        except Exception as error:
            status = str(status_of(error))
        answers[status] = answers.get(status, 0) + 1

    start.wait()
    try:
        await asyncio.gather(*(read() for _ in range(requests)))
    finally:
        await adapter.aclose()
        if engine is not None:
            await engine.dispose()
    answers["sent"] = adapter.requests_sent
    return answers
