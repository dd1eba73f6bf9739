"""Fixtures for the sync engine: the real deal store, a fresh sandbox Notion with the synced map, a
fresh local HubSpot, ``crm``: each connector's local CRM in turn, for the shared rule tests, and
``configured``: the commands' settings on the test database and the sandbox's demo Deals database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from uuid import uuid4

import pytest
import pytest_asyncio

from crm_pipeline.crm import NotionAdapter, PostgresAdapter, salesforce
from crm_pipeline.crm.hubspot import HubSpotAdapter, RateLimit
from crm_pipeline.crm.notion.properties import SYNCED_PROPERTY_MAP, notion_properties_schema
from crm_pipeline.demo import seed_demo, seed_demo_notion
from crm_pipeline.hubspot_sandbox import DEFAULT_TOKEN, HubSpotControl, RunningHubSpot
from crm_pipeline.salesforce_sandbox import DEFAULT_TOKEN as SALESFORCE_TOKEN
from crm_pipeline.salesforce_sandbox import RunningSalesforce, SalesforceControl
from crm_pipeline.sandbox import RunningSandbox, SandboxControl
from crm_pipeline.settings import Settings, get_settings
from crm_pipeline.store import Database, DealRepository
from crm_pipeline.sync import SyncEngine
from crm_pipeline.sync.ownership import DEFAULT_FIELD_OWNERSHIP
from crm_pipeline_tests.conftest import SALESFORCE_USERNAME
from crm_pipeline_tests.crm.conftest import Workspace
from crm_pipeline_tests.sync.local_crm import HubSpotCRM, LocalCRM, NotionCRM, SalesforceCRM


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


@pytest.fixture
def hubspot(hubspot_server: RunningHubSpot, hubspot_control: HubSpotControl) -> RunningHubSpot:
    hubspot_control.reset()
    return hubspot_server


@pytest_asyncio.fixture
async def hubspot_adapter(hubspot: RunningHubSpot) -> AsyncIterator[HubSpotAdapter]:
    adapter = HubSpotAdapter(
        DEFAULT_TOKEN, base_url=hubspot.base_url, rate_limit=RateLimit(per_ten_seconds=0, searches_per_second=0)
    )
    yield adapter
    await adapter.aclose()


@pytest_asyncio.fixture
async def salesforce_adapter(
    salesforce_org: RunningSalesforce, salesforce_control: SalesforceControl
) -> AsyncIterator[salesforce.SalesforceAdapter]:
    """The adapter over the local Salesforce on real time (the deal store's clock)."""
    salesforce_control.real_clock()
    adapter = salesforce.SalesforceAdapter(
        SALESFORCE_TOKEN,
        instance_url=salesforce_org.base_url,
        integration_username=SALESFORCE_USERNAME,
        rate_limit=salesforce.RateLimit(per_minute=0),
    )
    yield adapter
    await adapter.aclose()


@pytest.fixture(params=["notion", "hubspot", "salesforce"])
def crm(request: pytest.FixtureRequest) -> LocalCRM:
    """Each connector's local CRM, fresh (its fixtures are asked for only when its case runs)."""
    if request.param == "notion":
        return NotionCRM(request.getfixturevalue("workspace"), request.getfixturevalue("notion"))
    if request.param == "salesforce":
        return SalesforceCRM(
            request.getfixturevalue("salesforce_org").base_url,
            request.getfixturevalue("salesforce_control"),
            request.getfixturevalue("salesforce_adapter"),
        )
    return HubSpotCRM(
        request.getfixturevalue("hubspot").base_url,
        request.getfixturevalue("hubspot_control"),
        request.getfixturevalue("hubspot_adapter"),
    )


@pytest.fixture
def crm_engine(primary: PostgresAdapter, crm: LocalCRM) -> SyncEngine:
    """The engine over ``crm``, reading its trash every pass."""
    return SyncEngine(primary, crm.adapter, DEFAULT_FIELD_OWNERSHIP, trash_check_seconds=0)


def configure_demo(
    store_settings: Settings, sandbox_server: RunningSandbox, control: SandboxControl, monkeypatch: pytest.MonkeyPatch
) -> str:
    """Point the commands' settings at the test database and the sandbox's demo Deals database
    (seeded afresh); returns a new tenant seeded with the demo deals."""
    control.reset()
    seed_demo_notion(control)
    monkeypatch.setenv("CRM_PIPELINE_DATABASE_NAME", store_settings.database_name)
    monkeypatch.setenv("CRM_PIPELINE_NOTION_BASE_URL", sandbox_server.base_url)
    monkeypatch.delenv("CRM_PIPELINE_NOTION_TOKEN", raising=False)
    monkeypatch.delenv("CRM_PIPELINE_NOTION_DATABASE_ID", raising=False)
    get_settings.cache_clear()
    tenant = f"t-{uuid4().hex[:16]}"

    async def seed() -> None:
        async with await Database.open(get_settings()) as database:
            await seed_demo(DealRepository(database), tenant)

    asyncio.run(seed())
    return tenant


@pytest.fixture
def configured(
    store_settings: Settings, sandbox_server: RunningSandbox, control: SandboxControl, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """The commands' settings on the test database and the sandbox's demo Deals database; a
    tenant seeded with the demo deals."""
    yield configure_demo(store_settings, sandbox_server, control, monkeypatch)
    get_settings.cache_clear()
