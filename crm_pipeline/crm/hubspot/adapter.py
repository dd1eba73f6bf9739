"""HubSpotAdapter: deals as HubSpot deals, contacts as contacts, activities as notes on their deal,
via the official ``hubspot-api-client``.

Every request goes through ``HubSpotCaller`` (pacing per app + retries, see client.py). Creates
are idempotent without a lookup: every write is a batch upsert keyed on the unique ``crm_pipeline_id``
property (up to 100 records a request), so a resend after a lost answer writes the same records
again. Changes are read by search on the last-modified date from the cursor less an overlap (the
index lags writes), re-anchored before search's 10,000-result cap, then read in batches with
property history, which tells a person's edits in HubSpot (``CRM_UI``) from the app's (``API``).
Archived deals never show in search: ``read_trashed`` sweeps the recycling bin. What set-up
asks (the pipeline's stage ids, the custom properties checked, the tag options) is a
``HubSpotDiscovery`` a later process reuses instead of asking again.

The class is layered: set-up and schema (setup.py), deal reads and change reads (deal_reads.py),
contacts and activities (activities.py), then here the deals' writes. Each layer is a base class
of the next, so all share one object's caches and set-up lock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from uuid import UUID

from crm_pipeline.batches import chunks
from crm_pipeline.crm.adapter import (
    AdapterCapabilities,
    UpsertOutcome,
    WriteOutcome,
    batch_ids,
)
from crm_pipeline.crm.batch_adapter import BatchReadAdapter, create_by_upsert, mapped_updates
from crm_pipeline.crm.errors import FieldMappingError, RecordGoneError, UncertainWriteError
from crm_pipeline.crm.hubspot.activities import HubSpotContactsAndActivities
from crm_pipeline.crm.hubspot.api import MAX_BATCH
from crm_pipeline.crm.hubspot.client import error_body, is_uncertain, status_of
from crm_pipeline.crm.hubspot.errors import RestoreUnsupportedError
from crm_pipeline.crm.hubspot.mapping import SYNC_KEY
from crm_pipeline.crm.hubspot.setup import DEALS, HubSpotDiscovery
from crm_pipeline.models import (
    ExternalOpportunityRead,
    OpportunityCreate,
    OpportunityUpdate,
)

# Other code imports HubSpotDiscovery from this module (it lives in setup.py).
__all__ = ["HubSpotAdapter", "HubSpotDiscovery"]


class HubSpotAdapter(HubSpotContactsAndActivities, BatchReadAdapter):
    """A HubSpot portal's deals as a CRM backend; ids are HubSpot record ids (digits, as text).

    Nothing touches the network before the first call: the pipeline's stage ids and the custom
    properties (created when missing) are resolved then, once.
    """

    capabilities = AdapterCapabilities(
        per_field_timestamps=True,  # property history: each change's ``field_edits``
        old_values_in_changes=False,
        timestamp_resolution_seconds=0.001,
        bulk_writes=True,
        write_batch_size=MAX_BATCH,
    )

    async def create_opportunity(self, opportunity: OpportunityCreate) -> str:
        return await create_by_upsert(self, opportunity, {f: p.name for f, p in self.property_map.items()})

    async def upsert_opportunities(self, records: Sequence[OpportunityCreate]) -> list[UpsertOutcome]:
        """Batch upserts keyed on the sync key, 100 records a request, one outcome per record.

        A new deal takes every field (model defaults included), an existing one only the fields
        set on the record. Where a chunk's records carry every mapped field the two are the same and
        the chunk is one request; otherwise its keys are read first (one more). A record HubSpot
        refuses fails alone: per-record errors come back in a 207, and a batch refused as a whole is
        split until the refusing record stands alone. The same id twice is a ValueError.
        """
        batch_ids(records)
        stages = await self._stages()
        outcomes: dict[int, UpsertOutcome] = {}
        ready: list[tuple[int, str, dict[str, str]]] = []
        for chunk in chunks(list(enumerate(records)), MAX_BATCH):
            complete = all(self.mapped_fields <= r.model_fields_set for _, r in chunk)
            existing = (
                set() if complete else await self._existing_keys([str(r.id) for _, r in chunk if r.id is not None])
            )
            for index, record in chunk:
                if record.id is None:
                    outcomes[index] = UpsertOutcome(
                        "", "failed", reason="a record needs an id (its sync key) to be upserted"
                    )
                    continue
                key = str(record.id)
                values = record.changes() if key in existing else record.model_dump()
                try:
                    ready.append((index, key, self._properties(values, stages, key)))
                except FieldMappingError as error:
                    outcomes[index] = UpsertOutcome(key, "failed", property_name=error.property_name, reason=str(error))
        await self._add_options([props for _, _, props in ready])
        for batch in chunks(ready, MAX_BATCH):
            outcomes |= await self._upsert_chunk(batch)
        return [outcomes[index] for index in range(len(records))]

    async def _upsert_chunk(self, chunk: Sequence[tuple[int, str, dict[str, str]]]) -> dict[int, UpsertOutcome]:
        try:
            answer = await self.api.batch_upsert(DEALS, SYNC_KEY.name, [(key, props) for _, key, props in chunk])
        except Exception as error:
            status = status_of(error)
            if status is None or not 400 <= status < 500 or status == 429:
                raise
            if len(chunk) == 1:
                index, key, _ = chunk[0]
                return {
                    index: UpsertOutcome(
                        key, "failed", reason=f"HubSpot refused the write ({status}: {_message(error)})"
                    )
                }
            half = len(chunk) // 2
            return await self._upsert_chunk(chunk[:half]) | await self._upsert_chunk(chunk[half:])
        by_key = {r.properties.get(SYNC_KEY.name) or "": r for r in answer.results}
        failed = {i: e for e in answer.errors for i in e.ids}
        outcomes = {}
        for index, key, _ in chunk:
            written = by_key.get(key)
            if written is not None:
                self._deal_by_key[key] = written.id
                outcomes[index] = UpsertOutcome(key, "created" if written.new else "updated", written.id)
            else:
                refusal = failed.get(key)
                outcomes[index] = UpsertOutcome(
                    key,
                    "failed",
                    property_name=refusal.property_names[0] if refusal and refusal.property_names else None,
                    reason=f"HubSpot refused the write ({refusal.category}: {refusal.message})"
                    if refusal
                    else "no answer for this record",
                )
        return outcomes

    async def _existing_keys(self, keys: Sequence[str]) -> set[str]:
        if not keys:
            return set()
        answer = await self.api.batch_read(DEALS, keys, [SYNC_KEY.name], id_property=SYNC_KEY.name)
        return {r.properties.get(SYNC_KEY.name) or "" for r in answer.results}

    async def write_opportunity(self, external_id: str, data: OpportunityUpdate) -> ExternalOpportunityRead:
        """Update the deal's set fields, then read it as written. Never resent blindly: after a
        lost answer the deal is read back and returned if every value landed, else
        UncertainWriteError (a person may have edited it meanwhile)."""
        properties = self._properties(data.changes(), await self._stages(), external_id)
        if properties:
            await self._add_options([properties])
            try:
                answer = await self.api.batch_update(DEALS, [(external_id, properties)])
            except Exception as error:
                if not is_uncertain(error):
                    raise
                landed = await self._landed(external_id, properties)
                if landed is None:
                    raise UncertainWriteError(external_id, error) from error
                return landed
            if answer.errors:
                refusal = answer.errors[0]
                if refusal.category == "OBJECT_NOT_FOUND":
                    raise RecordGoneError(external_id, "no such live deal (archived or deleted)")
                name = refusal.property_names[0] if refusal.property_names else "?"
                raise FieldMappingError(external_id, name, name, properties.get(name), refusal.message)
        current = await self.get_opportunity(external_id)
        if current is None:
            raise RecordGoneError(external_id, "no such live deal (archived or deleted)")
        return current

    async def write_opportunities(self, updates: Sequence[tuple[str, OpportunityUpdate]]) -> list[WriteOutcome]:
        """Batch updates, 100 deals a request, then the deals as written read back 100 a request
        (their values; the editors are left to the change reads). A deal HubSpot refuses fails
        alone: per-record errors come back in a 207 (``OBJECT_NOT_FOUND``: ``RecordGoneError``, a
        refused value: ``FieldMappingError`` naming the property), and a batch refused as a whole
        is split until the refusing deal stands alone. Never resent blindly: after a lost answer
        the batch's deals are read back, and one whose values did not all land is an
        ``UncertainWriteError``. Any other failure of a request is the outcome of its deals."""
        stages = await self._stages()
        ready, outcomes = mapped_updates(updates, lambda i, data: self._properties(data.changes(), stages, i))
        await self._add_options([properties for _, _, properties in ready if properties])
        lost: dict[int, BaseException] = {}
        for chunk in chunks([item for item in ready if item[2]], MAX_BATCH):
            refused, uncertain = await self._update_chunk(chunk)
            outcomes |= refused
            lost |= uncertain
        written = [(index, external_id, props) for index, external_id, props in ready if index not in outcomes]
        asked = {external_id: index for index, external_id, _ in written}
        current = {
            external_id: record
            for record in await self._read(asked, history=False)
            for external_id in self._answers_for(record.external_id, asked)  # merged ids: their survivor
        }
        for index, external_id, props in written:
            sent = (props, lost[index]) if index in lost else None
            outcomes[index] = self._written(external_id, current.get(external_id), sent, stages)
        return [outcomes[index] for index in range(len(updates))]

    async def _update_chunk(
        self, chunk: Sequence[tuple[int, str, dict[str, str]]]
    ) -> tuple[dict[int, WriteOutcome], dict[int, BaseException]]:
        """One batch update: the outcomes of the deals it failed, and the deals whose answer was
        lost, with the failure (each to be compared with what it was sent)."""
        try:
            answer = await self.api.batch_update(DEALS, [(external_id, props) for _, external_id, props in chunk])
        except Exception as error:
            if is_uncertain(error):
                return {}, dict.fromkeys((index for index, _, _ in chunk), error)
            status = status_of(error)
            if status is not None and 400 <= status < 500 and status != 429 and len(chunk) > 1:
                half = len(chunk) // 2
                first, first_lost = await self._update_chunk(chunk[:half])
                second, second_lost = await self._update_chunk(chunk[half:])
                return first | second, first_lost | second_lost
            return {index: WriteOutcome(external_id, error) for index, external_id, _ in chunk}, {}
        failed = {i: e for e in answer.errors for i in e.ids}
        outcomes = {}
        for index, external_id, properties in chunk:
            refusal = failed.get(external_id)
            if refusal is None:
                continue
            if refusal.category == "OBJECT_NOT_FOUND":
                gone: Exception = RecordGoneError(external_id, "no such live deal (archived or deleted)")
                outcomes[index] = WriteOutcome(external_id, gone)
                continue
            name = refusal.property_names[0] if refusal.property_names else "?"
            field = next((f for f, p in self.property_map.items() if p.name == name), name)
            refused = FieldMappingError(external_id, field, name, properties.get(name), refusal.message)
            outcomes[index] = WriteOutcome(external_id, refused)
        return outcomes, {}

    def _written(
        self,
        external_id: str,
        current: ExternalOpportunityRead | None,
        sent: tuple[Mapping[str, str], BaseException] | None,
        stages: Mapping[str, str],
    ) -> WriteOutcome:
        """A deal's outcome from its read-back: gone, the deal as written, or (its answer lost:
        ``sent``, what it was sent and the failure) uncertain when a value sent is not held."""
        if current is None:
            return WriteOutcome(external_id, RecordGoneError(external_id, "no such live deal (archived or deleted)"))
        if sent is not None:
            properties, lost = sent
            held = self._properties(current.model_dump(), stages, external_id)
            if not all(_same(held.get(k, ""), v) for k, v in properties.items()):
                return WriteOutcome(external_id, UncertainWriteError(external_id, lost))
        return WriteOutcome(external_id, current)

    async def _landed(self, external_id: str, sent: Mapping[str, str]) -> ExternalOpportunityRead | None:
        current = await self.get_opportunity(external_id)
        if current is None:
            raise RecordGoneError(external_id, "no such live deal (archived or deleted)")
        held = self._properties(current.model_dump(), await self._stages(), external_id)
        return current if all(_same(held.get(k, ""), v) for k, v in sent.items()) else None

    async def archive_opportunity(self, external_id: str) -> ExternalOpportunityRead:
        """Move the deal to HubSpot's recycling bin; returns it as archived."""
        await self.api.archive(DEALS, external_id)
        archived = await self._read([external_id], archived=True)
        if not archived:
            raise RecordGoneError(external_id, "no such deal")
        return archived[0]

    async def restore_opportunity(self, external_id: str) -> ExternalOpportunityRead:
        """HubSpot's API cannot restore a deal: a person restores it from the recycling bin."""
        raise RestoreUnsupportedError(external_id)

    async def link_opportunity(self, external_id: str, sync_key: UUID) -> None:
        """Write the sync key onto a deal a person created in HubSpot."""
        await self.api.update(DEALS, external_id, {SYNC_KEY.name: str(sync_key)})
        self._deal_by_key[str(sync_key)] = external_id


def _same(held: str, sent: str) -> bool:
    """Whether a value read back is the one written (numbers compare as numbers: "5" is "5.00")."""
    if held == sent:
        return True
    try:
        return Decimal(held) == Decimal(sent)
    except ArithmeticError:
        return False


def _message(error: BaseException) -> str:
    message = error_body(error).get("message")
    return message if isinstance(message, str) else type(error).__name__
