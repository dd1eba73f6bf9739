"""Tenant isolation is enforced by PostgreSQL's row-level security, not by the queries.

These tests run raw SQL on the application's own connection, as a buggy query would, and show that
without a tenant setting it sees nothing, with another tenant's setting it sees and writes only
that tenant's rows, and that the connection cannot make itself more privileged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import uuid4

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_pipeline.models import ActivityCreate, ContactCreate, ContactUpdate, OpportunityCreate, OpportunityUpdate
from crm_pipeline.store import Database, DealRepository, RecordNotFoundError
from crm_pipeline.store.schema import TENANT_SETTING


@asynccontextmanager
async def as_application(database: Database, tenant_id: str | None) -> AsyncIterator[AsyncConnection]:
    """A raw transaction on the application's connection, with or without a tenant setting."""
    async with database.engine.connect() as connection:
        transaction = await connection.begin()
        if tenant_id is not None:
            await connection.execute(text("SELECT set_config(:s, :t, true)"), {"s": TENANT_SETTING, "t": tenant_id})
        try:
            yield connection
        finally:
            await transaction.rollback()


@pytest.fixture
async def two_tenants(repository: DealRepository) -> tuple[str, str]:
    tenants = (f"a-{uuid4().hex[:12]}", f"b-{uuid4().hex[:12]}")
    for tenant in tenants:
        await repository.register_tenant(tenant)
        await repository.create_opportunity(tenant, OpportunityCreate(name=f"{tenant} deal"))
    return tenants


async def test_without_a_tenant_setting_a_raw_query_sees_no_rows(database: Database, two_tenants) -> None:
    async with as_application(database, None) as connection:
        for table in ("opportunities", "contacts", "activities", "change_log", "tenants"):
            assert await connection.scalar(text(f"SELECT count(*) FROM crm.{table}")) == 0, table


async def test_with_another_tenants_setting_a_raw_query_sees_only_that_tenant(database: Database, two_tenants) -> None:
    tenant_a, tenant_b = two_tenants
    async with as_application(database, tenant_b) as connection:
        rows = (await connection.execute(text("SELECT tenant_id, name FROM crm.opportunities"))).all()
        assert rows == [(tenant_b, f"{tenant_b} deal")]
        updated = await connection.execute(
            text("UPDATE crm.opportunities SET name = 'stolen' WHERE tenant_id = :a"), {"a": tenant_a}
        )
        assert updated.rowcount == 0


async def test_a_raw_insert_for_another_tenant_is_refused(database: Database, two_tenants) -> None:
    tenant_a, tenant_b = two_tenants
    async with as_application(database, tenant_b) as connection:
        with pytest.raises(DBAPIError, match="row-level security"):
            await connection.execute(
                text("INSERT INTO crm.opportunities (id, tenant_id, name, deal_stage) VALUES (:id, :a, 'x', 'x')"),
                {"id": uuid4(), "a": tenant_a},
            )


async def test_the_repository_cannot_reach_another_tenants_record_by_id(
    repository: DealRepository, two_tenants
) -> None:
    tenant_a, tenant_b = two_tenants
    (deal_a,) = await repository.list_opportunities(tenant_a)
    assert await repository.get_opportunity(tenant_b, deal_a.id) is None
    with pytest.raises(RecordNotFoundError):
        await repository.update_opportunity(tenant_b, deal_a.id, OpportunityUpdate(name="stolen"))
    assert await repository.get_opportunity(tenant_a, deal_a.id) == deal_a


async def test_an_id_another_tenant_uses_is_simply_free_for_this_one(repository: DealRepository, two_tenants) -> None:
    """Keys are per tenant: creating a record with another tenant's id succeeds, exactly as with
    an unused id, so it tells nothing about which ids exist elsewhere."""
    tenant_a, tenant_b = two_tenants
    (deal_a,) = await repository.list_opportunities(tenant_a)
    mine = await repository.create_opportunity(tenant_b, OpportunityCreate(id=deal_a.id, name="B's own"))
    assert (mine.id, mine.tenant_id) == (deal_a.id, tenant_b)
    result = await repository.bulk_upsert_opportunities(
        tenant_b, [OpportunityCreate(id=deal_a.id, name="B's own, renamed"), OpportunityCreate(id=uuid4(), name="new")]
    )
    assert (result.created, result.updated) == (1, 1)
    contact = await repository.create_contact(tenant_b, ContactCreate(name="Ada", opportunity_id=deal_a.id))
    assert contact.opportunity_id == deal_a.id  # B's deal of that id
    assert await repository.create_contact(tenant_a, ContactCreate(id=contact.id, name="Grace"))
    assert await repository.get_opportunity(tenant_a, deal_a.id) == deal_a
    assert (await repository.get_opportunity(tenant_b, deal_a.id)).name == "B's own, renamed"


async def test_the_applications_connection_cannot_make_itself_privileged(database: Database, two_tenants) -> None:
    """RESET ROLE, SET ROLE and SET SESSION AUTHORIZATION lead nowhere: the application logs in as
    a role that is no superuser, has no BYPASSRLS and cannot become the tables' owner."""
    tenant_a, tenant_b = two_tenants
    async with database.owner_transaction() as connection:
        owner = await connection.scalar(text("SELECT current_user::text"))
    facts = text("SELECT current_user::text, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
    async with as_application(database, tenant_b) as connection:
        await connection.execute(text("RESET ROLE"))
        role, superuser, bypasses_rls = (await connection.execute(facts)).one()
        assert role != owner and (superuser, bypasses_rls) == (False, False)
        for escalation in (f'SET ROLE "{owner}"', "SET ROLE postgres", f'SET SESSION AUTHORIZATION "{owner}"'):
            with pytest.raises(DBAPIError, match="permission denied|does not exist"):
                async with connection.begin_nested():
                    await connection.execute(text(escalation))
        assert (await connection.execute(facts)).one() == (role, False, False)
        rows = (await connection.execute(text("SELECT DISTINCT tenant_id FROM crm.opportunities"))).all()
        assert rows == [(tenant_b,)]
        with pytest.raises(DBAPIError, match="permission denied for table change_log"):
            async with connection.begin_nested():
                await connection.execute(
                    text(
                        "INSERT INTO crm.change_log (tenant_id, record_type, record_id, actor, changes)"
                        " VALUES (:t, 'opportunity', :id, 'human', '{}')"
                    ),
                    {"t": tenant_b, "id": uuid4()},
                )


async def test_contacts_and_activities_cannot_point_at_another_tenants_deal(
    repository: DealRepository, two_tenants: tuple[str, str]
) -> None:
    """Foreign keys bypass row-level security, so they include the tenant: another tenant's deal
    is as unknown as a deal that does not exist, and tells nothing about which ids exist."""
    tenant_a, tenant_b = two_tenants
    (deal_a,) = await repository.list_opportunities(tenant_a)
    for opportunity_id in (deal_a.id, uuid4()):
        with pytest.raises(RecordNotFoundError, match=f"no opportunity {opportunity_id} for this tenant"):
            await repository.create_activity(tenant_b, ActivityCreate(opportunity_id=opportunity_id, subject="x"))
        with pytest.raises(RecordNotFoundError, match=f"no opportunity {opportunity_id} for this tenant"):
            await repository.create_contact(tenant_b, ContactCreate(name="x", opportunity_id=opportunity_id))
    contact = await repository.create_contact(tenant_b, ContactCreate(name="y"))
    with pytest.raises(RecordNotFoundError):
        await repository.update_contact(tenant_b, contact.id, ContactUpdate(opportunity_id=deal_a.id))
