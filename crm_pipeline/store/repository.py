"""DealRepository: tenant-scoped reads and writes of opportunities, contacts and activities.

PostgreSQL records every write, in the writing transaction, as a change-log entry: which fields
changed (old → new), when, and the actor the repository names for the transaction. The sync engine
reads those per-field changes for last-write-wins; people read them as an audit trail.
The repository is layered: the shared plumbing (``rows.RowAccess``), the bulk upsert of the sync
path (``bulk_upsert``) and the change log's reads (``change_log``); the records' own reads and
writes are here.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, func, select, text, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_pipeline.models import (
    ActivityCreate,
    ActivityRead,
    Actor,
    ContactCreate,
    ContactRead,
    ContactUpdate,
    OpportunityCreate,
    OpportunityFilter,
    OpportunityRead,
    OpportunityUpdate,
)
from crm_pipeline.store.bulk_upsert import BULK_BATCH_SIZE, BulkUpsert, BulkUpsertResult
from crm_pipeline.store.change_log import ChangeLogReads
from crm_pipeline.store.schema import activities, any_of, contacts, opportunities, tenants

__all__ = ["BULK_BATCH_SIZE", "BulkUpsertResult", "DealRepository"]


class DealRepository(BulkUpsert, ChangeLogReads):
    """The deal store's only door. Every method takes the tenant it acts for."""

    # -- tenants -------------------------------------------------------------------------------

    async def register_tenant(self, tenant_id: str, name: str | None = None) -> None:
        """Make a tenant known (idempotent). Tenant ids are lowercase slugs: [a-z0-9][a-z0-9_-]*."""
        async with self._database.owner_transaction() as connection:
            await connection.execute(
                postgresql.insert(tenants)
                .values(id=tenant_id, name=name or tenant_id)
                .on_conflict_do_nothing(index_elements=["id"])
            )

    # -- opportunities -------------------------------------------------------------------------

    async def create_opportunity(
        self, tenant_id: str, data: OpportunityCreate, *, actor: Actor = Actor.AGENT
    ) -> OpportunityRead:
        return await self._create(tenant_id, opportunities, data, actor, OpportunityRead)

    async def update_opportunity(
        self, tenant_id: str, opportunity_id: UUID, data: OpportunityUpdate, *, actor: Actor = Actor.AGENT
    ) -> OpportunityRead:
        """Apply the explicitly set fields; a write that changes nothing records nothing."""
        return await self._update(tenant_id, opportunities, opportunity_id, data.changes(), actor, OpportunityRead)

    async def get_opportunity(self, tenant_id: str, opportunity_id: UUID) -> OpportunityRead | None:
        return await self._get(tenant_id, opportunities, opportunity_id, OpportunityRead)

    async def get_opportunities(self, tenant_id: str, opportunity_ids: Iterable[UUID]) -> list[OpportunityRead]:
        """The opportunities with these ids, archived ones included, in id order; unknown ids are left out."""
        ids = list(dict.fromkeys(opportunity_ids))
        if not ids:
            return []
        query = select(opportunities).where(any_of(opportunities.c.id, ids)).order_by(opportunities.c.id)
        return await self._fetch(tenant_id, query, OpportunityRead)

    async def create_opportunity_in(
        self, connection: AsyncConnection, tenant_id: str, data: OpportunityCreate
    ) -> OpportunityRead:
        """``create_opportunity`` inside the caller's tenant transaction (see ``transaction``)."""
        return await self._create_in(connection, tenant_id, opportunities, data, OpportunityRead)

    async def update_opportunity_in(
        self, connection: AsyncConnection, opportunity_id: UUID, data: OpportunityUpdate
    ) -> OpportunityRead:
        """``update_opportunity`` inside the caller's tenant transaction (see ``transaction``)."""
        return await self._update_in(connection, opportunities, opportunity_id, data.changes(), OpportunityRead)

    async def list_opportunities(
        self, tenant_id: str, criteria: OpportunityFilter | None = None
    ) -> list[OpportunityRead]:
        criteria = criteria or OpportunityFilter()
        query = select(opportunities)
        if criteria.deal_stage is not None:
            stages = [criteria.deal_stage] if isinstance(criteria.deal_stage, str) else criteria.deal_stage
            query = query.where(opportunities.c.deal_stage.in_(stages))
        if criteria.updated_since is not None:
            query = query.where(opportunities.c.updated_at > criteria.updated_since)
        if criteria.archived is not None:
            archived_at = opportunities.c.archived_at
            query = query.where(archived_at.is_not(None) if criteria.archived else archived_at.is_(None))
        order: ColumnElement[Any] = opportunities.c[criteria.order_by]
        tie_breaker: ColumnElement[Any] = opportunities.c.id
        if criteria.descending:
            order, tie_breaker = order.desc(), tie_breaker.desc()
        query = query.order_by(order, tie_breaker).limit(criteria.limit).offset(criteria.offset)
        return await self._fetch(tenant_id, query, OpportunityRead)

    async def search_opportunities(self, tenant_id: str, name: str | None = None) -> list[OpportunityRead]:
        """Every opportunity whose name contains ``name`` in any case (all when None), archived ones
        included, by name: what an operator looks a deal up by."""
        query = select(opportunities).order_by(func.lower(opportunities.c.name), opportunities.c.id)
        if name:
            query = query.where(opportunities.c.name.icontains(name, autoescape=True))
        return await self._fetch(tenant_id, query, OpportunityRead)

    async def opportunity_names(self, tenant_id: str, opportunity_ids: Iterable[UUID]) -> dict[UUID, str]:
        """id -> name of these opportunities (archived ones included); unknown ids are left out."""
        ids = list(dict.fromkeys(opportunity_ids))
        if not ids:
            return {}
        query = select(opportunities.c.id, opportunities.c.name).where(any_of(opportunities.c.id, ids))
        async with self._database.tenant_transaction(tenant_id) as connection:
            return {row.id: row.name for row in await connection.execute(query)}

    async def archive_opportunity(
        self, tenant_id: str, opportunity_id: UUID, *, actor: Actor = Actor.AGENT
    ) -> OpportunityRead:
        """Soft-delete: set `archived_at` (nothing is ever hard-deleted). Archiving twice is a no-op."""
        async with self._database.tenant_transaction(tenant_id, actor=actor) as connection:
            row = (
                await connection.execute(
                    update(opportunities)
                    .where(opportunities.c.id == opportunity_id, opportunities.c.archived_at.is_(None))
                    .values(archived_at=text("now()"))
                    .returning(opportunities)
                )
            ).one_or_none()
            if row is None:
                row = await self._select_for_update(connection, opportunities, opportunity_id)
        return OpportunityRead.model_validate(row._mapping)

    async def restore_opportunity(
        self, tenant_id: str, opportunity_id: UUID, *, actor: Actor = Actor.AGENT
    ) -> OpportunityRead:
        """Undo an archive: clear `archived_at`. Restoring a live opportunity is a no-op."""
        async with self._database.tenant_transaction(tenant_id, actor=actor) as connection:
            return await self.set_archived_in(connection, opportunity_id, archived=False)

    async def set_archived_in(
        self, connection: AsyncConnection, opportunity_id: UUID, *, archived: bool
    ) -> OpportunityRead:
        """Archive or restore inside the caller's tenant transaction (see ``transaction``)."""
        current = await self._select_for_update(connection, opportunities, opportunity_id)
        if (current.archived_at is not None) == archived:
            return OpportunityRead.model_validate(current._mapping)
        value = text("now()") if archived else None
        row = (
            await connection.execute(
                update(opportunities)
                .where(opportunities.c.id == opportunity_id)
                .values(archived_at=value)
                .returning(opportunities)
            )
        ).one()
        return OpportunityRead.model_validate(row._mapping)

    # -- contacts ------------------------------------------------------------------------------

    async def create_contact(self, tenant_id: str, data: ContactCreate, *, actor: Actor = Actor.AGENT) -> ContactRead:
        return await self._create(tenant_id, contacts, data, actor, ContactRead)

    async def update_contact(
        self, tenant_id: str, contact_id: UUID, data: ContactUpdate, *, actor: Actor = Actor.AGENT
    ) -> ContactRead:
        return await self._update(tenant_id, contacts, contact_id, data.changes(), actor, ContactRead)

    async def get_contact(self, tenant_id: str, contact_id: UUID) -> ContactRead | None:
        return await self._get(tenant_id, contacts, contact_id, ContactRead)

    async def list_contacts(
        self, tenant_id: str, *, opportunity_id: UUID | None = None, limit: int = 100, offset: int = 0
    ) -> list[ContactRead]:
        query = select(contacts).order_by(contacts.c.created_at, contacts.c.id).limit(limit).offset(offset)
        if opportunity_id is not None:
            query = query.where(contacts.c.opportunity_id == opportunity_id)
        return await self._fetch(tenant_id, query, ContactRead)

    # -- activities ----------------------------------------------------------------------------

    async def create_activity(
        self, tenant_id: str, data: ActivityCreate, *, actor: Actor = Actor.AGENT
    ) -> ActivityRead:
        """Record an activity (append-only); `occurred_at` defaults to now."""
        if data.occurred_at is None:
            data = data.model_copy(update={"occurred_at": datetime.now().astimezone()})
        return await self._create(tenant_id, activities, data, actor, ActivityRead)

    async def list_activities(
        self, tenant_id: str, *, opportunity_id: UUID | None = None, limit: int = 100, offset: int = 0
    ) -> list[ActivityRead]:
        query = select(activities).order_by(activities.c.occurred_at, activities.c.id).limit(limit).offset(offset)
        if opportunity_id is not None:
            query = query.where(activities.c.opportunity_id == opportunity_id)
        return await self._fetch(tenant_id, query, ActivityRead)

    async def get_activities(self, tenant_id: str, activity_ids: Iterable[UUID]) -> list[ActivityRead]:
        """The activities with these ids, in the order they happened; unknown ids are left out."""
        ids = list(dict.fromkeys(activity_ids))
        if not ids:
            return []
        query = (
            select(activities).where(any_of(activities.c.id, ids)).order_by(activities.c.occurred_at, activities.c.id)
        )
        return await self._fetch(tenant_id, query, ActivityRead)
