"""Reading opportunities from Salesforce: by id and by sync key (queryAll, so a deleted record
reads as ``in_trash``), every record, and the changes since a cursor by ``SystemModstamp``; each
record mapped to an ``ExternalOpportunityRead`` whose per-field editors come from
``OpportunityFieldHistory``.

**Change reads.** ``SystemModstamp`` is indexed and moves on every change, but only to the second,
and a row becomes visible when its transaction commits, after its stamp. A read therefore starts
``overlap`` before the cursor (``>=``), orders by ``SystemModstamp, Id`` and continues by keyset
(``(SystemModstamp > t) OR (SystemModstamp = t AND Id > i)``) rather than by offset; records are
de-duplicated by id. The cursor is the newest stamp read or, when later, Salesforce's time when
the read ran (from the answer's ``Date``): a row stamped an overlap before then was committed by
then, so a burst of writes leaves the window once Salesforce's clock is an overlap past it. A row
whose ``LastModifiedDate`` is older than the window moved only its ``SystemModstamp`` (a logged
Task's roll-up, a recalculation): nobody edited it, so it is no change. Deleted rows are left to
``read_trashed``.

**Editors.** A history row written by the integration user is the sync's own (``Actor.SYNC``),
any other user's a person's. One exception, the stage's default: when a person changes the stage
alone, Salesforce sets Probability to the new stage's default in the same save, and a tracked
Probability records that as the person's edit. A Probability row by the same user, stamped the same
second as their StageName row, whose new value is that stage's default probability, is the
stage's doing and reads as no external edit of probability (``Actor.SYNC``): the agent's
probability is then written back rather than overridden. A person who sets exactly the default
by hand is read the same way (Salesforce would have set that value anyway). Fields without
history tracking carry no per-field editor: the sync decides them by value.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid5

from pydantic import ValidationError

from crm_pipeline.batches import chunks
from crm_pipeline.crm.adapter import ChangeBatch, snapshot_change
from crm_pipeline.crm.errors import FieldMappingError
from crm_pipeline.crm.salesforce.api import Record
from crm_pipeline.crm.salesforce.mapping import SYNC_KEY_FIELD, decode, parse_time, soql_text, soql_time
from crm_pipeline.crm.salesforce.setup import OPPORTUNITY, SalesforceDiscovery, SalesforceSetup
from crm_pipeline.models import Actor, ExternalOpportunityRead, FieldEdit

logger = logging.getLogger("crm_pipeline.crm.salesforce")

_ID_NAMESPACE = UUID("0c6f5d1e-8a3b-4f0e-9d27-5b1e6a4c3f81")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_AUDIT = ["Id", SYNC_KEY_FIELD, "CreatedDate", "LastModifiedDate", "LastModifiedById", "SystemModstamp", "IsDeleted"]
IDS_PER_QUERY = 200


class SalesforceDealReads(SalesforceSetup):
    """Opportunities read by id, by sync key, all of them, or changed since a cursor."""

    def _select(self) -> str:
        return ", ".join([*_AUDIT, *(spec.name for spec in self.field_map.values())])

    async def _by_ids(self, external_ids: Sequence[str], *, history: bool = True) -> list[ExternalOpportunityRead]:
        """The records with these ids, deleted ones included (``in_trash``), in the order asked;
        without ``history``, no per-field editors (one query fewer per 200 records).
        A record that cannot be mapped raises ``FieldMappingError``: left out, it would read as gone."""
        found = await self._read_each(external_ids, history=history)
        if self.read_errors:
            raise self.read_errors[0]
        return [record for i in external_ids if isinstance(record := found.get(i), ExternalOpportunityRead)]

    async def _read_each(
        self, external_ids: Sequence[str], *, history: bool = True
    ) -> dict[str, ExternalOpportunityRead | FieldMappingError]:
        """Each asked id that was found (deleted ones included) -> its record, or why it cannot be
        mapped; 200 ids a query."""
        rows: list[Record] = []
        for chunk in chunks(list(dict.fromkeys(external_ids)), IDS_PER_QUERY):
            rows += await self._rows(f"Id IN ({_in(chunk)})", include_deleted=True)
        records = await self._records(rows, history=history)
        by_id: dict[str, ExternalOpportunityRead | FieldMappingError] = {r.external_id: r for r in records}
        by_id |= {error.record_id: error for error in self.read_errors if error.record_id is not None}
        return {asked: by_id[found] for asked, found in answered_as(external_ids, by_id).items()}

    async def _rows(self, where: str, *, include_deleted: bool = False) -> list[Record]:
        return await self.api.query(self._soql(where), include_deleted=include_deleted)

    def _soql(self, where: str, tail: str = "") -> str:
        return f"SELECT {self._select()} FROM {OPPORTUNITY} WHERE {where}{tail}"

    async def _find_by_key(self, key: str) -> str | None:
        """The live record holding this sync key, if any."""
        if key not in self._id_by_key:
            found = await self.api.query(f"SELECT Id FROM {OPPORTUNITY} WHERE {SYNC_KEY_FIELD} = {soql_text(key)}")
            if found:
                self._id_by_key[key] = str(found[0]["Id"])
        return self._id_by_key.get(key)

    async def _list_all(self, archived: bool) -> list[ExternalOpportunityRead]:
        """Every live record, or every one in the Recycle Bin (``archived``)."""
        rows = await self._rows(f"IsDeleted = {str(archived).upper()}", include_deleted=archived)
        return await self._records(rows)

    # --- changes ------------------------------------------------------------------------------------

    async def read_changes(self, cursor: str | None) -> ChangeBatch:
        """Live records whose ``SystemModstamp`` is at or after the cursor less the overlap, read by
        keyset, those a person or the sync edited in the window; the cursor is the newest stamp."""
        since = _cursor_time(cursor)
        start = since - self.overlap if cursor else _EPOCH
        rows, ran_at = await self._stamped_since(start, deleted=False)
        edited = [r for r in rows if cursor is None or parse_time(r["LastModifiedDate"]) >= start]
        records = await self._records(edited)
        changes = sorted(
            (snapshot_change(self.tenant_id, r, self.field_map) for r in records), key=lambda c: c.changed_at
        )
        return ChangeBatch(changes, _mark(rows, since, ran_at), list(self.read_errors))

    async def read_trashed(self, cursor: str | None) -> ChangeBatch:
        """Records deleted (in the Recycle Bin) since the cursor less the overlap, from queryAll's
        ``IsDeleted`` rows; each change carries ``archived_at`` (the deletion's stamp)."""
        since = _cursor_time(cursor)
        rows, ran_at = await self._stamped_since(since - self.overlap if cursor else _EPOCH, deleted=True)
        changes = []
        for record in await self._records(rows):
            change = snapshot_change(self.tenant_id, record, [*self.field_map, "archived_at"])
            changes.append(change.model_copy(update={"changed_at": record.archived_at}))
        cursor_after = _mark(rows, since, ran_at)
        return ChangeBatch(sorted(changes, key=lambda c: c.changed_at), cursor_after, list(self.read_errors))

    async def _stamped_since(self, start: datetime, *, deleted: bool) -> tuple[list[Record], datetime | None]:
        """Rows stamped at or after ``start``, ``page_rows`` a query, continued by keyset; and when
        the first query ran, by Salesforce's clock (None: unknown)."""
        found: dict[str, Record] = {}
        where = f"SystemModstamp >= {soql_time(start)}"
        tail = f" ORDER BY SystemModstamp, Id LIMIT {self.page_rows}"
        ran_at: list[datetime | None] = []  # each query's
        while True:
            soql = self._soql(f"IsDeleted = {str(deleted).upper()} AND ({where})", tail)
            rows, query_ran_at = await self.api.query_at(soql, include_deleted=deleted)
            ran_at.append(query_ran_at)
            found |= {str(r["Id"]): r for r in rows}
            if len(rows) < self.page_rows:
                return list(found.values()), ran_at[0]
            stamp, last = soql_time(parse_time(rows[-1]["SystemModstamp"])), soql_text(str(rows[-1]["Id"]))
            where = f"SystemModstamp > {stamp} OR (SystemModstamp = {stamp} AND Id > {last})"

    # --- records ------------------------------------------------------------------------------------

    async def _records(self, rows: Sequence[Record], *, history: bool = True) -> list[ExternalOpportunityRead]:
        """Rows as records, their field history read in batches (unless not ``history``);
        unmappable ones in ``read_errors``."""
        found = await self._setup()
        edits = await self._history([str(r["Id"]) for r in rows]) if history else {}
        self.read_errors = []
        records = []
        for row in rows:
            try:
                records.append(self._to_opportunity(row, edits.get(str(row["Id"]), []), found))
            except FieldMappingError as error:
                logger.warning("Salesforce opportunity skipped: %s", error)
                self.read_errors.append(error)
        return records

    async def _history(self, ids: Sequence[str]) -> dict[str, list[Record]]:
        """Each record's history rows of the mapped fields, newest first."""
        fields = _in([spec.name for spec in self.field_map.values()])
        by_record: dict[str, list[Record]] = {}
        for chunk in chunks(list(ids), IDS_PER_QUERY):
            rows = await self.api.query(
                "SELECT OpportunityId, Field, NewValue, CreatedById, CreatedDate FROM OpportunityFieldHistory "
                f"WHERE OpportunityId IN ({_in(chunk)}) AND Field IN ({fields}) ORDER BY CreatedDate DESC"
            )
            for row in rows:
                by_record.setdefault(str(row["OpportunityId"]), []).append(row)
        return by_record

    def _to_opportunity(
        self, row: Record, history: Sequence[Record], found: SalesforceDiscovery
    ) -> ExternalOpportunityRead:
        record_id = str(row["Id"])
        names = {theirs: ours for ours, theirs in found.stage_names.items()}
        fields = {f: decode(row.get(spec.name), f, spec, names, record_id) for f, spec in self.field_map.items()}
        key = row.get(SYNC_KEY_FIELD)
        try:
            sync_key = UUID(key) if key else None
        except ValueError:
            raise FieldMappingError(record_id, "sync_key", SYNC_KEY_FIELD, key, "not a UUID") from None
        deleted = bool(row.get("IsDeleted"))
        try:
            record = ExternalOpportunityRead(
                **fields,
                id=uuid5(_ID_NAMESPACE, record_id),
                external_id=record_id,
                tenant_id=self.tenant_id,
                sync_key=sync_key,
                created_at=parse_time(row["CreatedDate"]),
                updated_at=parse_time(row["LastModifiedDate"]),
                archived_at=parse_time(row["SystemModstamp"]) if deleted else None,
                in_trash=deleted,
                last_edited_by=Actor.SYNC if row.get("LastModifiedById") == found.integration_user_id else Actor.HUMAN,
                field_edits=self._field_edits(history, found),
            )
        except ValidationError as error:
            first = error.errors()[0]
            field = str(first["loc"][0]) if first["loc"] else "?"
            spec = self.field_map.get(field)
            raise FieldMappingError(
                record_id, field, spec.name if spec else field, fields.get(field), first["msg"]
            ) from error
        if sync_key is not None and not deleted:
            self._id_by_key[str(sync_key)] = record_id
        return record

    def _field_edits(self, history: Sequence[Record], found: SalesforceDiscovery) -> dict[str, FieldEdit]:
        """Each tracked field's newest edit: who made it and when (the stage's default excepted)."""
        newest: dict[str, Record] = {}
        for entry in history:
            newest.setdefault(str(entry["Field"]), entry)
        edits = {}
        for field, spec in self.field_map.items():
            row = newest.get(spec.name)
            if row is None:
                continue
            ours = row.get("CreatedById") == found.integration_user_id
            if spec.codec == "percent" and not ours:
                ours = stage_default(row, newest.get(self.field_map["deal_stage"].name), found.default_probabilities)
            edits[field] = FieldEdit(actor=Actor.SYNC if ours else Actor.HUMAN, at=parse_time(row["CreatedDate"]))
        return edits


def stage_default(probability: Record, stage: Record | None, defaults: Mapping[str, int]) -> bool:
    """Whether a Probability history row is Salesforce applying the stage's default: the same
    user's StageName row of the same second set a stage whose default probability is that value."""
    if stage is None or stage.get("CreatedById") != probability.get("CreatedById"):
        return False
    if parse_time(stage["CreatedDate"]) != parse_time(probability["CreatedDate"]):
        return False
    default = defaults.get(str(stage.get("NewValue")))
    value = probability.get("NewValue")
    try:
        return default is not None and value is not None and Decimal(str(value)) == default
    except ArithmeticError:
        return False


def _in(values: Iterable[str]) -> str:
    return ", ".join(soql_text(v) for v in values)


def answered_as(asked: Sequence[str], by_id: Mapping[str, Any]) -> dict[str, str]:
    """Each asked id that was found -> the 18-character id it answered under: a 15-character id
    matches case-sensitively, an 18-character one in any case (its last three characters encode
    the case of the first fifteen)."""
    exact = {i[:15]: i for i in by_id}
    folded = {i.casefold(): i for i in by_id}
    found = {external_id: exact.get(external_id) or folded.get(external_id.casefold()) for external_id in asked}
    return {external_id: match for external_id, match in found.items() if match is not None}


def _mark(rows: Sequence[Record], since: datetime, ran_at: datetime | None) -> str:
    """The next cursor: the newest stamp read, or, when later, the time the read ran. A row stamped
    more than the overlap before that time was committed by then (the overlap bounds how late a
    row becomes visible), so it was read; the next read need not go back further, and a burst of
    writes leaves the window once Salesforce's clock is an overlap past it."""
    ran = [] if ran_at is None else [ran_at.replace(microsecond=0)]
    return max([since, *ran, *(parse_time(r["SystemModstamp"]) for r in rows)]).isoformat()


def _cursor_time(cursor: str | None) -> datetime:
    return datetime.fromisoformat(cursor) if cursor else _EPOCH
