"""PostgresAdapter: the always-on primary backend, a thin tenant-scoped face of the deal repository."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from uuid import UUID

from crm_pipeline.crm.adapter import AdapterCapabilities, ChangeBatch, CRMAdapter, UpsertOutcome
from crm_pipeline.crm.errors import RecordGoneError
from crm_pipeline.models import (
    ActivityCreate,
    Actor,
    ChangeCursor,
    ChangeRecord,
    ContactCreate,
    ContactUpdate,
    OpportunityCreate,
    OpportunityFilter,
    OpportunityRead,
    OpportunityUpdate,
)
from crm_pipeline.store import DealRepository, RecordNotFoundError


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
        """Every change-log entry stamped after ``since``, read through the change feed (so a late
        commit is never skipped), in feed order."""
        changes: list[ChangeRecord] = []
        cursor: str | None = None
        while True:
            batch = await self.read_changes(cursor)
            if batch.cursor == cursor:
                return changes
            changes.extend(change for change in batch.changes if change.changed_at > since)
            cursor = batch.cursor

    async def read_changes(self, cursor: str | None, *, limit: int = 1_000) -> ChangeBatch:
        """The next page of the change feed (``DealRepository.change_feed``, ``limit`` entries at
        most): never skips a late commit."""
        after = None if cursor is None else ChangeCursor.parse(cursor)
        page = await self.repository.change_feed(self.tenant_id, after, limit=limit)
        return ChangeBatch(page.entries, str(page.cursor))

    async def read_changes_of(self, record_ids: Iterable[UUID], since: str | None, until: str) -> list[ChangeRecord]:
        """These records' changes in a stretch of the change feed already read (``read_changes``'
        cursors ``since`` and ``until``), in feed order (``DealRepository.feed_entries_of``)."""
        after = None if since is None else ChangeCursor.parse(since)
        return await self.repository.feed_entries_of(self.tenant_id, record_ids, after, ChangeCursor.parse(until))

    async def get_opportunities(self, external_ids: Sequence[str]) -> list[OpportunityRead]:
        found = {
            str(record.id): record
            for record in await self.repository.get_opportunities(self.tenant_id, map(UUID, external_ids))
        }
        return [found[external_id] for external_id in external_ids if external_id in found]

    async def write_opportunity(self, external_id: str, data: OpportunityUpdate) -> OpportunityRead:
        try:
            return await self.repository.update_opportunity(self.tenant_id, UUID(external_id), data, actor=self.actor)
        except RecordNotFoundError as error:
            raise RecordGoneError(external_id, str(error)) from error

    async def upsert_opportunities(self, records: Sequence[OpportunityCreate]) -> list[UpsertOutcome]:
        """All or nothing (one transaction): every record's outcome is the same kind of success,
        or every record failed with the store's reason."""
        existing = {
            record.id
            for record in await self.repository.get_opportunities(
                self.tenant_id, (record.id for record in records if record.id is not None)
            )
        }
        await self.repository.bulk_upsert_opportunities(self.tenant_id, records, actor=self.actor)
        return [
            UpsertOutcome(str(record.id), "updated" if record.id in existing else "created", str(record.id))
            for record in records
        ]

    async def archive_opportunity(self, external_id: str) -> OpportunityRead:
        return await self.repository.archive_opportunity(self.tenant_id, UUID(external_id), actor=self.actor)

    async def restore_opportunity(self, external_id: str) -> OpportunityRead:
        return await self.repository.restore_opportunity(self.tenant_id, UUID(external_id), actor=self.actor)
