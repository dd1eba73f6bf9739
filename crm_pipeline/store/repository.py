"""DealRepository: tenant-scoped reads and writes of opportunities, contacts and activities.

PostgreSQL records every write, in the writing transaction, as a change-log entry: which fields
changed (old → new), when, and the actor the repository names for the transaction. The sync engine
reads those per-field changes for last-write-wins; people read them as an audit trail.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID, uuid4

from pydantic import BaseModel, TypeAdapter
from pydantic_core import to_json
from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    Table,
    Text,
    cast,
    func,
    insert,
    literal,
    literal_column,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import aggregate_order_by, distinct_on
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_pipeline.batches import chunks
from crm_pipeline.models import (
    ActivityCreate,
    ActivityRead,
    Actor,
    ChangeCursor,
    ChangeFeedPage,
    ChangeRecord,
    ContactCreate,
    ContactRead,
    ContactUpdate,
    OpportunityCreate,
    OpportunityFilter,
    OpportunityRead,
    OpportunityUpdate,
    RecordType,
)
from crm_pipeline.store.changes import diff_fields
from crm_pipeline.store.database import Database
from crm_pipeline.store.errors import DuplicateRecordError, RecordNotFoundError
from crm_pipeline.store.schema import XID8, activities, any_of, change_log, contacts, opportunities, tenants

ReadModel = TypeVar("ReadModel", bound=BaseModel)

BULK_BATCH_SIZE = 1_000


@dataclass(frozen=True)
class BulkUpsertResult:
    """How many rows a bulk upsert created, changed, and found already up to date."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def __add__(self, other: BulkUpsertResult) -> BulkUpsertResult:
        return BulkUpsertResult(
            self.created + other.created, self.updated + other.updated, self.unchanged + other.unchanged
        )


class DealRepository:
    """The deal store's only door. Every method takes the tenant it acts for."""

    def __init__(self, database: Database) -> None:
        self._database = database

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

    def transaction(
        self, tenant_id: str, *, actor: Actor | None = None
    ) -> AbstractAsyncContextManager[AsyncConnection]:
        """A tenant-scoped transaction for writes that must commit together with other state (the
        sync engine writes a pulled value, its new base and its audit entry at once)."""
        return self._database.tenant_transaction(tenant_id, actor=actor)

    def reads(self, tenant_id: str) -> AbstractAsyncContextManager[None]:
        """The tenant's reads in the block share one read-only transaction (``Database.tenant_reads``)."""
        return self._database.tenant_reads(tenant_id)

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

    async def bulk_upsert_opportunities(
        self,
        tenant_id: str,
        records: Sequence[OpportunityCreate],
        *,
        actor: Actor = Actor.SYNC,
        batch_size: int = BULK_BATCH_SIZE,
    ) -> BulkUpsertResult:
        """Create or update many opportunities keyed by their id (the sync key), all or nothing.

        New rows take every field (with defaults); existing rows take only the fields that were
        explicitly set on the record. Each batch costs two round trips (read the current rows,
        upsert the changed ones; the database logs their changes), whatever its size, and the whole
        call is one transaction: a failure leaves the database exactly as it was.
        """
        ids = [record.id for record in records]
        for index, record_id in enumerate(ids):
            if record_id is None:
                raise ValueError(f"bulk upsert record {index} has no id: the sync path must give the sync key")
        if len(set(ids)) != len(ids):
            raise ValueError("bulk upsert got the same id more than once; merge those records first")
        total = BulkUpsertResult()
        async with self._database.tenant_transaction(tenant_id, actor=actor) as connection:
            for batch in chunks(records, batch_size):
                total += await self._upsert_batch(connection, tenant_id, batch)
        return total

    async def _upsert_batch(
        self, connection: AsyncConnection, tenant_id: str, batch: Sequence[OpportunityCreate]
    ) -> BulkUpsertResult:
        current = {
            row.id: row._mapping
            for row in await connection.execute(
                select(opportunities).where(opportunities.c.id.in_([r.id for r in batch])).with_for_update()
            )
        }
        rows: list[dict[str, Any]] = []
        created = 0
        for record in batch:
            assert record.id is not None
            old = current.get(record.id)
            if old is None:
                row = record.model_dump(exclude={"id"})
                created += 1
            else:
                values = record.changes()
                if not diff_fields(old, values):
                    continue
                row = {**old, **values}  # keys outside the table (created_at, updated_at) are ignored
            rows.append({**row, "id": record.id, "tenant_id": tenant_id})
        if rows:
            await connection.execute(_UPSERT_OPPORTUNITIES, {"rows": to_json(rows).decode()})
        return BulkUpsertResult(created=created, updated=len(rows) - created, unchanged=len(batch) - len(rows))

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

    # -- change log ----------------------------------------------------------------------------

    async def changes_since(
        self,
        tenant_id: str,
        since: datetime,
        *,
        record_type: RecordType | None = None,
        limit: int | None = None,
    ) -> list[ChangeRecord]:
        """Change-log entries written strictly after `since`, oldest first (by sequence).

        For audits and time windows. A transaction stamps its entries with its start time, so one
        that commits late can hold entries older than some already read: an incremental reader
        must follow `change_feed` instead, which never skips them.
        """
        query = select(change_log).where(change_log.c.changed_at > since)
        if record_type is not None:
            query = query.where(change_log.c.record_type == record_type.value)
        if limit is not None:
            query = query.order_by(change_log.c.sequence).limit(limit)
        entries, _ = await self._read_changes(tenant_id, query, "sequence")
        return entries

    async def change_feed(
        self, tenant_id: str, after: ChangeCursor | None = None, *, limit: int = 1_000
    ) -> ChangeFeedPage:
        """The next entries after `after`, for a reader that must see every change exactly once.

        Entries come in (transaction id, sequence) order, and only from transactions older than
        the oldest one still running anywhere on the server: those can no longer add entries
        before the cursor. An entry written by a transaction that commits late is therefore
        delivered late, never skipped. A long-running transaction holds the feed back until it
        ends.
        """
        after = after or ChangeCursor()
        position = tuple_(change_log.c.txid, change_log.c.sequence) > tuple_(
            cast(literal(str(after.txid)), XID8()), literal(after.sequence)
        )
        query = (
            select(change_log)
            .where(change_log.c.txid < func.pg_snapshot_xmin(func.pg_current_snapshot()), position)
            .order_by(change_log.c.txid, change_log.c.sequence)
            .limit(limit)
        )
        entries, last_txid = await self._read_changes(tenant_id, query, "txid", "sequence")
        if not entries:
            return ChangeFeedPage(entries=[], cursor=after)
        assert last_txid is not None
        return ChangeFeedPage(entries=entries, cursor=ChangeCursor(txid=last_txid, sequence=entries[-1].sequence))

    async def latest_changes(self, tenant_id: str, opportunity_ids: Iterable[UUID]) -> dict[UUID, ChangeRecord]:
        """Each of these opportunities' newest change-log entry: who last changed which fields, and
        when. An opportunity without one (written with the triggers off) is left out."""
        ids = list(dict.fromkeys(opportunity_ids))
        if not ids:
            return {}
        query = (
            select(change_log)
            .where(change_log.c.record_type == RecordType.OPPORTUNITY.value, any_of(change_log.c.record_id, ids))
            .ext(distinct_on(change_log.c.record_id))
            .order_by(change_log.c.record_id, change_log.c.sequence.desc())
        )
        entries, _ = await self._read_changes(tenant_id, query, "sequence")
        return {UUID(entry.record_id): entry for entry in entries}

    async def opportunities_without_history(self, tenant_id: str) -> list[UUID]:
        """Opportunities with no change-log entry: written while their owner had switched the
        change-capture triggers off, so unaudited."""
        logged = select(change_log.c.record_id).where(change_log.c.record_type == RecordType.OPPORTUNITY.value)
        query = select(opportunities.c.id).where(opportunities.c.id.not_in(logged)).order_by(opportunities.c.id)
        async with self._database.tenant_transaction(tenant_id) as connection:
            return list((await connection.scalars(query)).all())

    async def _read_changes(
        self, tenant_id: str, query: Select[Any], *order_by: str
    ) -> tuple[list[ChangeRecord], int | None]:
        """Run a change-log query; return its entries in `order_by` order and the highest txid.

        PostgreSQL renders the entries as one JSON array that pydantic validates in one pass: no
        per-row Python objects in between, which dominated long reads.
        """
        entries = query.subquery("entries")
        record = func.to_jsonb(literal_column("entries")).op("-")(literal("txid"))
        in_order = func.jsonb_agg(aggregate_order_by(record, *(entries.c[name] for name in order_by)))
        document_and_last = select(func.coalesce(in_order.cast(Text), "[]"), func.max(entries.c.txid).cast(Text))
        async with self._database.tenant_transaction(tenant_id) as connection:
            document, last_txid = (await connection.execute(document_and_last.select_from(entries))).one()
        return _CHANGE_RECORDS.validate_json(document), None if last_txid is None else int(last_txid)

    # -- shared plumbing -----------------------------------------------------------------------

    async def _create(
        self,
        tenant_id: str,
        table: Table,
        data: BaseModel,
        actor: Actor,
        read_model: type[ReadModel],
    ) -> ReadModel:
        async with self._database.tenant_transaction(tenant_id, actor=actor) as connection:
            return await self._create_in(connection, tenant_id, table, data, read_model)

    @staticmethod
    async def _create_in(
        connection: AsyncConnection, tenant_id: str, table: Table, data: BaseModel, read_model: type[ReadModel]
    ) -> ReadModel:
        values = data.model_dump(exclude={"id"})
        record_id = getattr(data, "id", None) or uuid4()
        with _references_checked(table, values), _duplicate_refused(table, record_id):
            row = (
                await connection.execute(
                    insert(table).values(id=record_id, tenant_id=tenant_id, **values).returning(table)
                )
            ).one()
        return read_model.model_validate(row._mapping)

    async def _update(
        self,
        tenant_id: str,
        table: Table,
        record_id: UUID,
        values: Mapping[str, Any],
        actor: Actor,
        read_model: type[ReadModel],
    ) -> ReadModel:
        async with self._database.tenant_transaction(tenant_id, actor=actor) as connection:
            return await self._update_in(connection, table, record_id, values, read_model)

    async def _update_in(
        self,
        connection: AsyncConnection,
        table: Table,
        record_id: UUID,
        values: Mapping[str, Any],
        read_model: type[ReadModel],
    ) -> ReadModel:
        current = await self._select_for_update(connection, table, record_id)
        changes = diff_fields(current._mapping, values)
        if not changes:
            return read_model.model_validate(current._mapping)
        with _references_checked(table, values):
            row = (
                await connection.execute(
                    update(table)
                    .where(table.c.id == record_id)
                    .values(**{field: values[field] for field in changes})
                    .returning(table)
                )
            ).one()
        return read_model.model_validate(row._mapping)

    async def _get(
        self, tenant_id: str, table: Table, record_id: UUID, read_model: type[ReadModel]
    ) -> ReadModel | None:
        found = await self._fetch(tenant_id, select(table).where(table.c.id == record_id), read_model)
        return found[0] if found else None

    async def _fetch(self, tenant_id: str, query: Select[Any], read_model: type[ReadModel]) -> list[ReadModel]:
        """Run a read in the tenant's scope and validate each row into `read_model`."""
        async with self._database.tenant_transaction(tenant_id) as connection:
            rows = (await connection.execute(query)).all()
        return [read_model.model_validate(row._mapping) for row in rows]

    @staticmethod
    async def _select_for_update(connection: AsyncConnection, table: Table, record_id: UUID) -> Row[Any]:
        row = (await connection.execute(select(table).where(table.c.id == record_id).with_for_update())).one_or_none()
        if row is None:
            raise RecordNotFoundError(f"no {table.name} row with id {record_id} for this tenant")
        return row


@contextmanager
def _references_checked(table: Table, values: Mapping[str, Any]) -> Iterator[None]:
    """A reference to an opportunity this tenant does not have is "not found", whether it exists
    for another tenant or not at all (the keys include the tenant, so both fail alike)."""
    try:
        yield
    except IntegrityError as error:
        if getattr(error.orig, "sqlstate", None) != _FOREIGN_KEY_VIOLATION:
            raise
        raise RecordNotFoundError(
            f"{table.name}: no opportunity {values.get('opportunity_id')} for this tenant"
        ) from None


@contextmanager
def _duplicate_refused(table: Table, record_id: UUID) -> Iterator[None]:
    """A create whose id is taken is the caller's mistake, reported as such (not a raw
    IntegrityError); other constraint violations pass through."""
    try:
        yield
    except IntegrityError as error:
        diagnostic = getattr(error.orig, "diag", None)
        if getattr(diagnostic, "constraint_name", None) != f"{table.name}_pkey":
            raise
        record_type = _RECORD_TYPES[table.name]
        raise DuplicateRecordError(f"{record_type.value} {record_id} already exists: update it instead") from None


def _recordset(columns: Iterable[Any]) -> str:
    """The column list of a jsonb_to_recordset() alias, typed like the table's columns."""
    dialect = PGDialect()  # type: ignore[no-untyped-call]  # SQLAlchemy leaves the constructor unannotated
    return ", ".join(f"{column.name} {column.type.compile(dialect=dialect)}" for column in columns)


def _build_upsert(table: Table) -> Any:
    columns = [column for column in table.columns if column.name not in {"created_at", "updated_at"}]
    names = ", ".join(column.name for column in columns)
    assignments = ", ".join(
        f"{column.name} = EXCLUDED.{column.name}" for column in columns if column.name not in {"id", "tenant_id"}
    )
    return text(
        f"INSERT INTO {table.schema}.{table.name} ({names}) "
        f"SELECT {names} FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS x({_recordset(columns)}) "
        f"ON CONFLICT (tenant_id, id) DO UPDATE SET {assignments}"
    )


_UPSERT_OPPORTUNITIES = _build_upsert(opportunities)
_RECORD_TYPES = {
    opportunities.name: RecordType.OPPORTUNITY,
    contacts.name: RecordType.CONTACT,
    activities.name: RecordType.ACTIVITY,
}
_CHANGE_RECORDS = TypeAdapter(list[ChangeRecord])
_FOREIGN_KEY_VIOLATION = "23503"
