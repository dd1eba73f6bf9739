"""The plan's public names and signatures, called the plan's way (keywords as the plan names them):
code written against the plan must run unchanged."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest

from crm_pipeline.crm import CRMAdapter, NotionAdapter, PostgresAdapter, SyncEngine
from crm_pipeline.crm.errors import FieldMappingError
from crm_pipeline.crm.field_mapping import (
    DEFAULT_FIELD_OWNERSHIP,
    NOTION_PROPERTY_MAP,
    SYNCED_PROPERTY_MAP,
    from_notion_properties,
    notion_properties_schema,
    to_notion_properties,
)
from crm_pipeline.models import (
    ActivityCreate,
    ChangeRecord,
    ContactCreate,
    ContactUpdate,
    OpportunityCreate,
    OpportunityFilter,
    OpportunityRead,
    OpportunityUpdate,
    SyncResult,
)
from crm_pipeline.sandbox import DEFAULT_TOKEN, RunningSandbox, SandboxControl
from crm_pipeline.store import DealRepository
from crm_pipeline_tests.crm.conftest import FAST_RETRY, UNPACED, Workspace

LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)

PLAN_METHODS = {
    "create_opportunity": ["opportunity"],
    "update_opportunity": ["external_id", "data"],
    "get_opportunity": ["external_id"],
    "list_opportunities": ["filters"],
    "create_contact": ["contact"],
    "update_contact": ["external_id", "data"],
    "create_activity": ["activity"],
    "get_changes_since": ["since"],
}


@pytest.mark.parametrize("module", ["adapter", "postgres", "notion", "field_mapping"])
def test_the_plans_modules_exist(module: str) -> None:
    importlib.import_module(f"crm_pipeline.crm.{module}")


def test_field_mapping_exports_the_plans_names_from_where_they_live() -> None:
    field_mapping = importlib.import_module("crm_pipeline.crm.field_mapping")
    homes = [
        importlib.import_module(name)
        for name in (
            "crm_pipeline.sync.ownership",
            "crm_pipeline.crm.notion.properties",
            "crm_pipeline.crm.notion.codecs",
            "crm_pipeline.crm.errors",
        )
    ]
    plans = {"FieldOwnershipConfig", "DEFAULT_FIELD_OWNERSHIP", "NOTION_PROPERTY_MAP"}
    assert plans | {"to_notion_properties", "from_notion_properties"} <= set(field_mapping.__all__)
    for name in field_mapping.__all__:
        assert any(getattr(home, name, None) is getattr(field_mapping, name) for home in homes), name


def test_field_mapping_imports_first_without_a_cycle() -> None:
    """Code written against the plan may import it before anything else: it re-exports the sync
    core's ownership, and the sync core imports the connectors."""
    code = "from crm_pipeline.crm.field_mapping import DEFAULT_FIELD_OWNERSHIP, to_notion_properties"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


@pytest.mark.parametrize("adapter_class", [CRMAdapter, PostgresAdapter, NotionAdapter])
def test_every_adapter_has_the_plans_async_methods_and_parameter_names(adapter_class: type[CRMAdapter]) -> None:
    assert CRMAdapter.__abstractmethods__ == set(PLAN_METHODS)
    for name, parameters in PLAN_METHODS.items():
        method = getattr(adapter_class, name)
        assert inspect.iscoroutinefunction(method), name
        assert list(inspect.signature(method).parameters)[1:] == parameters, name


def test_the_constructors_take_the_plans_arguments() -> None:
    assert list(inspect.signature(PostgresAdapter).parameters)[:2] == ["repository", "tenant_id"]
    assert list(inspect.signature(NotionAdapter).parameters)[:2] == ["token", "database_id"]


async def _call_every_method_the_plans_way(adapter: CRMAdapter, since: datetime) -> None:
    key = uuid4()
    external_id = await adapter.create_opportunity(opportunity=OpportunityCreate(id=key, name="Acme"))
    assert isinstance(external_id, str)
    assert await adapter.update_opportunity(external_id=external_id, data=OpportunityUpdate(name="Acme 2")) is None
    fetched = await adapter.get_opportunity(external_id=external_id)
    assert isinstance(fetched, OpportunityRead) and fetched.name == "Acme 2"
    listed = await adapter.list_opportunities(filters=OpportunityFilter())
    assert [opportunity.name for opportunity in listed] == ["Acme 2"]
    contact_id = await adapter.create_contact(contact=ContactCreate(id=uuid4(), name="Ada"))
    assert isinstance(contact_id, str)
    assert await adapter.update_contact(external_id=contact_id, data=ContactUpdate(title="CTO")) is None
    activity_id = await adapter.create_activity(activity=ActivityCreate(opportunity_id=key, subject="Call"))
    assert isinstance(activity_id, str)
    changes = await adapter.get_changes_since(since=since)
    assert external_id in {change.record_id for change in changes}


@pytest.mark.integration
async def test_postgres_adapter_the_plans_way(repository: DealRepository, tenant: str) -> None:
    await _call_every_method_the_plans_way(PostgresAdapter(repository, tenant), LONG_AGO)


@pytest.mark.integration
async def test_notion_adapter_the_plans_way(workspace: Workspace) -> None:
    adapter = NotionAdapter(
        DEFAULT_TOKEN,
        workspace.database_id,
        base_url=workspace.base_url,
        contacts_data_source_id=workspace.contacts_data_source_id,
        retry=FAST_RETRY,
        rate_limit=UNPACED,
    )
    try:
        await _call_every_method_the_plans_way(adapter, LONG_AGO)
    finally:
        await adapter.aclose()


PLAN_DEAL = {
    "name": "Acme renewal",
    "deal_stage": "Proposal",
    "estimated_value": Decimal("12500.50"),
    "close_date": date(2026, 3, 31),
    "product_line": "Platform",
    "probability": Decimal("0.6"),
    "source": "Inbound",
    "contact_name": "Ada Lovelace",
    "contact_email": "ada@example.com",
}


def test_what_to_notion_properties_writes_from_notion_properties_reads_back() -> None:
    written = to_notion_properties(data=PLAN_DEAL, property_map=NOTION_PROPERTY_MAP)
    assert from_notion_properties(properties=written, property_map=NOTION_PROPERTY_MAP) == PLAN_DEAL


@pytest.mark.parametrize(
    "value",
    [
        {"rich_text": [{"type": "text", "text": {"content": "Acme"}}]},  # written shape, another type
        {"type": "rich_text", "title": [{"type": "text", "text": {"content": "Acme"}}]},  # says it is another
    ],
)
def test_from_notion_properties_still_refuses_a_value_of_another_type_than_the_map(value: dict[str, Any]) -> None:
    with pytest.raises(FieldMappingError, match="field 'name' \\(property 'Deal Name'\\).*expected a 'title'"):
        from_notion_properties(properties={"Deal Name": value}, property_map=NOTION_PROPERTY_MAP)


class _InMemoryAdapter(CRMAdapter):
    """Any CRMAdapter that is not the deal store: none of its methods may be called here."""

    async def create_opportunity(self, opportunity: OpportunityCreate) -> str:
        raise AssertionError("an engine without an external CRM wrote to its primary")

    async def update_opportunity(self, external_id: str, data: OpportunityUpdate) -> None:
        raise AssertionError("an engine without an external CRM wrote to its primary")

    async def get_opportunity(self, external_id: str) -> OpportunityRead | None:
        raise AssertionError("an engine without an external CRM read its primary")

    async def list_opportunities(self, filters: OpportunityFilter) -> list[OpportunityRead]:
        raise AssertionError("an engine without an external CRM read its primary")

    async def create_contact(self, contact: ContactCreate) -> str:
        raise AssertionError("an engine without an external CRM wrote to its primary")

    async def update_contact(self, external_id: str, data: ContactUpdate) -> None:
        raise AssertionError("an engine without an external CRM wrote to its primary")

    async def create_activity(self, activity: ActivityCreate) -> str:
        raise AssertionError("an engine without an external CRM wrote to its primary")

    async def get_changes_since(self, since: datetime) -> list[ChangeRecord]:
        raise AssertionError("an engine without an external CRM read its primary")


async def test_sync_engine_with_no_external_takes_any_primary_and_has_nothing_to_push() -> None:
    engine = SyncEngine(primary=_InMemoryAdapter(), external=None, field_ownership=DEFAULT_FIELD_OWNERSHIP)
    assert not engine.has_external()
    assert await engine.sync_outbound([]) == SyncResult(pushed=0, pulled=0, conflicts=0, errors=[])
    assert await engine.sync_inbound() == SyncResult()


def test_sync_engine_with_an_external_crm_needs_the_deal_store_and_says_why() -> None:
    external = NotionAdapter(DEFAULT_TOKEN, "2a1b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d")
    with pytest.raises(TypeError, match="_InMemoryAdapter: with an external CRM it must be the deal store's"):
        SyncEngine(primary=_InMemoryAdapter(), external=external, field_ownership=DEFAULT_FIELD_OWNERSHIP)


@pytest.mark.integration
async def test_a_database_made_from_the_default_schema_is_one_the_sync_accepts(
    sandbox_server: RunningSandbox, control: SandboxControl, repository: DealRepository, tenant: str
) -> None:
    control.reset()
    (deals,) = control.seed({"databases": [{"title": "Deals", "properties": notion_properties_schema()}]})
    deal = await repository.create_opportunity(tenant, OpportunityCreate(name="Acme", custom_notes="call back"))
    notion = NotionAdapter(
        DEFAULT_TOKEN,
        deals["database_id"],
        base_url=sandbox_server.base_url,
        property_map=SYNCED_PROPERTY_MAP,
        retry=FAST_RETRY,
        rate_limit=UNPACED,
    )
    engine = SyncEngine(
        primary=PostgresAdapter(repository, tenant), external=notion, field_ownership=DEFAULT_FIELD_OWNERSHIP
    )
    try:
        result = await engine.run_pass()
        (page,) = await notion.list_opportunities(OpportunityFilter())
    finally:
        await engine.close()
    assert (result.created, result.errors) == (1, [])
    assert (page.name, page.custom_notes) == (deal.name, "call back")
