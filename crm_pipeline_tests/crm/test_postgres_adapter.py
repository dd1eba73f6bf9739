"""PostgresAdapter on the real deal store: every method of the contract plus the bulk and archive extras."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from uuid import UUID, uuid4

import pytest

from crm_pipeline.crm import CRMAdapter, PostgresAdapter
from crm_pipeline.models import (
    ActivityCreate,
    Actor,
    ContactCreate,
    ContactUpdate,
    OpportunityCreate,
    OpportunityFilter,
    OpportunityUpdate,
    RecordType,
)
from crm_pipeline.store import DealRepository

pytestmark = pytest.mark.integration


@pytest.fixture
def adapter(repository: DealRepository, tenant: str) -> PostgresAdapter:
    return PostgresAdapter(repository, tenant)


async def test_postgres_adapter_create_opportunity(
    adapter: PostgresAdapter, repository: DealRepository, tenant: str
) -> None:
    key = uuid4()
    created_id = await adapter.create_opportunity(
        OpportunityCreate(
            id=key,
            name="Acme renewal",
            deal_stage="Qualified",
            estimated_value=Decimal("1200.50"),
        )
    )
    assert isinstance(created_id, str) and created_id == str(key)
    stored = await repository.get_opportunity(tenant, UUID(created_id))
    assert stored is not None and stored.estimated_value == Decimal("1200.50") and stored.tenant_id == tenant


async def test_postgres_adapter_list_opportunities(adapter: PostgresAdapter) -> None:
    for name, stage in [("a", "Lead"), ("b", "Qualified"), ("c", "Qualified")]:
        await adapter.create_opportunity(OpportunityCreate(name=name, deal_stage=stage))
    listed = await adapter.list_opportunities(OpportunityFilter(deal_stage="Qualified", order_by="name"))
    assert [o.name for o in listed] == ["b", "c"]
    assert [
        o.name for o in await adapter.list_opportunities(OpportunityFilter(order_by="name", limit=1, offset=2))
    ] == ["c"]


async def test_update_and_get_apply_only_the_fields_set(
    adapter: PostgresAdapter,
) -> None:
    opportunity_id = await adapter.create_opportunity(OpportunityCreate(name="Acme", estimated_value=Decimal(5)))
    await adapter.update_opportunity(opportunity_id, OpportunityUpdate(deal_stage="Negotiation"))
    fetched = await adapter.get_opportunity(opportunity_id)
    assert fetched is not None and (fetched.deal_stage, fetched.estimated_value) == (
        "Negotiation",
        Decimal(5),
    )
    assert await adapter.get_opportunity(str(uuid4())) is None


async def test_contacts_and_activities(adapter: PostgresAdapter, repository: DealRepository, tenant: str) -> None:
    opportunity_id = await adapter.create_opportunity(OpportunityCreate(name="Acme"))
    contact_id = await adapter.create_contact(ContactCreate(name="Ada", opportunity_id=UUID(opportunity_id)))
    await adapter.update_contact(contact_id, ContactUpdate(email="ada@acme.example"))
    activity_id = await adapter.create_activity(
        ActivityCreate(opportunity_id=UUID(opportunity_id), kind="call", subject="Discovery")
    )
    contact = await repository.get_contact(tenant, UUID(contact_id))
    assert contact is not None and contact.email == "ada@acme.example"
    activities = await repository.list_activities(tenant, opportunity_id=UUID(opportunity_id))
    assert [str(a.id) for a in activities] == [activity_id]


async def test_changes_since_reports_old_and_new_values_by_actor(repository: DealRepository, tenant: str) -> None:
    """Times compared are the database's own (record and entry stamps), never this machine's clock."""
    agent = PostgresAdapter(repository, tenant)
    sync = PostgresAdapter(repository, tenant, actor=Actor.SYNC)
    opportunity_id = await agent.create_opportunity(OpportunityCreate(name="Acme", estimated_value=Decimal(1)))
    await sync.update_opportunity(opportunity_id, OpportunityUpdate(estimated_value=Decimal(2)))
    created = await repository.get_opportunity(tenant, UUID(opportunity_id))
    assert created is not None
    before = created.created_at - timedelta(microseconds=1)

    changes = [c for c in await agent.get_changes_since(before) if c.record_type is RecordType.OPPORTUNITY]

    assert [c.actor for c in changes] == [Actor.AGENT, Actor.SYNC]
    assert changes[1].record_id == opportunity_id
    value = changes[1].changes["estimated_value"]
    assert (Decimal(value.old), Decimal(value.new)) == (Decimal(1), Decimal(2))
    assert await agent.get_changes_since(changes[-1].changed_at) == []  # strictly after the last entry


async def test_bulk_upsert_and_archive(adapter: PostgresAdapter) -> None:
    first, second = (
        OpportunityCreate(id=uuid4(), name="one"),
        OpportunityCreate(id=uuid4(), name="two"),
    )
    await adapter.upsert_opportunities([first])
    await adapter.upsert_opportunities([first.model_copy(update={"name": "one again"}), second])
    assert sorted(o.name for o in await adapter.list_opportunities(OpportunityFilter())) == ["one again", "two"]

    archived = await adapter.archive_opportunity(str(second.id))
    assert archived.archived_at is not None
    assert [o.name for o in await adapter.list_opportunities(OpportunityFilter(archived=True))] == ["two"]


def test_the_adapter_meets_the_contract(adapter: PostgresAdapter) -> None:
    assert isinstance(adapter, CRMAdapter)
    assert adapter.capabilities.per_field_timestamps and adapter.capabilities.old_values_in_changes
