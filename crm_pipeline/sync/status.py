"""The sync's state in PostgreSQL (migrations 0004 and 0007), for one tenant and connector.

Links (deal ⇄ external record), bases (what both sides held after the last successful sync, per
field), watermarks per direction, the error ledger, the audit log, and what the adapter found out
about the connection (``ConnectionState``). Writes that cover a deal's
data take the caller's transaction, so a pulled value, its new base and its audit entry commit
together or not at all; nothing here is cached, so a new process continues where the last stopped.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import TypeAdapter
from pydantic_core import to_jsonable_python
from sqlalchemy import ColumnElement, Row, Table, Text, cast, delete, exists, func, select, text, update
from sqlalchemy.dialects.postgresql import distinct_on, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_pipeline.batches import chunks
from crm_pipeline.models import OPPORTUNITY_FIELDS, Actor, OpportunityRead
from crm_pipeline.store import DealRepository
from crm_pipeline.store.schema import (
    any_of,
    opportunities,
    sync_activities,
    sync_audit,
    sync_base,
    sync_connections,
    sync_errors,
    sync_links,
    sync_watermarks,
)
from crm_pipeline.sync.entries import RESTORE_BY_HAND, AuditEntry, LedgerEntry, QueuedActivity
from crm_pipeline.sync.model import Outcome, Rule, Side

__all__ = [
    "RESTORE_BY_HAND",
    "AuditEntry",
    "ConnectionState",
    "DealLink",
    "Direction",
    "LedgerEntry",
    "LinkState",
    "OpenFailure",
    "SyncStatus",
    "SyncedField",
    "decode_value",
    "encode_value",
]

_FIELD_TYPES: dict[str, TypeAdapter[Any]] = {
    name: TypeAdapter(OpportunityRead.model_fields[name].rebuild_annotation()) for name in OPPORTUNITY_FIELDS
}


def encode_value(value: Any) -> Any:
    """A field value as JSON, as the change log stores it (decimals as text, dates ISO)."""
    return to_jsonable_python(value)


def decode_value(field: str, value: Any) -> Any:
    """A field value read back from JSON into the field's own type (Decimal, date …)."""
    return None if value is None else _FIELD_TYPES[field].validate_python(value)


class Direction(enum.StrEnum):
    OUTBOUND = "outbound"
    """The primary's change-feed cursor: everything before it has been planned."""
    INBOUND = "inbound"
    """The external side's change cursor (for Notion an edit time, read back with an overlap)."""
    TRASH = "trash"
    """The external side's trash cursor, read less often than every pass (a request of its own)."""
    RECONCILE = "reconcile"
    """The last deal id the rolling reconciliation read; it starts over after the last one."""


@dataclass(frozen=True)
class ConnectionState:
    """An adapter's discovery as kept (``Discovery`` as JSON) and when it was last asked in full."""

    discovery: dict[str, Any]
    checked_at: datetime


@dataclass(frozen=True)
class OpenFailure:
    """A ledger entry waiting for the next pass's retry: how often it failed, first and last when."""

    entry: LedgerEntry
    attempts: int
    first_seen_at: datetime
    last_seen_at: datetime


class LinkState(enum.StrEnum):
    """Where a deal stands with its external record, as an operator asks it."""

    LINKED = "linked"
    """Linked to its external record; nothing waits for a retry."""
    NOT_LINKED = "not yet linked"
    """No external record yet: the next pass creates (or finds) it."""
    FAILED = "failed"
    """A write of the deal or of its external record failed and waits in the ledger."""
    MISSING = "missing"
    """Reconciliation could not find the external record: queued for a person to approve a delete."""
    TRASHED = "trashed"
    """The deal is archived (its external record trashed, or about to be)."""


@dataclass(frozen=True)
class DealLink:
    """What the sync's state holds of one deal: its link, if any, and its open ledger entries
    (the deal's own and its external record's)."""

    record_id: UUID
    external_id: str | None = None
    linked_at: datetime | None = None
    archived: bool = False
    vanished_at: datetime | None = None
    failures: tuple[OpenFailure, ...] = ()

    def state(self, *, deal_archived: bool) -> LinkState:
        if self.archived or deal_archived:
            return LinkState.TRASHED
        if self.vanished_at is not None:
            return LinkState.MISSING
        if self.failures:
            return LinkState.FAILED
        return LinkState.LINKED if self.external_id is not None else LinkState.NOT_LINKED


@dataclass(frozen=True)
class SyncedField:
    """One field of one deal as the sync last left it: its base (the value both sides last agreed
    on; ``has_base`` False before any) and the newest write the sync decided for it, if any."""

    field: str
    has_base: bool = False
    base: Any = None
    synced_at: datetime | None = None
    last_write: AuditEntry | None = None
    written_at: datetime | None = None


class SyncStatus:
    """One tenant's sync state with one connector."""

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

    # --- one pass at a time -------------------------------------------------------------------

    @asynccontextmanager
    async def pass_lock(self) -> AsyncIterator[bool]:
        """Hold this tenant's sync lock for the block; yields False at once when another pass has it.

        A transaction-scoped advisory lock on a connection of its own: it never writes, so it
        gets no transaction id and does not hold the change feed back.
        """
        async with self.transaction() as connection:
            key = f"crm_pipeline.sync:{self.tenant_id}:{self.connector}"
            acquired = await connection.scalar(text("SELECT pg_try_advisory_xact_lock(hashtext(:key))"), {"key": key})
            yield bool(acquired)

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
            rows = [
                {
                    "tenant_id": self.tenant_id,
                    "connector": self.connector,
                    "record_id": record_id,
                    "field": field,
                    "value": encode_value(value),
                }
                for field, value in base.items()
            ]
            statement = insert(sync_base).values(rows)
            await connection.execute(
                statement.on_conflict_do_update(
                    index_elements=["tenant_id", "connector", "record_id", "field"],
                    set_={"value": statement.excluded.value, "synced_at": func.now()},
                )
            )
        if audit:
            await connection.execute(
                insert(sync_audit).values(
                    [
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
                )
            )
        await connection.execute(
            delete(sync_errors).where(
                self._scope(sync_errors), sync_errors.c.record_id.in_([str(record_id), external_id])
            )
        )

    # --- activities to append ------------------------------------------------------------------

    async def queue_activities(self, activities: Iterable[QueuedActivity]) -> None:
        """Queue activities to be appended externally; known ones stay as they are (attempted or not)."""
        rows = [
            {
                "tenant_id": self.tenant_id,
                "connector": self.connector,
                "activity_id": activity.activity_id,
                "opportunity_id": activity.deal_id,
                "occurred_at": activity.occurred_at,
                "attempted": False,
            }
            for activity in activities
        ]
        if rows:
            async with self.transaction() as connection:
                for chunk in chunks(rows, ROWS_PER_INSERT):
                    await connection.execute(insert(sync_activities).values(chunk).on_conflict_do_nothing())

    async def pending_activities(self) -> list[QueuedActivity]:
        """The activities not appended yet, in the order they happened."""
        query = (
            select(
                sync_activities.c.activity_id,
                sync_activities.c.opportunity_id,
                sync_activities.c.occurred_at,
                sync_activities.c.attempted,
            )
            .where(self._scope(sync_activities), sync_activities.c.external_id.is_(None))
            .order_by(sync_activities.c.occurred_at, sync_activities.c.activity_id)
        )
        async with self.transaction() as connection:
            return [QueuedActivity(*row) for row in await connection.execute(query)]

    async def appended_activities(self, activity_ids: Iterable[UUID]) -> set[UUID]:
        """Which of these activities were appended already."""
        query = select(sync_activities.c.activity_id).where(
            self._scope(sync_activities),
            sync_activities.c.external_id.is_not(None),
            any_of(sync_activities.c.activity_id, activity_ids),
        )
        async with self.transaction() as connection:
            return set((await connection.scalars(query)).all())

    async def activity_attempted(self, activity_id: UUID, external_id: str | None = None) -> None:
        """Record that an append is about to be sent (``external_id`` None) or landed."""
        values: dict[str, Any] = {"attempted": True} if external_id is None else {"external_id": external_id}
        async with self.transaction() as connection:
            await connection.execute(
                update(sync_activities)
                .where(self._scope(sync_activities), sync_activities.c.activity_id == activity_id)
                .values(**values)
            )

    # --- watermarks ---------------------------------------------------------------------------

    async def watermark(self, direction: Direction) -> tuple[str, datetime] | None:
        """The stored position for ``direction`` and when it was stored, or None before the first pass."""
        query = select(sync_watermarks.c.position, sync_watermarks.c.updated_at).where(
            self._scope(sync_watermarks), sync_watermarks.c.direction == direction.value
        )
        async with self.transaction() as connection:
            row = (await connection.execute(query)).one_or_none()
        return None if row is None else (row.position, row.updated_at)

    async def set_watermark(self, direction: Direction, position: str) -> None:
        await self.set_watermarks({direction: position})

    async def set_watermarks(self, positions: Mapping[Direction, str]) -> None:
        """Store these positions at once (one transaction: a pass's watermarks move together)."""
        rows = [
            {
                "tenant_id": self.tenant_id,
                "connector": self.connector,
                "direction": direction.value,
                "position": position,
            }
            for direction, position in positions.items()
        ]
        statement = insert(sync_watermarks).values(rows)
        async with self.transaction() as connection:
            await connection.execute(
                statement.on_conflict_do_update(
                    index_elements=["tenant_id", "connector", "direction"],
                    set_={"position": statement.excluded.position, "updated_at": func.now()},
                )
            )

    # --- the connection's discovery --------------------------------------------------------------

    async def connection_state(self) -> ConnectionState | None:
        query = select(sync_connections.c.discovery, sync_connections.c.checked_at).where(self._scope(sync_connections))
        async with self.transaction() as connection:
            row = (await connection.execute(query)).one_or_none()
        return None if row is None else ConnectionState(row.discovery, row.checked_at)

    async def set_connection_state(self, state: ConnectionState) -> None:
        statement = insert(sync_connections).values(
            tenant_id=self.tenant_id, connector=self.connector, discovery=state.discovery, checked_at=state.checked_at
        )
        async with self.transaction() as connection:
            await connection.execute(
                statement.on_conflict_do_update(
                    index_elements=["tenant_id", "connector"],
                    set_={
                        "discovery": statement.excluded.discovery,
                        "checked_at": statement.excluded.checked_at,
                        "updated_at": func.now(),
                    },
                )
            )

    # --- the error ledger and the audit log ---------------------------------------------------

    async def record_errors(self, entries: Sequence[LedgerEntry]) -> None:
        """Add or refresh ledger entries (attempts counted); retried by every later pass."""
        if not entries:
            return
        unique = {(entry.record_id, entry.field): entry for entry in entries}
        rows = [
            {
                "tenant_id": self.tenant_id,
                "connector": self.connector,
                "record_id": entry.record_id,
                "field": entry.field,
                "side": entry.side.value,
                "value": encode_value(entry.value),
                "reason": entry.reason,
                "attempts": 1,
            }
            for entry in unique.values()
        ]
        async with self.transaction() as connection:
            for chunk in chunks(rows, ROWS_PER_INSERT):
                statement = insert(sync_errors).values(chunk)
                await connection.execute(
                    statement.on_conflict_do_update(
                        index_elements=["tenant_id", "connector", "record_id", "field"],
                        set_={
                            "side": statement.excluded.side,
                            "value": statement.excluded.value,
                            "reason": statement.excluded.reason,
                            "attempts": sync_errors.c.attempts + 1,
                            "last_seen_at": func.now(),
                        },
                    )
                )

    async def drop_waiting_restores(self, record_ids: Iterable[UUID]) -> None:
        """Take these deals' restores that wait for a person (``RESTORE_BY_HAND``) off the ledger:
        the deal was archived again, so there is nothing left to restore."""
        ids = [str(record_id) for record_id in record_ids]
        if not ids:
            return
        async with self.transaction() as connection:
            await connection.execute(
                delete(sync_errors).where(
                    self._scope(sync_errors),
                    any_of(sync_errors.c.record_id, ids),
                    sync_errors.c.field == RESTORE_BY_HAND,
                )
            )

    async def errors(self) -> list[LedgerEntry]:
        query = (
            select(sync_errors).where(self._scope(sync_errors)).order_by(sync_errors.c.record_id, sync_errors.c.field)
        )
        async with self.transaction() as connection:
            rows = (await connection.execute(query)).all()
        return [_ledger_entry(row) for row in rows]

    async def audit(self, record_id: UUID | None = None) -> list[AuditEntry]:
        """The audit log in the order written (of one record, or all)."""
        query = select(sync_audit).where(self._scope(sync_audit)).order_by(sync_audit.c.sequence)
        if record_id is not None:
            query = query.where(sync_audit.c.record_id == record_id)
        async with self.transaction() as connection:
            rows = (await connection.execute(query)).all()
        return [_audit_entry(row) for row in rows]

    # --- what an operator reads about deals ---------------------------------------------------

    async def deal_links(self, record_ids: Iterable[UUID]) -> dict[UUID, DealLink]:
        """record id -> its link and open ledger entries, for each of these deals (linked or not)."""
        ids = list(record_ids)
        links = select(sync_links).where(self._scope(sync_links), any_of(sync_links.c.record_id, ids))
        async with self.transaction() as connection:
            linked = {row.record_id: row for row in await connection.execute(links)}
            owners = {str(record_id): record_id for record_id in ids}
            owners |= {row.external_id: record_id for record_id, row in linked.items()}
            ledger = (
                select(sync_errors)
                .where(self._scope(sync_errors), any_of(sync_errors.c.record_id, owners))
                .order_by(sync_errors.c.record_id, sync_errors.c.field)
            )
            failures: dict[UUID, list[OpenFailure]] = {}
            for row in await connection.execute(ledger):
                failures.setdefault(owners[row.record_id], []).append(_open_failure(row))
        return {
            record_id: _deal_link(record_id, linked.get(record_id), failures.get(record_id, [])) for record_id in ids
        }

    async def synced_fields(self, record_id: UUID) -> dict[str, SyncedField]:
        """field -> its base and the newest write the sync decided for it, for the fields of this
        deal that have either."""
        bases = select(sync_base).where(self._scope(sync_base), sync_base.c.record_id == record_id)
        newest_writes = (
            select(sync_audit)
            .where(self._scope(sync_audit), sync_audit.c.record_id == record_id)
            .ext(distinct_on(sync_audit.c.field))
            .order_by(sync_audit.c.field, sync_audit.c.sequence.desc())
        )
        fields: dict[str, SyncedField] = {}
        async with self.transaction() as connection:
            for row in await connection.execute(bases):
                fields[row.field] = SyncedField(row.field, True, decode_value(row.field, row.value), row.synced_at)
            for row in await connection.execute(newest_writes):
                known = fields.get(row.field, SyncedField(row.field))
                fields[row.field] = replace(known, last_write=_audit_entry(row), written_at=row.at)
        return fields


ROWS_PER_INSERT = 1_000
"""Rows per multi-row INSERT: each row binds a parameter per column, and PostgreSQL refuses a
statement with more than 65,535 (a pass deferring 10,000 creates records 80,000)."""


def _audit_entry(row: Row[Any]) -> AuditEntry:
    return AuditEntry(
        row.field,
        decode_value(row.field, row.old),
        decode_value(row.field, row.new),
        Side(row.side),
        Outcome(row.outcome),
        Rule(row.rule),
    )


def _ledger_entry(row: Row[Any]) -> LedgerEntry:
    return LedgerEntry(row.record_id, row.reason, Side(row.side), row.field, row.value)


def _open_failure(row: Row[Any]) -> OpenFailure:
    return OpenFailure(_ledger_entry(row), row.attempts, row.first_seen_at, row.last_seen_at)


def _deal_link(record_id: UUID, link: Row[Any] | None, failures: Sequence[OpenFailure]) -> DealLink:
    if link is None:
        return DealLink(record_id, failures=tuple(failures))
    return DealLink(record_id, link.external_id, link.linked_at, link.archived, link.vanished_at, tuple(failures))
