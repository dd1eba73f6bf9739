"""PostgresAdapter: the always-on primary backend, a thin tenant-scoped face of the deal repository."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from crm_pipeline.crm.adapter import AdapterCapabilities, CRMAdapter
from crm_pipeline.models import (
    ActivityCreate,
    Actor,
    ChangeRecord,
    ContactCreate,
    ContactUpdate,
    OpportunityCreate,
    OpportunityFilter,
    OpportunityRead,
    OpportunityUpdate,
)
from crm_pipeline.store import DealRepository


class PostgresAdapter(CRMAdapter):
    """Every method delegates to the repository for one tenant; no SQL lives here.

    `actor` says who this adapter writes as: the agent's own writes use the default, the sync
    engine passes `Actor.SYNC` so its writes are told apart in the change log.
    """

    capabilities = AdapterCapabilities(per_field_timestamps=True, old_values_in_changes=True, bulk_writes=True)

    def __init__(self, repository: DealRepository, tenant_id: str, *, actor: Actor = Actor.AGENT) -> None:
        self.repository = repository
        self.tenant_id = tenant_id
        self.actor = actor

    async def create_opportunity(self, opportunity: OpportunityCreate) -> str:
        created = await self.repository.create_opportunity(self.tenant_id, opportunity, actor=self.actor)
        return str(created.id)

    async def update_opportunity(self, external_id: str, data: OpportunityUpdate) -> None:
        await self.repository.update_opportunity(self.tenant_id, UUID(external_id), data, actor=self.actor)

    async def get_opportunity(self, external_id: str) -> OpportunityRead | None:
        return await self.repository.get_opportunity(self.tenant_id, UUID(external_id))

    async def list_opportunities(self, filters: OpportunityFilter) -> list[OpportunityRead]:
        return await self.repository.list_opportunities(self.tenant_id, filters)

    async def create_contact(self, contact: ContactCreate) -> str:
        created = await self.repository.create_contact(self.tenant_id, contact, actor=self.actor)
        return str(created.id)

    async def update_contact(self, external_id: str, data: ContactUpdate) -> None:
        await self.repository.update_contact(self.tenant_id, UUID(external_id), data, actor=self.actor)

    async def create_activity(self, activity: ActivityCreate) -> str:
        created = await self.repository.create_activity(self.tenant_id, activity, actor=self.actor)
        return str(created.id)

    async def get_changes_since(self, since: datetime) -> list[ChangeRecord]:
        return await self.repository.changes_since(self.tenant_id, since)

    async def upsert_opportunities(self, records: Sequence[OpportunityCreate]) -> None:
        await self.repository.bulk_upsert_opportunities(self.tenant_id, records, actor=self.actor)

    async def archive_opportunity(self, external_id: str) -> OpportunityRead:
        return await self.repository.archive_opportunity(self.tenant_id, UUID(external_id), actor=self.actor)
