"""Reads of the change log PostgreSQL writes with every change: by time (audits), as a feed that
never skips a late commit (incremental readers), a stretch of that feed again for a few records,
each deal's newest entry, and the deals without one."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import TypeAdapter
from sqlalchemy import ColumnElement, Select, Text, cast, func, literal, literal_column, select, tuple_
from sqlalchemy.dialects.postgresql import aggregate_order_by, distinct_on

from crm_pipeline.models import ChangeCursor, ChangeFeedPage, ChangeRecord, RecordType
from crm_pipeline.store.rows import RowAccess
from crm_pipeline.store.schema import XID8, any_of, change_log, opportunities


class ChangeLogReads(RowAccess):
    """The change log of each tenant, read five ways."""

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
        query = (
            select(change_log)
            .where(change_log.c.txid < func.pg_snapshot_xmin(func.pg_current_snapshot()), _FEED_ORDER > _at(after))
            .order_by(change_log.c.txid, change_log.c.sequence)
            .limit(limit)
        )
        entries, last_txid = await self._read_changes(tenant_id, query, "txid", "sequence")
        if not entries:
            return ChangeFeedPage(entries=[], cursor=after)
        assert last_txid is not None
        return ChangeFeedPage(entries=entries, cursor=ChangeCursor(txid=last_txid, sequence=entries[-1].sequence))

    async def feed_entries_of(
        self, tenant_id: str, record_ids: Iterable[UUID], after: ChangeCursor | None, until: ChangeCursor
    ) -> list[ChangeRecord]:
        """These records' entries of the change feed after `after` up to `until` (a cursor the feed
        returned), in feed order: a stretch already read, read again for a few of its records. Only
        entries the feed had delivered lie there, so no other reader's position is needed."""
        ids = list(dict.fromkeys(record_ids))
        if not ids:
            return []
        query = select(change_log).where(
            any_of(change_log.c.record_id, ids), _FEED_ORDER > _at(after or ChangeCursor()), _FEED_ORDER <= _at(until)
        )
        entries, _ = await self._read_changes(tenant_id, query, "txid", "sequence")
        return entries

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


_CHANGE_RECORDS = TypeAdapter(list[ChangeRecord])

_FEED_ORDER = tuple_(change_log.c.txid, change_log.c.sequence)
"""An entry's position in the change feed."""


def _at(cursor: ChangeCursor) -> ColumnElement[Any]:
    """A cursor's position, comparable with ``_FEED_ORDER``."""
    return tuple_(cast(literal(str(cursor.txid)), XID8()), literal(cursor.sequence))
