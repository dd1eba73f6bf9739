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
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4, uuid5

from pydantic import SecretStr, ValidationError

from crm_pipeline.batches import chunks
from crm_pipeline.crm.adapter import (
    AdapterCapabilities,
    ChangeBatch,
    CRMAdapter,
    Discovery,
    UpsertOutcome,
    batch_ids,
    discovery_basis,
    snapshot_change,
)
from crm_pipeline.crm.errors import FieldMappingError, PropertySchemaError, RecordGoneError, UncertainWriteError
from crm_pipeline.crm.hubspot.api import (
    MAX_BATCH,
    MAX_BATCH_WITH_HISTORY,
    MAX_SEARCH_PAGE,
    NOTE_TO_DEAL,
    HubSpotAPI,
    HubSpotObject,
    Version,
)
from crm_pipeline.crm.hubspot.client import (
    HubSpotCaller,
    RateLimit,
    RetryPolicy,
    error_body,
    is_uncertain,
    status_of,
)
from crm_pipeline.crm.hubspot.errors import PipelineConfigError, RestoreUnsupportedError, WriteRefusedError
from crm_pipeline.crm.hubspot.mapping import (
    DEFAULT_STAGE_LABELS,
    HUBSPOT_PROPERTY_MAP,
    SYNC_KEY,
    HubSpotProperty,
    decode,
    encode,
    epoch_ms,
    parse_time,
)
from crm_pipeline.crm.notion.adapter import activity_ref
from crm_pipeline.crm.retrying import token_digest
from crm_pipeline.models import (
    ActivityCreate,
    Actor,
    ChangeRecord,
    ContactCreate,
    ContactUpdate,
    ExternalOpportunityRead,
    FieldEdit,
    OpportunityCreate,
    OpportunityFilter,
    OpportunityRead,
    OpportunityUpdate,
)

logger = logging.getLogger("crm_pipeline.crm.hubspot")

DEALS, CONTACTS, NOTES = "deals", "contacts", "notes"
LAST_MODIFIED = "hs_lastmodifieddate"
MERGED_IDS = "hs_merged_object_ids"
SEARCH_RESULT_CAP = 10_000
HUMAN_SOURCES = frozenset({"CRM_UI", "IMPORT", "MOBILE_IOS", "MOBILE_ANDROID", "EMAIL", "SALES"})
"""History source types that are a person's doing; API and INTEGRATION writes are apps'."""
_ID_NAMESPACE = UUID("4b1f6c3e-2d8a-4e57-9c0b-7a3e5d9f1c26")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CONTACT_PROPERTIES = {"email": "email", "phone": "phone", "title": "jobtitle", "company": "company"}


class HubSpotDiscovery(Discovery):
    """What a HubSpot adapter asks before it can read or write deals: our stages' ids in the
    pipeline, and the options of the multi-checkbox properties (the deal properties were checked
    to exist with their types when it was asked)."""

    stage_ids: dict[str, str]
    options: dict[str, list[str]]


class HubSpotAdapter(CRMAdapter):
    """A HubSpot portal's deals as a CRM backend; ids are HubSpot record ids (digits, as text).

    Nothing touches the network before the first call: the pipeline's stage ids and the custom
    properties (created when missing) are resolved then, once.
    """

    capabilities = AdapterCapabilities(
        per_field_timestamps=True,  # property history: each change's ``field_edits``
        old_values_in_changes=False,
        timestamp_resolution_seconds=0.001,
        bulk_writes=True,
    )

    def __init__(
        self,
        token: str | SecretStr,
        *,
        base_url: str | None = None,
        tenant_id: str = "default",
        pipeline: str = "default",
        property_map: Mapping[str, HubSpotProperty] = HUBSPOT_PROPERTY_MAP,
        stage_labels: Mapping[str, str] = DEFAULT_STAGE_LABELS,
        retry: RetryPolicy | None = None,
        rate_limit: RateLimit | None = None,
        overlap: timedelta = timedelta(seconds=60),
        app_source_id: str | None = None,
        search_result_cap: int = SEARCH_RESULT_CAP,
        timeout_s: float = 30.0,
        on_request: Callable[[], None] | None = None,
    ) -> None:
        from hubspot import HubSpot

        secret = token if isinstance(token, SecretStr) else SecretStr(token)
        options: dict[str, Any] = {"access_token": secret.get_secret_value(), "retry": False}
        if base_url is not None:
            options["host"] = base_url.rstrip("/")
        self.api = HubSpotAPI(
            HubSpot(**options),
            HubSpotCaller(
                token_digest(secret.get_secret_value()), retry or RetryPolicy(), rate_limit or RateLimit(), on_request
            ),
            timeout_s,
        )
        self.base_url = base_url
        self.tenant_id = tenant_id
        self.pipeline = pipeline
        self.property_map = dict(property_map)
        self.stage_labels = dict(stage_labels)
        self.overlap = overlap
        self.app_source_id = app_source_id
        self.search_result_cap = search_result_cap
        self.read_errors: list[FieldMappingError] = []
        self.merged: dict[str, str] = {}
        """Absorbed record id -> the id of the record it was merged into, as reads found them."""
        self._stage_ids: dict[str, str] | None = None
        self._options: dict[str, list[str]] = {}  # multi-checkbox property -> its option values
        self._schema_asked = False
        """Whether the properties and stages were asked for in this process (not reused)."""
        self._basis = _basis(base_url, pipeline, self.property_map, self.stage_labels)
        self._deal_by_key: dict[str, str] = {}
        self._ready = asyncio.Lock()

    def __repr__(self) -> str:
        return f"HubSpotAdapter(base_url={self.base_url!r}, tenant_id={self.tenant_id!r}, pipeline={self.pipeline!r})"

    @property
    def mapped_fields(self) -> frozenset[str]:
        return frozenset(self.property_map)

    @property
    def requests_sent(self) -> int:
        """HTTP requests this adapter has sent, retries included (what it spent of the app's budget)."""
        return self.api.caller.requests_sent

    # --- schema ---------------------------------------------------------------------------------

    async def _stages(self) -> dict[str, str]:
        """Our stage -> the pipeline's stage id; custom properties are created on the way."""
        async with self._ready:
            if self._stage_ids is None:
                await self._ask_schema()
            assert self._stage_ids is not None
            return self._stage_ids

    async def _ask_schema(self) -> None:
        self._stage_ids = None  # a schema that no longer fits leaves nothing resolved
        await self._ensure_properties()
        self._stage_ids = await self._resolve_stages()
        self._schema_asked = True

    def discovery(self) -> HubSpotDiscovery | None:
        if self._stage_ids is None:
            return None
        return HubSpotDiscovery(basis=self._basis, stage_ids=self._stage_ids, options=self._options)

    def reuse_discovery(self, discovery: Mapping[str, Any]) -> bool:
        found = HubSpotDiscovery.reusable(discovery, self._basis)
        if found is None:
            return False
        self._stage_ids, self._options = dict(found.stage_ids), {k: list(v) for k, v in found.options.items()}
        self._schema_asked = False
        return True

    async def rediscover(self, *, everything: bool) -> None:
        """The deal properties and the pipeline asked again (two requests), when reused from an
        earlier process (or ``everything``): a property gone or of another type is a
        ``PropertySchemaError``, a stage gone a ``PipelineConfigError``, and the tag options are
        current before a write adds to them."""
        async with self._ready:
            if self._stage_ids is not None and (everything or not self._schema_asked):
                await self._ask_schema()

    async def _resolve_stages(self) -> dict[str, str]:
        pipelines = {pid: (label, stages) for pid, label, stages in await self.api.pipelines()}
        if self.pipeline not in pipelines:
            raise PipelineConfigError(f"HubSpot has no deal pipeline with id {self.pipeline!r}")
        by_label = {label.casefold(): stage_id for stage_id, label in pipelines[self.pipeline][1]}
        ids = {stage_id for stage_id, _ in pipelines[self.pipeline][1]}
        resolved = {}
        for ours, theirs in self.stage_labels.items():
            stage_id = theirs if theirs in ids else by_label.get(theirs.casefold())
            if stage_id is None:
                raise PipelineConfigError(f"pipeline {self.pipeline!r} has no stage {theirs!r} (for {ours!r})")
            resolved[ours] = stage_id
        return resolved

    async def _ensure_properties(self) -> None:
        """Create the custom deal properties HubSpot lacks; refuse ones of the wrong type."""
        held = await self.api.properties(DEALS)
        for field, prop in [*self.property_map.items(), ("sync_key", SYNC_KEY)]:
            found = held.get(prop.name)
            if found is None and prop.custom:
                label = field.replace("_", " ").capitalize()
                await self.api.create_property(
                    DEALS, prop.name, label, prop.hubspot_type, prop.field_type, prop is SYNC_KEY
                )
                found = {"type": prop.hubspot_type, "read_only": False, "unique": prop is SYNC_KEY, "options": []}
            if found is None:
                raise PropertySchemaError(field, prop.name, "HubSpot has no such deal property")
            if found["type"] != prop.hubspot_type or found["read_only"]:
                raise PropertySchemaError(
                    field, prop.name, f"is a {found['type']} property; {prop.hubspot_type} expected"
                )
            if prop is SYNC_KEY and not found["unique"]:
                raise PropertySchemaError(
                    field, prop.name, "must have unique values (hasUniqueValue), so upserts can key on it"
                )
            if prop.codec == "tags":
                self._options[prop.name] = list(found["options"])

    async def _add_options(self, properties: Iterable[Mapping[str, str]]) -> None:
        """Add the tags a write uses that a multi-checkbox property has no option for yet
        (HubSpot refuses a value that is not one of its options)."""
        for name, options in self._options.items():
            wanted = [tag for values in properties for tag in values.get(name, "").split(";") if tag]
            new = [tag for tag in dict.fromkeys(wanted) if tag not in options]
            if new:
                await self.api.set_options(DEALS, name, options + new)
                options += new

    def _properties(
        self, values: Mapping[str, Any], stages: Mapping[str, str], record_id: str | None
    ) -> dict[str, str]:
        return {
            prop.name: encode(values[field], field, prop, stages, record_id)
            for field, prop in self.property_map.items()
            if field in values
        }

    # --- the eight --------------------------------------------------------------------------------

    async def create_opportunity(self, opportunity: OpportunityCreate) -> str:
        """Upsert by sync key (a key HubSpot holds is updated, never created twice); a record
        without a key gets a fresh one, so even its create is keyed."""
        record = opportunity if opportunity.id is not None else opportunity.model_copy(update={"id": uuid4()})
        (outcome,) = await self.upsert_opportunities([record])
        if outcome.external_id is not None and outcome.ok:
            return outcome.external_id
        reason = outcome.reason or "no answer for this record"
        prop = next((f for f, p in self.property_map.items() if p.name == outcome.property_name), None)
        if prop is not None:
            raise FieldMappingError(outcome.record_id, prop, str(outcome.property_name), getattr(record, prop), reason)
        raise WriteRefusedError(outcome.record_id, reason)

    async def update_opportunity(self, external_id: str, data: OpportunityUpdate) -> None:
        await self.write_opportunity(external_id, data)

    async def get_opportunity(self, external_id: str) -> ExternalOpportunityRead | None:
        found = await self._by_ids([external_id])
        return found[0] if found else None

    async def list_opportunities(self, filters: OpportunityFilter) -> list[OpportunityRead]:
        """Every deal page by page (lists have no result cap, unlike search), live, archived or
        both; stage and updated_since are applied on the records read, then order and paging."""
        stages = filters.deal_stage if isinstance(filters.deal_stage, list) else [filters.deal_stage]
        modes = {False: [False], True: [True], None: [False, True]}[filters.archived]
        records = [r for archived in modes for r in await self._list_all(archived)]
        matching = [
            r
            for r in records
            if (filters.deal_stage is None or r.deal_stage in stages)
            and (filters.updated_since is None or r.updated_at >= filters.updated_since)
        ]
        valued = [r for r in matching if getattr(r, filters.order_by) is not None]
        empty = [r for r in matching if getattr(r, filters.order_by) is None]
        ordered = sorted(valued, key=lambda r: getattr(r, filters.order_by), reverse=filters.descending) + empty
        return list[OpportunityRead](ordered[filters.offset : filters.offset + filters.limit])

    async def create_contact(self, contact: ContactCreate) -> str:
        """A contact keyed on its email when it has one (an upsert by ``email``: a resend, or a
        person HubSpot already holds, is not created twice), associated with its deal when it names
        one (contact to deal, type 4)."""
        properties = _contact_properties(contact.changes())
        if contact.email:
            answer = await self.api.batch_upsert(CONTACTS, "email", [(contact.email, properties)])
            if not answer.results:
                refusal = answer.errors[0] if answer.errors else None
                name = refusal.property_names[0] if refusal and refusal.property_names else "email"
                raise FieldMappingError(None, "email", name, contact.email, refusal.message if refusal else "no answer")
            contact_id = answer.results[0].id
        else:
            contact_id = (await self.api.create(CONTACTS, properties)).id
        if contact.opportunity_id is not None:
            deal_id = await self._deal_for_key(str(contact.opportunity_id))
            await self.api.associate(CONTACTS, contact_id, DEALS, deal_id)
        return contact_id

    async def update_contact(self, external_id: str, data: ContactUpdate) -> None:
        await self.api.update(CONTACTS, external_id, _contact_properties(data.changes()))

    async def create_activity(self, activity: ActivityCreate) -> str:
        """A note on the deal (associated at creation, type 214) whose body starts with a
        reference derived from the activity's id; after a lost answer the deal's notes are searched
        for it before the note is created again."""
        deal_id = await self._deal_for_key(str(activity.opportunity_id))
        ref = activity_ref(activity.id or uuid4())
        when = activity.occurred_at or datetime.now(UTC)
        header = f"{activity.kind.capitalize()}: {activity.subject} · ref {ref}"
        properties = {
            "hs_note_body": f"{header}\n{activity.body}" if activity.body else header,
            "hs_timestamp": str(epoch_ms(when)),
        }

        async def recover() -> HubSpotObject | None:
            return await self._find_note(deal_id, ref)

        note = await self.api.create(NOTES, properties, associations=[(deal_id, NOTE_TO_DEAL)], recover=recover)
        return note.id

    async def find_activity(self, activity: ActivityCreate) -> str | None:
        if activity.id is None:
            return None
        deal_id = await self._find_deal_by_key(str(activity.opportunity_id))
        note = None if deal_id is None else await self._find_note(deal_id, activity_ref(activity.id))
        return None if note is None else note.id

    async def _find_note(self, deal_id: str, ref: str) -> HubSpotObject | None:
        note_ids = await self.api.associated_ids(DEALS, deal_id, NOTES)
        for chunk in chunks(note_ids, MAX_BATCH):
            for note in (await self.api.batch_read(NOTES, chunk, ["hs_note_body"])).results:
                if f"· ref {ref}" in (note.properties.get("hs_note_body") or "").split("\n", 1)[0]:
                    return note
        return None

    async def get_changes_since(self, since: datetime) -> list[ChangeRecord]:
        return (await self.read_changes(since.isoformat())).changes

    # --- beyond the eight ---------------------------------------------------------------------------

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

    async def get_opportunities(self, external_ids: Sequence[str]) -> list[OpportunityRead]:
        """The deals with these ids, 50 a request with history, archived ones as ``in_trash``;
        missing ones left out. An id merged into another deal answers as that deal
        (``self.merged`` remembers the pair)."""
        return list[OpportunityRead](await self._by_ids(external_ids))

    async def _by_ids(self, external_ids: Sequence[str]) -> list[ExternalOpportunityRead]:
        """Live deals first; ids not found live are looked for in the recycling bin (one more
        request, only then), so a deleted deal reads as deleted (``in_trash``), not as gone. A deal
        that cannot be mapped raises ``FieldMappingError``, as on Notion: left out, it would read
        as deleted."""
        wanted = {i: n for n, i in enumerate(external_ids)}
        found: dict[str, ExternalOpportunityRead] = {}
        for record in await self._read(external_ids):
            found |= dict.fromkeys(self._answers_for(record.external_id, wanted), record)
        unreadable = self.read_errors
        missing = [i for i in external_ids if i not in found and i not in {e.record_id for e in unreadable}]
        for record in await self._read(missing, archived=True) if missing else []:
            found |= dict.fromkeys(self._answers_for(record.external_id, wanted), record)
        if unreadable or self.read_errors:  # asked for by id, an unreadable deal is no missing one
            raise (unreadable or self.read_errors)[0]
        return [found[i] for i in external_ids if i in found]

    async def _read(self, external_ids: Iterable[str], *, archived: bool = False) -> list[ExternalOpportunityRead]:
        stages = await self._stages()
        names = {stage_id: ours for ours, stage_id in stages.items()}
        ids = list(dict.fromkeys(external_ids))
        answers = await asyncio.gather(
            *(
                self.api.batch_read(
                    DEALS, chunk, self._read_properties(), history=self._history_properties(), archived=archived
                )
                for chunk in chunks(ids, MAX_BATCH_WITH_HISTORY)
            )
        )
        self.read_errors = []
        records = []
        for answer in answers:
            for deal in answer.results:
                self._note_merges(deal, ids)
                try:
                    records.append(self._to_opportunity(deal, names))
                except FieldMappingError as error:
                    logger.warning("HubSpot deal skipped: %s", error)
                    self.read_errors.append(error)
        return records

    def _answers_for(self, external_id: str, wanted: Mapping[str, int]) -> list[str]:
        """The asked ids a record answers for: its own, and those merged into it."""
        merged = [old for old, new in self.merged.items() if new == external_id]
        return [i for i in [external_id, *merged] if i in wanted]

    def _note_merges(self, deal: HubSpotObject, asked: Sequence[str]) -> None:
        for absorbed in (deal.properties.get(MERGED_IDS) or "").split(";"):
            if absorbed and absorbed != deal.id and absorbed in asked:
                self.merged[absorbed] = deal.id

    def _read_properties(self) -> list[str]:
        return [p.name for p in self.property_map.values()] + [SYNC_KEY.name, LAST_MODIFIED, MERGED_IDS]

    def _history_properties(self) -> list[str]:
        return [p.name for p in self.property_map.values()] + [SYNC_KEY.name]

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

    async def _deal_for_key(self, key: str) -> str:
        found = await self._find_deal_by_key(key)
        if found is None:
            raise RecordGoneError(key, "no HubSpot deal holds this sync key")
        return found

    async def _find_deal_by_key(self, key: str) -> str | None:
        if key not in self._deal_by_key:
            answer = await self.api.batch_read(DEALS, [key], [SYNC_KEY.name], id_property=SYNC_KEY.name)
            for deal in answer.results:
                self._deal_by_key[key] = deal.id
        return self._deal_by_key.get(key)

    # --- changes ------------------------------------------------------------------------------------

    async def read_changes(self, cursor: str | None) -> ChangeBatch:
        """Deals modified since the cursor less the overlap, found by search (sorted by the
        last-modified date, re-anchored on the last date read before the 10,000-result cap), then
        read with history. The next cursor is the latest modification the search saw: the index
        lags writes, and what it had not seen yet lies after that mark."""
        since = _cursor_time(cursor)
        modified = await self._modified_since(max(0, epoch_ms(since - self.overlap)))
        latest = max(modified.values(), default=epoch_ms(since))
        records = await self._read(modified)
        changes = sorted(
            (snapshot_change(self.tenant_id, r, self.property_map) for r in records), key=lambda c: c.changed_at
        )
        mark = max(datetime.fromtimestamp(latest / 1000, tz=UTC), since)
        return ChangeBatch(changes, mark.isoformat(), list(self.read_errors))

    async def _modified_since(self, start_ms: int) -> dict[str, int]:
        """Id -> last-modified ms of every live deal modified at or after ``start_ms``."""
        found: dict[str, int] = {}
        anchor = start_ms
        while True:
            last = await self._search_window([_filter(LAST_MODIFIED, "GTE", anchor)], LAST_MODIFIED, found)
            if last is None:
                return found
            if found[last] == anchor:  # one millisecond holds more than a query returns
                await self._read_millisecond(anchor, found)
                anchor += 1
            else:
                anchor = found[last]

    async def _read_millisecond(self, moment: int, found: dict[str, int]) -> None:
        after_id = 0
        while True:
            filters = [_filter(LAST_MODIFIED, "EQ", moment), _filter("hs_object_id", "GT", after_id)]
            last = await self._search_window(filters, "hs_object_id", found)
            if last is None:
                return
            after_id = int(last)

    async def _search_window(self, filters: list[dict[str, str]], sort: str, found: dict[str, int]) -> str | None:
        """Page one query to its end, or to the result cap: then the last id read (None when the
        query was read to its end)."""
        after: str | None = None
        last: str | None = None
        while True:
            body: dict[str, Any] = {
                "filter_groups": [{"filters": filters}],
                "sorts": [{"propertyName": sort, "direction": "ASCENDING"}],
                "properties": [LAST_MODIFIED],
                "limit": MAX_SEARCH_PAGE,
            }
            if after is not None:
                body["after"] = after
            page = await self.api.search(DEALS, body)
            for deal in page.results:
                found[deal.id] = epoch_ms(
                    parse_time(deal.properties.get(LAST_MODIFIED) or "0", "updated_at", LAST_MODIFIED, deal.id)
                )
                last = deal.id
            if page.after is None:
                return None
            if int(page.after) + MAX_SEARCH_PAGE > self.search_result_cap:
                return last
            after = page.after

    async def read_trashed(self, cursor: str | None) -> ChangeBatch:
        """The recycling bin swept (search never shows archived deals): deals archived since the
        cursor less the overlap, each change carrying ``archived_at``."""
        since = _cursor_time(cursor)
        start = since - self.overlap
        archived = [r for r in await self._list_all(archived=True) if r.archived_at and r.archived_at >= start]
        changes = []
        for record in archived:
            change = snapshot_change(self.tenant_id, record, [*self.property_map, "archived_at"])
            changes.append(change.model_copy(update={"changed_at": record.archived_at}))
        latest = max((r.archived_at for r in archived if r.archived_at), default=since)
        return ChangeBatch(
            sorted(changes, key=lambda c: c.changed_at), max(latest, since).isoformat(), list(self.read_errors)
        )

    async def _list_all(self, archived: bool) -> list[ExternalOpportunityRead]:
        """Every live (or archived) deal: ids listed page by page, then read with history."""
        ids: list[str] = []
        after: str | None = None
        while True:
            page = await self.api.list_page(DEALS, [LAST_MODIFIED], after=after, archived=archived)
            ids += [deal.id for deal in page.results]
            if page.after is None:
                break
            after = page.after
        return await self._read(ids, archived=archived)

    # --- records ------------------------------------------------------------------------------------

    def _to_opportunity(self, deal: HubSpotObject, stage_names: Mapping[str, str]) -> ExternalOpportunityRead:
        fields = {
            field: decode(deal.properties.get(prop.name), field, prop, stage_names, deal.id)
            for field, prop in self.property_map.items()
        }
        key = deal.properties.get(SYNC_KEY.name)
        try:
            sync_key = UUID(key) if key else None
        except ValueError:
            raise FieldMappingError(deal.id, "sync_key", SYNC_KEY.name, key, "not a UUID") from None
        try:
            record = ExternalOpportunityRead(
                **fields,
                id=uuid5(_ID_NAMESPACE, deal.id),
                external_id=deal.id,
                tenant_id=self.tenant_id,
                sync_key=sync_key,
                created_at=deal.created_at,
                updated_at=deal.updated_at,
                archived_at=deal.archived_at if deal.archived else None,
                in_trash=deal.archived,
                last_edited_by=self._editor(deal.history),
                field_edits=self._field_edits(deal.history),
                merged_ids=[i for i in (deal.properties.get(MERGED_IDS) or "").split(";") if i and i != deal.id],
            )
        except ValidationError as error:
            first = error.errors()[0]
            field = str(first["loc"][0]) if first["loc"] else "?"
            prop = self.property_map.get(field)
            raise FieldMappingError(
                deal.id, field, prop.name if prop else field, fields.get(field), first["msg"]
            ) from error
        if sync_key is not None:
            self._deal_by_key[str(sync_key)] = deal.id
        return record

    def _field_edits(self, history: Mapping[str, list[Version]]) -> dict[str, FieldEdit]:
        """Each mapped field's newest edit (its property's first history entry): who made it and when."""
        own = self._own_source(history)
        return {
            field: FieldEdit(actor=self._actor(versions[0], own), at=versions[0].timestamp)
            for field, prop in self.property_map.items()
            if (versions := history.get(prop.name))
        }

    def _editor(self, history: Mapping[str, list[Version]]) -> Actor:
        """Who made the newest edit to a mapped property (the record's last editor)."""
        newest = max(
            (versions[0] for versions in history.values() if versions), key=lambda v: v.timestamp, default=None
        )
        return Actor.HUMAN if newest is None else self._actor(newest, self._own_source(history))

    def _own_source(self, history: Mapping[str, list[Version]]) -> str | None:
        """This app's history ``sourceId``: ``app_source_id`` when set, else the source of the deal's
        newest sync-key value, which only the sync writes (None when a person wrote it, or no key
        was written yet: then no edit is taken for the sync's own)."""
        if self.app_source_id is not None:
            return self.app_source_id
        newest = next(iter(history.get(SYNC_KEY.name) or ()), None)
        if newest is None or newest.source_type in HUMAN_SOURCES:
            return None
        return newest.source_id or None

    @staticmethod
    def _actor(version: Version, own: str | None) -> Actor:
        """The sync for this app's own writes (source ``own``); anyone else's edit, a person's or
        another app's, is the external side's (``Actor.HUMAN``): taking another app's write for
        ours would let the deal store overwrite it."""
        ours = own is not None and version.source_type not in HUMAN_SOURCES and version.source_id == own
        return Actor.SYNC if ours else Actor.HUMAN

    async def aclose(self) -> None:
        """Close the SDK clients' connection pools."""
        self.api.close()


def _basis(
    base_url: str | None, pipeline: str, property_map: Mapping[str, HubSpotProperty], stage_labels: Mapping[str, str]
) -> str:
    """A digest of what an adapter is configured to resolve: a discovery made for another portal
    address, pipeline, property map or stage labels is not reused."""
    config = {
        "base_url": base_url,
        "pipeline": pipeline,
        "properties": {field: [prop.name, prop.codec, prop.custom] for field, prop in property_map.items()},
        "stages": dict(stage_labels),
    }
    return discovery_basis(config)


def _filter(name: str, operator: str, value: int) -> dict[str, str]:
    return {"propertyName": name, "operator": operator, "value": str(value)}


def _cursor_time(cursor: str | None) -> datetime:
    return datetime.fromisoformat(cursor) if cursor else _EPOCH


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


def _contact_properties(changes: Mapping[str, Any]) -> dict[str, str]:
    properties = {
        CONTACT_PROPERTIES[k]: "" if v is None else str(v) for k, v in changes.items() if k in CONTACT_PROPERTIES
    }
    if "name" in changes:
        first, _, last = (changes["name"] or "").partition(" ")
        properties |= {"firstname": first, "lastname": last}
    return properties
