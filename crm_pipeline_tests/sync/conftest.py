"""Fixtures for the sync engine: the real deal store and a fresh sandbox Notion with the synced map."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from crm_pipeline.crm import NotionAdapter, PostgresAdapter
from crm_pipeline.crm.field_mapping import DEFAULT_FIELD_OWNERSHIP, SYNCED_PROPERTY_MAP, notion_properties_schema
from crm_pipeline.sandbox import RunningSandbox, SandboxControl
from crm_pipeline.store import DealRepository
from crm_pipeline.sync import SyncEngine
from crm_pipeline_tests.crm.conftest import Workspace


@pytest.fixture
def workspace(sandbox_server: RunningSandbox, control: SandboxControl) -> Workspace:
    control.reset()
    [deals] = control.seed(
        {"databases": [{"title": "Deals", "properties": notion_properties_schema(SYNCED_PROPERTY_MAP)}]}
    )
    return Workspace(sandbox_server.base_url, control, deals["database_id"], deals["data_source_id"], "")


@pytest_asyncio.fixture
async def notion(workspace: Workspace) -> AsyncIterator[NotionAdapter]:
    adapter = workspace.adapter(property_map=SYNCED_PROPERTY_MAP, contacts_data_source_id=None)
    yield adapter
    await adapter.aclose()


@pytest.fixture
def primary(repository: DealRepository, tenant: str) -> PostgresAdapter:
    return PostgresAdapter(repository, tenant)


@pytest.fixture
def engine(primary: PostgresAdapter, notion: NotionAdapter) -> SyncEngine:
    return SyncEngine(primary, notion, DEFAULT_FIELD_OWNERSHIP)
