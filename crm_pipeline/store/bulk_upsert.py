"""Bulk upsert of opportunities keyed by their id, which is also the sync key: the sync path's
writes, two round trips a batch whatever its size, one transaction a call."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic_core import to_json
from sqlalchemy import Table, select, text
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_pipeline.batches import chunks
from crm_pipeline.models import Actor, OpportunityCreate
from crm_pipeline.store.changes import diff_fields
from crm_pipeline.store.rows import RowAccess
from crm_pipeline.store.schema import opportunities

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


class BulkUpsert(RowAccess):
    """The opportunities' bulk upsert."""

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
