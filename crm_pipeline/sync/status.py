"""The sync's state in PostgreSQL (migrations 0004 and 0007), for one tenant and connector.

Links (deal ⇄ external record), bases (what both sides held after the last successful sync, per
field), watermarks per direction, the error ledger, the audit log, and what the adapter found out
about the connection (``ConnectionState``). Writes that cover a deal's
data take the caller's transaction, so a pulled value, its new base and its audit entry commit
together or not at all; nothing here is cached, so a new process continues where the last stopped.
Links and bases are ``status_links.LinkStore``'s, the values the store holds ``status_values``'.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Row, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import distinct_on, insert

from crm_pipeline.batches import chunks
from crm_pipeline.store.schema import (
    any_of,
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
from crm_pipeline.sync.status_links import LinkStore
from crm_pipeline.sync.status_values import (
    ConnectionState,
    DealLink,
    Direction,
    LinkState,
    OpenFailure,
    SyncedField,
    decode_value,
    encode_value,
)

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


class SyncStatus(LinkStore):
    """One tenant's sync state with one connector (links and bases: ``LinkStore``)."""

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
