"""The plan's public names and signatures, called the plan's way (keywords as the plan names them):
code written against the plan must run unchanged."""

from __future__ import annotations

import importlib
import inspect
from datetime import UTC, datetime
from uuid import uuid4

import pytest

from crm_pipeline.crm import CRMAdapter, NotionAdapter, PostgresAdapter
from crm_pipeline.models import (
    ActivityCreate,
    ContactCreate,
    ContactUpdate,
    OpportunityCreate,
    OpportunityFilter,
    OpportunityRead,
    OpportunityUpdate,
)
from crm_pipeline.sandbox import DEFAULT_TOKEN
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
