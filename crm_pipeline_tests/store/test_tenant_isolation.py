"""Tenant isolation is enforced by PostgreSQL's row-level security, not by the queries.

These tests run raw SQL as the application role, as a buggy query would, and show that without a
tenant setting it sees nothing, and with another tenant's setting it sees and writes only that
tenant's rows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import uuid4

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_pipeline.models import ActivityCreate, ContactCreate, ContactUpdate, OpportunityCreate
from crm_pipeline.store import Database, DealRepository, RecordNotFoundError
from crm_pipeline.store.schema import APP_ROLE, TENANT_SETTING


@asynccontextmanager
async def as_app_role(database: Database, tenant_id: str | None) -> AsyncIterator[AsyncConnection]:
    """A raw transaction as the application role, with or without a tenant setting."""
    async with database.engine.connect() as connection:
        transaction = await connection.begin()
        await connection.execute(text(f"SET LOCAL ROLE {APP_ROLE}"))
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
    async with as_app_role(database, None) as connection:
        for table in ("opportunities", "contacts", "activities", "change_log", "tenants"):
            assert await connection.scalar(text(f"SELECT count(*) FROM crm.{table}")) == 0, table


async def test_with_another_tenants_setting_a_raw_query_sees_only_that_tenant(database: Database, two_tenants) -> None:
    tenant_a, tenant_b = two_tenants
    async with as_app_role(database, tenant_b) as connection:
        rows = (await connection.execute(text("SELECT tenant_id, name FROM crm.opportunities"))).all()
        assert rows == [(tenant_b, f"{tenant_b} deal")]
        updated = await connection.execute(
            text("UPDATE crm.opportunities SET name = 'stolen' WHERE tenant_id = :a"), {"a": tenant_a}
        )
        assert updated.rowcount == 0


async def test_a_raw_insert_for_another_tenant_is_refused(database: Database, two_tenants) -> None:
    tenant_a, tenant_b = two_tenants
    async with as_app_role(database, tenant_b) as connection:
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
    with pytest.raises(DBAPIError, match="row-level security"):
        # Reusing tenant A's id from tenant B collides with a row B cannot see: refused, not leaked.
        await repository.bulk_upsert_opportunities(tenant_b, [OpportunityCreate(id=deal_a.id, name="x")])
    assert (await repository.get_opportunity(tenant_a, deal_a.id)).name == deal_a.name


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
