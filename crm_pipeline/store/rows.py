"""The plumbing every part of ``DealRepository`` shares: the database and its tenant transactions,
a table's rows created, updated and read as models, and the errors PostgreSQL's constraints are
reported as."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractAsyncContextManager, contextmanager
from typing import Any, TypeVar
from uuid import UUID, uuid4

from pydantic import BaseModel
from sqlalchemy import Row, Select, Table, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_pipeline.models import Actor, RecordType
from crm_pipeline.store.changes import diff_fields
from crm_pipeline.store.database import Database
from crm_pipeline.store.errors import DuplicateRecordError, RecordNotFoundError
from crm_pipeline.store.schema import activities, contacts, opportunities

ReadModel = TypeVar("ReadModel", bound=BaseModel)


class RowAccess:
    """The deal tables through one ``Database``, each call in the scope of the tenant it acts for."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def transaction(
        self, tenant_id: str, *, actor: Actor | None = None
    ) -> AbstractAsyncContextManager[AsyncConnection]:
        """A tenant-scoped transaction for writes that must commit together with other state (the
        sync engine writes a pulled value, its new base and its audit entry at once)."""
        return self._database.tenant_transaction(tenant_id, actor=actor)

    def reads(self, tenant_id: str) -> AbstractAsyncContextManager[None]:
        """The tenant's reads in the block share one read-only transaction (``Database.tenant_reads``)."""
        return self._database.tenant_reads(tenant_id)

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


_RECORD_TYPES = {
    opportunities.name: RecordType.OPPORTUNITY,
    contacts.name: RecordType.CONTACT,
    activities.name: RecordType.ACTIVITY,
}
_FOREIGN_KEY_VIOLATION = "23503"
