"""SalesforceAdapter: deals as Opportunities, contacts as Contacts, activities as Tasks on their
opportunity, over ``simple-salesforce``.

Every request goes through ``SalesforceCaller`` (one at a time per adapter in a worker thread,
paced per org, the org's allowance kept above a floor, retries; see client.py). Writes go through
sObject Collections, 200 records a request: upserts keyed on ``Sync_Key__c`` (a resend after a lost
answer writes the same records again and creates nothing twice), updates by id (never resent
blindly: a lost answer is read back). Before an upsert the batch's keys are looked up (one query
per 200, queryAll), which tells new records (every field) from existing ones (the fields set), and
refuses a key whose record is in the Recycle Bin rather than create it again. A write of StageName
always carries Probability too (the record's or the value set), since Salesforce resets Probability
to the stage's default otherwise. Changes are read by ``SystemModstamp`` (deal_reads.py).

The class is layered as HubSpot's is: set-up and discovery (setup.py), reads (deal_reads.py),
contacts and activities (activities.py), then here the writes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from uuid import UUID

from crm_pipeline.batches import chunks
from crm_pipeline.crm.adapter import (
    AdapterCapabilities,
    UpsertOutcome,
    WriteOutcome,
    batch_ids,
)
from crm_pipeline.crm.batch_adapter import BatchReadAdapter, create_by_upsert, mapped_updates
from crm_pipeline.crm.errors import FieldMappingError, RecordGoneError, UncertainWriteError, WriteRefusedError
from crm_pipeline.crm.salesforce.activities import SalesforceContactsAndActivities
from crm_pipeline.crm.salesforce.api import MAX_COLLECTION, Record, SaveResult
from crm_pipeline.crm.salesforce.client import RETRYABLE_CODES, is_uncertain
from crm_pipeline.crm.salesforce.deal_reads import IDS_PER_QUERY, _in, answered_as
from crm_pipeline.crm.salesforce.mapping import SYNC_KEY_FIELD, sync_key_text
from crm_pipeline.crm.salesforce.setup import OPPORTUNITY, SalesforceDiscovery
from crm_pipeline.models import (
    ExternalOpportunityRead,
    OpportunityCreate,
    OpportunityUpdate,
)

__all__ = ["SalesforceAdapter", "SalesforceDiscovery"]
GONE_CODES = frozenset({"ENTITY_IS_DELETED", "NOT_FOUND", "INVALID_CROSS_REFERENCE_KEY"})
_NOT_LIVE = "no such live opportunity (deleted or in the Recycle Bin)"


class SalesforceAdapter(SalesforceContactsAndActivities, BatchReadAdapter):
    """A Salesforce org's opportunities as a CRM backend; ids are 18-character record ids."""

    capabilities = AdapterCapabilities(
        per_field_timestamps=True,  # OpportunityFieldHistory, for tracked fields
        old_values_in_changes=False,
        timestamp_resolution_seconds=1.0,
        bulk_writes=True,
        write_batch_size=MAX_COLLECTION,
    )

    async def create_opportunity(self, opportunity: OpportunityCreate) -> str:
        return await create_by_upsert(self, opportunity, {f: spec.name for f, spec in self.field_map.items()})

    async def upsert_opportunities(self, records: Sequence[OpportunityCreate]) -> list[UpsertOutcome]:
        """Collections upserts keyed on ``Sync_Key__c``, 200 records a request, one outcome each.

        A new record takes every field (model defaults included), an existing one only the fields
        set on the record; a key whose record is in the Recycle Bin fails its record. A record
        Salesforce refuses fails alone, naming the field and Salesforce's ``statusCode``.
        """
        batch_ids(records)
        await self._setup()
        outcomes: dict[int, UpsertOutcome] = {}
        for chunk in chunks(list(enumerate(records)), MAX_COLLECTION):
            held = await self._held([sync_key_text(r.id) for _, r in chunk if r.id is not None])
            ready: list[tuple[int, str, Record]] = []
            for index, record in chunk:
                prepared = self._prepare(record, held)
                if isinstance(prepared, UpsertOutcome):
                    outcomes[index] = prepared
                else:
                    ready.append((index, sync_key_text(str(record.id)), prepared))
            if ready:
                outcomes |= await self._upsert_chunk(ready)
        return [outcomes[index] for index in range(len(records))]

    def _prepare(self, record: OpportunityCreate, held: Mapping[str, Record]) -> Record | UpsertOutcome:
        if record.id is None:
            return UpsertOutcome("", "failed", reason="a record needs an id (its sync key) to be upserted")
        key = sync_key_text(record.id)
        existing = held.get(key)
        if existing is not None and existing.get("IsDeleted"):
            return UpsertOutcome(
                key, "failed", existing.get("Id"), reason="the record holding this key is in the Recycle Bin"
            )
        values = record.changes() if existing is not None else record.model_dump()
        try:
            return {SYNC_KEY_FIELD: key, **self._with_probability(self._values(values, key), existing)}
        except FieldMappingError as error:
            return UpsertOutcome(key, "failed", property_name=error.property_name, reason=str(error))

    def _with_probability(self, fields: Record, existing: Record | None) -> Record:
        """StageName never goes alone: Salesforce would reset Probability to the stage's default."""
        stage, probability = self.field_map["deal_stage"].name, self.field_map["probability"].name
        if stage in fields and probability not in fields and existing is not None:
            fields[probability] = existing.get(probability)
        return fields

    async def _held(self, keys: Sequence[str]) -> dict[str, Record]:
        """Key -> Id, IsDeleted and Probability of the records holding these keys (live first)."""
        if not keys:
            return {}
        probability = self.field_map["probability"].name
        rows = await self.api.query(
            f"SELECT Id, {SYNC_KEY_FIELD}, IsDeleted, {probability} FROM {OPPORTUNITY} "
            f"WHERE {SYNC_KEY_FIELD} IN ({_in(keys)})",
            include_deleted=True,
        )
        held: dict[str, Record] = {}
        for row in sorted(rows, key=lambda r: not r.get("IsDeleted")):  # a live record overrides a deleted one
            held[str(row[SYNC_KEY_FIELD]).lower()] = row
        return held

    async def _held_by_ids(self, external_ids: Sequence[str]) -> dict[str, Record]:
        """Asked id -> Id and Probability of each live record among them, as Salesforce holds
        them (200 ids a query, no history); a deleted or missing record is left out."""
        rows: dict[str, Record] = {}
        for chunk in chunks(list(dict.fromkeys(external_ids)), IDS_PER_QUERY):
            found = await self.api.query(
                f"SELECT Id, IsDeleted, {self.field_map['probability'].name} FROM {OPPORTUNITY} "
                f"WHERE Id IN ({_in(chunk)})",
                include_deleted=True,
            )
            rows |= {str(row["Id"]): row for row in found if not row.get("IsDeleted")}
        return {asked: rows[found] for asked, found in answered_as(external_ids, rows).items()}

    def _needs_probability(self, fields: Record) -> bool:
        return self.field_map["deal_stage"].name in fields and self.field_map["probability"].name not in fields

    async def _upsert_chunk(self, ready: Sequence[tuple[int, str, Record]]) -> dict[int, UpsertOutcome]:
        """One collections upsert; records refused for a row lock are sent again, alone, after a
        backoff (the upsert is keyed, so a resend is safe), while the rest keep their result."""
        policy = self.api.caller.policy
        outcomes: dict[int, UpsertOutcome] = {}
        pending = list(ready)
        for attempt in range(1, policy.max_attempts + 1):
            results = await self.api.upsert(OPPORTUNITY, SYNC_KEY_FIELD, [fields for _, _, fields in pending])
            locked = []
            for item, result in zip(pending, results, strict=True):
                if result.status_code in RETRYABLE_CODES and attempt < policy.max_attempts:
                    locked.append(item)
                else:
                    outcomes[item[0]] = self._outcome(item[1], result)
            if not locked:
                break
            await policy.sleep(policy.backoff(attempt))
            pending = locked
        return outcomes

    def _outcome(self, key: str, result: SaveResult) -> UpsertOutcome:
        if result.success and result.id is not None:
            self._id_by_key[key] = result.id
            return UpsertOutcome(key, "created" if result.created else "updated", result.id)
        return UpsertOutcome(
            key, "failed", property_name=result.fields[0] if result.fields else None, reason=_refusal(result)
        )

    async def write_opportunity(self, external_id: str, data: OpportunityUpdate) -> ExternalOpportunityRead:
        """Update the record's set fields, then read it as written: its values, in one query (the
        per-field editors are left to the change reads; what was written is recorded by value).
        Never resent blindly: after a lost answer the record is read back and returned if every
        value landed, else UncertainWriteError (a person may have edited it meanwhile)."""
        await self._setup()
        fields = self._values(data.changes(), external_id)
        if self._needs_probability(fields):
            held = (await self._held_by_ids([external_id])).get(external_id)
            if held is None:
                raise RecordGoneError(external_id, _NOT_LIVE)
            fields = self._with_probability(fields, held)
        if fields:
            try:
                (result,) = await self.api.update(OPPORTUNITY, [{"id": external_id, **fields}])
            except Exception as error:
                if not is_uncertain(error):
                    raise
                landed = await self._landed(external_id, fields)
                if landed is None:
                    raise UncertainWriteError(external_id, error) from error
                return landed
            if not result.success:
                raise self._refusal_error(external_id, fields, result)
        return await self._current(external_id)

    async def write_opportunities(self, updates: Sequence[tuple[str, OpportunityUpdate]]) -> list[WriteOutcome]:
        """Collections updates (``allOrNone: false``), 200 records a request, then the records as
        written read back 200 a query (their values, as ``write_opportunity`` returns them). A
        StageName sent without Probability takes the record's, read for the whole batch first
        (one query per 200 such records). A record Salesforce refuses fails alone, naming the
        field and its ``statusCode`` (a deleted one: ``RecordGoneError``). Never resent blindly:
        after a lost answer each record of the request is read back, and one whose values did not
        all land is an ``UncertainWriteError``. Any other failure of a request is the outcome of
        its records."""
        await self._setup()
        ready, outcomes = mapped_updates(updates, lambda i, data: self._values(data.changes(), i))
        held = await self._held_by_ids([i for _, i, fields in ready if self._needs_probability(fields)])
        sending: list[tuple[int, str, Record]] = []
        for index, external_id, fields in ready:
            if not self._needs_probability(fields):
                sending.append((index, external_id, fields))
            elif external_id in held:
                sending.append((index, external_id, self._with_probability(fields, held[external_id])))
            else:
                outcomes[index] = WriteOutcome(external_id, RecordGoneError(external_id, _NOT_LIVE))
        lost: dict[int, BaseException] = {}
        for chunk in chunks([item for item in sending if item[2]], MAX_COLLECTION):
            try:
                results = await self.api.update(OPPORTUNITY, [{"id": i, **fields} for _, i, fields in chunk])
            except Exception as error:
                if is_uncertain(error):
                    lost |= dict.fromkeys((index for index, _, _ in chunk), error)
                else:
                    outcomes |= {index: WriteOutcome(i, error) for index, i, _ in chunk}
                continue
            for (index, external_id, fields), result in zip(chunk, results, strict=True):
                if not result.success:
                    outcomes[index] = WriteOutcome(external_id, self._refusal_error(external_id, fields, result))
        written = [item for item in sending if item[0] not in outcomes]
        current = await self._read_each([external_id for _, external_id, _ in written], history=False)
        for index, external_id, fields in written:
            outcomes[index] = self._written(external_id, current.get(external_id), fields, lost.get(index))
        return [outcomes[index] for index in range(len(updates))]

    def _written(
        self,
        external_id: str,
        current: ExternalOpportunityRead | FieldMappingError | None,
        sent: Record,
        lost: BaseException | None,
    ) -> WriteOutcome:
        """A record's outcome from its read-back: gone, unreadable, the record as written, or (its
        answer ``lost``) uncertain when a value sent is not what it holds."""
        if current is None or (isinstance(current, ExternalOpportunityRead) and current.in_trash):
            return WriteOutcome(external_id, RecordGoneError(external_id, _NOT_LIVE))
        if lost is not None and not isinstance(current, FieldMappingError) and not self._holds(current, sent):
            return WriteOutcome(external_id, UncertainWriteError(external_id, lost))
        return WriteOutcome(external_id, current)

    async def _current(self, external_id: str) -> ExternalOpportunityRead:
        """The live record's values (no per-field editors); RecordGoneError when it is not live."""
        found = await self._by_ids([external_id], history=False)
        if not found or found[0].in_trash:
            raise RecordGoneError(external_id, _NOT_LIVE)
        return found[0]

    def _refusal_error(self, external_id: str, fields: Record, result: SaveResult) -> Exception:
        """A record's refused write as the error ``write_opportunity`` raises for it."""
        if result.status_code in GONE_CODES:
            return RecordGoneError(external_id, f"Salesforce: {result.status_code}")
        name = result.fields[0] if result.fields else "?"
        field = next((f for f, s in self.field_map.items() if s.name == name), name)
        return FieldMappingError(external_id, field, name, fields.get(name), _refusal(result))

    async def _landed(self, external_id: str, sent: Record) -> ExternalOpportunityRead | None:
        current = await self._current(external_id)
        return current if self._holds(current, sent) else None

    def _holds(self, current: ExternalOpportunityRead, sent: Record) -> bool:
        """Whether the record holds every value sent (after a write whose answer was lost)."""
        held = self._values(current.model_dump(), current.external_id)
        return all(held.get(name) == value for name, value in sent.items())

    async def archive_opportunity(self, external_id: str) -> ExternalOpportunityRead:
        """Delete the record (to the Recycle Bin, which queryAll still reads); returns it."""
        (result,) = await self.api.delete([external_id])
        if not result.success and result.status_code not in GONE_CODES:
            raise WriteRefusedError(external_id, _refusal(result))
        found = await self._by_ids([external_id])
        if not found:
            raise RecordGoneError(external_id, "no such opportunity")
        return found[0]

    async def link_opportunity(self, external_id: str, sync_key: UUID) -> None:
        """Write the sync key onto an opportunity a person created in Salesforce."""
        await self.api.patch(OPPORTUNITY, external_id, {SYNC_KEY_FIELD: sync_key_text(sync_key)})
        self._id_by_key[sync_key_text(sync_key)] = external_id


def _refusal(result: SaveResult) -> str:
    fields = f" ({', '.join(result.fields)})" if result.fields else ""
    return f"Salesforce refused the write: {result.status_code}{fields}: {result.message}"
