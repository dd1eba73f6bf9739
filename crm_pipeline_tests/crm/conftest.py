"""Fixtures for the Notion adapter tests (a fresh workspace per test on the session's sandbox server),
and the deal the HubSpot and Salesforce adapter tests write."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
import pytest_asyncio

from crm_pipeline.crm.notion import NotionAdapter, RateLimit, RetryPolicy
from crm_pipeline.crm.notion.adapter import CONTACT_PROPERTY_MAP
from crm_pipeline.crm.notion.properties import notion_properties_schema
from crm_pipeline.models import OpportunityCreate
from crm_pipeline.sandbox import DEFAULT_TOKEN, RunningSandbox, SandboxControl

FAST_RETRY = RetryPolicy(max_attempts=4, initial_wait=0.01, max_wait=0.05, retry_after_jitter=0.0)
UNPACED = RateLimit(requests_per_second=1000.0, burst=50, max_in_flight=8)
HANG_TIMEOUT_S = 1.0
"""The adapter's request timeout in tests of a hung request: well above a normal answer's time."""
HANG_SECONDS = 2.0
"""How long a "hang" fault holds its request: past HANG_TIMEOUT_S, so the client always times out."""

DEALS_SCHEMA = notion_properties_schema()
CONTACTS_SCHEMA = notion_properties_schema(CONTACT_PROPERTY_MAP, select_options={})


@dataclass
class Workspace:
    """A freshly seeded sandbox workspace and what the adapter sent to it."""

    base_url: str
    control: SandboxControl
    database_id: str
    data_source_id: str
    contacts_data_source_id: str
    sent: list[tuple[str, str, Any]] = field(default_factory=list)
    """(method, path, JSON body) of every API request the adapters made."""

    def adapter(self, **overrides: Any) -> NotionAdapter:
        settings: dict[str, Any] = {
            "base_url": self.base_url,
            "tenant_id": "tenant-a",
            "contacts_data_source_id": self.contacts_data_source_id,
            "retry": FAST_RETRY,
            "rate_limit": UNPACED,
            "http_client": httpx.AsyncClient(event_hooks={"request": [self._capture]}),
        }
        return NotionAdapter(
            overrides.pop("token", DEFAULT_TOKEN),
            self.database_id,
            **{**settings, **overrides},
        )

    async def _capture(self, request: httpx.Request) -> None:
        body = json.loads(request.content) if request.content else None
        self.sent.append((request.method, request.url.path, body))

    def requests_to(self, method: str, route: str) -> dict[str, int]:
        """Responses by status for one route, e.g. ("PATCH", "/v1/pages/{page_id}")."""
        return self.control.stats()["by_route"].get(f"{method} {route}", {})

    async def hung_requests_answered(self, method: str, route: str, count: int = 1) -> dict[str, int]:
        """The route's responses once ``count`` hung requests on it have been answered.

        The sandbox holds a hung request open past the client's timeout and, when the hang ends,
        counts it as 499 (the client had closed the connection); waiting for that keeps the
        statistics this test asserts complete.
        """
        for _ in range(int(30 / 0.05)):  # a generous bound: a hang ends after HANG_SECONDS
            answered = self.requests_to(method, route)
            if answered.get("499", 0) >= count:
                return answered
            await asyncio.sleep(0.05)
        raise AssertionError(f"{count} hung request(s) on {method} {route} never answered")


@pytest.fixture
def workspace(sandbox_server: RunningSandbox, control: SandboxControl) -> Workspace:
    control.reset()
    deals, contacts = control.seed(
        {
            "databases": [
                {"title": "Deals", "properties": DEALS_SCHEMA},
                {"title": "Contacts", "properties": CONTACTS_SCHEMA},
            ]
        }
    )
    return Workspace(
        sandbox_server.base_url,
        control,
        deals["database_id"],
        deals["data_source_id"],
        contacts["data_source_id"],
    )


@pytest_asyncio.fixture
async def notion(workspace: Workspace) -> AsyncIterator[NotionAdapter]:
    adapter = workspace.adapter()
    yield adapter
    await adapter.aclose()


def deal(key: UUID | None = None, **fields: object) -> OpportunityCreate:
    """A deal with every mapped field set (``fields`` replace some), under ``key`` or a new id."""
    values: dict[str, object] = {
        "name": "Acme rollout",
        "deal_stage": "Proposal",
        "estimated_value": Decimal("1500.00"),
        "close_date": date(2026, 4, 30),
        "product_line": "Platform",
        "probability": Decimal("0.35"),
        "source": "Referral",
        "contact_name": "Ann Lee",
        "contact_email": "ann@example.com",
        "custom_notes": "Call after the holidays",
        "override_stage": None,
        "manual_tags": ["vip", "q2"],
    }
    return OpportunityCreate(id=key or uuid4(), **(values | fields))
