"""The status store's links (deal and external record) and bases (what both sides held after the
last sync, per field): the part of ``SyncStatus`` that pairs records, on the scope every part shares."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    Numeric,
    Table,
    Text,
    and_,
    bindparam,
    case,
    cast,
    column,
    delete,
    exists,
    func,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_pipeline.models import Actor
from crm_pipeline.store import DealRepository
from crm_pipeline.store.schema import (
    any_of,
    opportunities,
    sync_audit,
    sync_base,
    sync_errors,
    sync_links,
)
from crm_pipeline.sync.entries import RESTORE_BY_HAND, AuditEntry
from crm_pipeline.sync.status_values import decode_value, encode_value


class StatusScope:
    """One tenant's sync state with one connector: the transactions and the rows' scope every part
    of the status store works through."""

    def __init__(self, repository: DealRepository, tenant_id: str, connector: str) -> None:
        self.repository = repository
        self.tenant_id = tenant_id
        self.connector = connector

    def transaction(self, *, actor: Actor | None = None) -> AbstractAsyncContextManager[AsyncConnection]:
        """A transaction of this tenant (writing as ``actor``), for a record's data and its sync state."""
        return self.repository.transaction(self.tenant_id, actor=actor)

    def reads(self) -> AbstractAsyncContextManager[None]:
        """This tenant's reads in the block (its sync state and its deals) in one read-only transaction."""
        return self.repository.reads(self.tenant_id)

    def _scope(self, table: Table) -> ColumnElement[bool]:
        return (table.c.tenant_id == self.tenant_id) & (table.c.connector == self.connector)


class LinkStore(StatusScope):
    """Links and bases of one tenant and connector."""

    # --- links and bases ----------------------------------------------------------------------

    async def links(self, record_ids: Iterable[UUID] | None = None) -> dict[UUID, str]:
        """record id -> external id, for these records (all linked records when None)."""
        query = select(sync_links.c.record_id, sync_links.c.external_id).where(self._scope(sync_links))
        if record_ids is not None:
            query = query.where(any_of(sync_links.c.record_id, record_ids))
        async with self.transaction() as connection:
            return {row.record_id: row.external_id for row in await connection.execute(query)}

    async def links_after(self, record_id: UUID | None, limit: int) -> dict[UUID, str]:
        """The next ``limit`` links in record-id order after ``record_id`` (from the first when None)."""
        query = select(sync_links.c.record_id, sync_links.c.external_id).where(self._scope(sync_links))
        if record_id is not None:
            query = query.where(sync_links.c.record_id > record_id)
        query = query.order_by(sync_links.c.record_id).limit(limit)
        async with self.transaction() as connection:
            return {row.record_id: row.external_id for row in await connection.execute(query)}

    async def unlinked(self, limit: int) -> tuple[list[UUID], int]:
        """The first ``limit`` live deals (in id order) without a link and without an open ledger
        entry: the ones to create; and how many such deals there are in all. A deal whose create
        failed is retried from the ledger instead, so failing creates cannot hold the first places
        and keep the rest waiting."""
        linked = select(sync_links.c.record_id).where(
            self._scope(sync_links), sync_links.c.record_id == opportunities.c.id
        )
        failed = select(sync_errors.c.record_id).where(
            self._scope(sync_errors),
            sync_errors.c.record_id == cast(opportunities.c.id, Text),
            sync_errors.c.field != RESTORE_BY_HAND,
        )
        query = (
            select(opportunities.c.id, func.count().over().label("total"))
            .where(
                opportunities.c.tenant_id == self.tenant_id,
                opportunities.c.archived_at.is_(None),
                ~exists(linked),
                ~exists(failed),
            )
            .order_by(opportunities.c.id)
            .limit(limit)
        )
        async with self.transaction() as connection:
            rows = (await connection.execute(query)).all()
        return [row.id for row in rows], rows[0].total if rows else 0

    async def set_vanished(self, record_ids: Iterable[UUID], *, vanished: bool) -> None:
        """Queue these links as pending delete (their external record cannot be found), or take
        them off the queue (found again). Nothing is deleted either way."""
        ids = list(record_ids)
        if not ids:
            return
        query = update(sync_links).where(self._scope(sync_links), any_of(sync_links.c.record_id, ids))
        if vanished:  # an archived pair (a delete already approved) is not queued again
            query = query.where(sync_links.c.archived.is_(False))
        async with self.transaction() as connection:
            await connection.execute(
                query.values(vanished_at=func.coalesce(sync_links.c.vanished_at, func.now()) if vanished else None)
            )

    async def relink(self, pairs: Iterable[tuple[UUID, str]]) -> None:
        """Link these records to other external records (the survivors of merges in the CRM),
        keeping their bases: the survivor holds what was synced, plus what the merge filled in."""
        pairs = list(pairs)
        if not pairs:
            return
        async with self.transaction() as connection:
            for record_id, external_id in pairs:
                await connection.execute(
                    update(sync_links)
                    .where(self._scope(sync_links), sync_links.c.record_id == record_id)
                    .values(external_id=external_id, vanished_at=None)
                )

    async def count_links(self) -> int:
        async with self.transaction() as connection:
            return int(await connection.scalar(select(func.count()).where(self._scope(sync_links))) or 0)

    async def pending_deletes(self) -> dict[UUID, str]:
        """record id -> external id of the links whose external record has vanished."""
        query = select(sync_links.c.record_id, sync_links.c.external_id).where(
            self._scope(sync_links), sync_links.c.vanished_at.is_not(None)
        )
        async with self.transaction() as connection:
            return {row.record_id: row.external_id for row in await connection.execute(query)}

    async def links_by_external(self, external_ids: Iterable[str]) -> dict[str, UUID]:
        """external id -> record id, for the linked ones of these external records."""
        query = select(sync_links.c.record_id, sync_links.c.external_id).where(
            self._scope(sync_links), any_of(sync_links.c.external_id, external_ids)
        )
        async with self.transaction() as connection:
            return {row.external_id: row.record_id for row in await connection.execute(query)}

    async def archived(self, record_ids: Iterable[UUID]) -> set[UUID]:
        """Which of these linked records are archived on both sides (deal archived, page trashed)."""
        query = select(sync_links.c.record_id).where(
            self._scope(sync_links), sync_links.c.archived, any_of(sync_links.c.record_id, record_ids)
        )
        async with self.transaction() as connection:
            return set((await connection.scalars(query)).all())

    async def set_archived(self, connection: AsyncConnection, record_id: UUID, *, archived: bool) -> None:
        """In the caller's transaction: record that both sides now hold the pair archived (or live)."""
        await connection.execute(
            update(sync_links)
            .where(self._scope(sync_links), sync_links.c.record_id == record_id)
            .values(archived=archived)
        )

    async def bases(self, record_ids: Iterable[UUID]) -> dict[UUID, dict[str, Any]]:
        """record id -> {field: base value}, decoded to each field's type; fields never synced are absent."""
        query = select(sync_base.c.record_id, sync_base.c.field, sync_base.c.value).where(
            self._scope(sync_base), any_of(sync_base.c.record_id, record_ids)
        )
        bases: dict[UUID, dict[str, Any]] = {}
        async with self.transaction() as connection:
            for row in await connection.execute(query):
                bases.setdefault(row.record_id, {})[row.field] = decode_value(row.field, row.value)
        return bases

    async def settled(self, held: Mapping[UUID, Mapping[str, Any]], fields: Iterable[str]) -> set[UUID]:
        """Which of these live links (neither archived nor vanished) hold exactly their bases:
        per record, the values its external record holds now (``held``: by field, the empty ones
        left out) against its bases of ``fields`` (the mapped ones) that are not empty.

        Compared in PostgreSQL as JSON, so a re-read overlap costs the pass no decoding. Numbers
        are compared without their trailing zeros (the store keeps a scale: 0.25 is based as
        0.250000); any other difference of form (a date's zone written another way) reads as not
        settled, which costs a decision, never an edit."""
        if not held:
            return set()
        document = {
            str(record_id): {name: _settled_form(value) for name, value in values.items()}
            for record_id, values in held.items()
        }
        numeric = sorted({name for values in held.values() for name, value in values.items() if _is_number(value)})
        rows = func.jsonb_each(bindparam("held", document, type_=JSONB)).table_valued(
            column("key", Text), column("value", JSONB)
        )
        record_id = cast(rows.c.key, PG_UUID(as_uuid=True))
        base = sync_base.c.value
        scalar = base.op("#>>", return_type=Text)(literal_column("'{}'"))
        number = func.to_jsonb(cast(func.trim_scale(cast(scalar, Numeric)), Text))
        as_held = case((and_(any_of(sync_base.c.field, numeric), scalar.regexp_match(_NUMBER)), number), else_=base)
        set_bases = func.jsonb_object_agg(sync_base.c.field, as_held).filter(
            func.jsonb_typeof(base) != "null", base.not_in([bindparam(None, empty, type_=JSONB) for empty in _EMPTY])
        )
        bases = (
            select(func.coalesce(set_bases, cast({}, JSONB)))
            .where(
                self._scope(sync_base), sync_base.c.record_id == record_id, any_of(sync_base.c.field, sorted(fields))
            )
            .scalar_subquery()
        )
        query = (
            select(sync_links.c.record_id)
            .join(rows, sync_links.c.record_id == record_id)
            .where(
                self._scope(sync_links),
                sync_links.c.archived.is_(False),
                sync_links.c.vanished_at.is_(None),
                rows.c.value == bases,
            )
        )
        async with self.transaction() as connection:
            return set((await connection.scalars(query)).all())

    async def record_synced(
        self,
        connection: AsyncConnection,
        record_id: UUID,
        external_id: str,
        base: Mapping[str, Any],
        audit: Sequence[AuditEntry] = (),
    ) -> None:
        """In the caller's transaction: link the record, set the given fields' bases, append the
        audit entries, and clear the ledger entries of the record and of its external record."""
        await connection.execute(
            insert(sync_links)
            .values(tenant_id=self.tenant_id, connector=self.connector, record_id=record_id, external_id=external_id)
            .on_conflict_do_nothing(index_elements=["tenant_id", "connector", "record_id"])
        )
        if base:
            statement = insert(sync_base).values(self._base_rows(record_id, base))
            await connection.execute(
                statement.on_conflict_do_update(
                    index_elements=["tenant_id", "connector", "record_id", "field"],
                    set_={"value": statement.excluded.value, "synced_at": func.now()},
                )
            )
        if audit:
            await connection.execute(insert(sync_audit).values(self._audit_rows(record_id, external_id, audit)))
        await connection.execute(
            delete(sync_errors).where(
                self._scope(sync_errors), sync_errors.c.record_id.in_([str(record_id), external_id])
            )
        )

    def _base_rows(self, record_id: UUID, base: Mapping[str, Any]) -> list[dict[str, Any]]:
        """A record's new bases as ``sync_base`` rows, the values as JSON."""
        return [
            {
                "tenant_id": self.tenant_id,
                "connector": self.connector,
                "record_id": record_id,
                "field": field,
                "value": encode_value(value),
            }
            for field, value in base.items()
        ]

    def _audit_rows(self, record_id: UUID, external_id: str, audit: Sequence[AuditEntry]) -> list[dict[str, Any]]:
        """A record's audit entries as ``sync_audit`` rows, the values as JSON."""
        return [
            {
                "tenant_id": self.tenant_id,
                "connector": self.connector,
                "record_id": record_id,
                "external_id": external_id,
                "field": entry.field,
                "old": encode_value(entry.old),
                "new": encode_value(entry.new),
                "side": entry.side.value,
                "outcome": entry.outcome.value,
                "rule": entry.rule.value,
            }
            for entry in audit
        ]


_EMPTY: tuple[object, ...] = ("", [])
"""Besides null, the values the merge reads as no value (``comparable``)."""
_NUMBER = r"^[-+]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][-+]?[0-9]+)?$"
"""A number as the store's JSON writes a Decimal (``SyncStatus.settled`` reads such a base as one)."""


def _is_number(value: Any) -> bool:
    return isinstance(value, Decimal) and value.is_finite()


def _settled_form(value: Any) -> Any:
    """A held value as JSON, a number without trailing zeros (as PostgreSQL's ``trim_scale``)."""
    return format(value.normalize(), "f") if _is_number(value) else encode_value(value)
