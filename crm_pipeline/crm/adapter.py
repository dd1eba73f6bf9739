"""CRMAdapter: the one interface every CRM backend implements.

The eight abstract methods are the whole contract a new connector (Salesforce, HubSpot …) must
meet; `docs/connectors.md` spells out their semantics. What the sync engine uses beyond them (a
cursor-based change read, reads by ids, writes that return the record as written, single and
batched, bulk upsert, archive, writing a sync key back) has a default built on the eight, which a
backend overrides when it can do better; `AdapterCapabilities` says what else it can rely on.
What the backends with batch APIs share beyond that is in ``batch_adapter``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import to_jsonable_python

from crm_pipeline.crm.errors import FieldMappingError, RecordGoneError
from crm_pipeline.models import (
    OPPORTUNITY_FIELDS,
    ActivityCreate,
    ChangeRecord,
    ContactCreate,
    ContactUpdate,
    ExternalOpportunityRead,
    FieldChange,
    OpportunityCreate,
    OpportunityFilter,
    OpportunityRead,
    OpportunityUpdate,
    RecordType,
)


@dataclass(frozen=True)
class AdapterCapabilities:
    """What a backend can do beyond the eight methods; the sync engine plans around these."""

    per_field_timestamps: bool = False
    """The backend knows when each field last changed (PostgreSQL's change log), not only the record."""
    old_values_in_changes: bool = False
    """`get_changes_since` reports old → new; otherwise only the current value of each field."""
    timestamp_resolution_seconds: float = 0.0
    """How coarse the backend's edit times are (Notion rounds down to the minute: 60)."""
    bulk_writes: bool = False
    """`upsert_opportunities(records)` writes a batch in a few calls instead of one per record."""
    write_batch_size: int = 8
    """Updates the sync hands ``write_opportunities`` at once: what one request of the backend's
    batch update takes, or, for a backend without one, how many single writes run concurrently."""


@dataclass(frozen=True)
class UpsertOutcome:
    """What happened to one record of ``upsert_opportunities``, the same for every backend.

    On failure ``property_name`` names the external property when known and ``reason`` says why;
    the other records of the batch are unaffected.
    """

    record_id: str
    action: Literal["created", "updated", "failed"]
    external_id: str | None = None
    property_name: str | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.action != "failed"


@dataclass(frozen=True)
class WriteOutcome:
    """What happened to one update of ``write_opportunities``, the same for every backend: the
    record as written, or the error ``write_opportunity`` would have raised for it alone
    (``RecordGoneError``, ``FieldMappingError`` naming the property, ``UncertainWriteError`` …)."""

    external_id: str
    result: OpportunityRead | Exception

    @property
    def ok(self) -> bool:
        return not isinstance(self.result, Exception)

    @property
    def property_name(self) -> str | None:
        """The external property the backend refused, when it said which."""
        return self.result.property_name if isinstance(self.result, FieldMappingError) else None

    @property
    def reason(self) -> str | None:
        return str(self.result) if isinstance(self.result, Exception) else None


@dataclass(frozen=True)
class ChangeBatch:
    """Changes read from a cursor, and the cursor to read on from (opaque text: persist it as is)."""

    changes: list[ChangeRecord]
    cursor: str
    unreadable: list[FieldMappingError] = field(default_factory=list)
    """Records changed in the backend but left out because a value could not be mapped."""


class Discovery(BaseModel):
    """What an adapter found out about its connection by asking the CRM (ids, the schema's
    bindings) and relies on from then on: plain JSON data (``model_dump(mode="json")``), kept in
    the deal store so a new process need not ask again. Never a secret: a token is no part of it.

    ``basis`` names the configuration it was found for (an adapter takes no discovery made for
    another database, pipeline or property map). An adapter makes a new value each time it asks."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    basis: str

    @classmethod
    def reusable(cls, kept: Mapping[str, Any], basis: str) -> Self | None:
        """``kept`` (JSON) as this kind of discovery when it was made for ``basis``, else None."""
        try:
            found = cls.model_validate(kept)
        except ValidationError:
            return None
        return found if found.basis == basis else None


def discovery_basis(configuration: Mapping[str, Any]) -> str:
    """A digest of what an adapter is configured to discover (JSON data), as its ``Discovery.basis``."""
    return hashlib.sha256(json.dumps(configuration, sort_keys=True).encode()).hexdigest()


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def activity_ref(activity_id: UUID) -> str:
    """The short reference an activity carries in the CRM (a Notion paragraph, a HubSpot note, a
    Salesforce Task's subject), by which a resend after a lost answer finds it: 12 hex digits of a
    hash of its id.

    Hashed rather than cut from the id, so ids sharing a prefix (time-ordered UUIDs) still differ.
    """
    return hashlib.blake2b(activity_id.bytes, digest_size=6).hexdigest()


def batch_ids(records: Sequence[OpportunityCreate]) -> list[str]:
    """The ids of a bulk upsert's records; the same id twice is a ValueError before anything is
    sent (it would create two records)."""
    ids = [str(record.id) for record in records if record.id is not None]
    repeated = sorted(key for key, count in Counter(ids).items() if count > 1)
    if repeated:
        raise ValueError(
            f"upsert_opportunities got the same id more than once ({', '.join(repeated)}); merge those records first"
        )
    return ids


def listed(records: Iterable[OpportunityRead], filters: OpportunityFilter) -> list[OpportunityRead]:
    """``list_opportunities`` over records read in full (archived ones as ``filters`` asks): the
    stage and ``updated_since`` (strictly after) applied, then the order, records without the
    ordering value last, then the page."""
    stages = filters.deal_stage if isinstance(filters.deal_stage, list) else [filters.deal_stage]
    matching = [
        r
        for r in records
        if (filters.deal_stage is None or r.deal_stage in stages)
        and (filters.updated_since is None or r.updated_at > filters.updated_since)
    ]
    valued = [r for r in matching if getattr(r, filters.order_by) is not None]
    empty = [r for r in matching if getattr(r, filters.order_by) is None]
    ordered = sorted(valued, key=lambda r: getattr(r, filters.order_by), reverse=filters.descending) + empty
    return ordered[filters.offset : filters.offset + filters.limit]


def snapshot_change(tenant_id: str, record: ExternalOpportunityRead, fields: Iterable[str]) -> ChangeRecord:
    """A record read from a CRM that keeps no old values, as a change: the current value of each
    of ``fields``, stamped with the record's last edit (and each field's own, where the backend
    knows it: ``field_edits``)."""
    fields = list(fields)
    return ChangeRecord(
        tenant_id=tenant_id,
        record_type=RecordType.OPPORTUNITY,
        record_id=record.external_id,
        sync_key=str(record.sync_key) if record.sync_key else None,
        changes={name: FieldChange(new=to_jsonable_python(getattr(record, name))) for name in fields},
        actor=record.last_edited_by,
        changed_at=record.updated_at,
        merged_ids=record.merged_ids,
        field_edits={name: edit for name, edit in record.field_edits.items() if name in fields},
    )


class CRMAdapter(ABC):
    """A CRM backend, seen by the sync engine. Ids are the backend's own, as strings."""

    capabilities: AdapterCapabilities = AdapterCapabilities()

    @property
    def mapped_fields(self) -> frozenset[str]:
        """The opportunity fields this backend holds; the sync never sends or reads the others."""
        return frozenset(OPPORTUNITY_FIELDS)

    @abstractmethod
    async def create_opportunity(self, opportunity: OpportunityCreate) -> str:
        """Create an opportunity; return the backend's id for it.

        `opportunity.id`, when given, is the sync key (the primary record's id). A backend that can store
        it must, and must not create a second record for a key it already holds.
        """

    @abstractmethod
    async def update_opportunity(self, external_id: str, data: OpportunityUpdate) -> None:
        """Apply the explicitly set fields of `data`; fields not set are left alone."""

    @abstractmethod
    async def get_opportunity(self, external_id: str) -> OpportunityRead | None:
        """The opportunity, or None when the backend has no record with that id."""

    @abstractmethod
    async def list_opportunities(self, filters: OpportunityFilter) -> list[OpportunityRead]:
        """Opportunities matching `filters` (stage, updated since, archived, paging)."""

    @abstractmethod
    async def create_contact(self, contact: ContactCreate) -> str:
        """Create a contact; return the backend's id for it."""

    @abstractmethod
    async def update_contact(self, external_id: str, data: ContactUpdate) -> None:
        """Apply the explicitly set fields of a contact."""

    @abstractmethod
    async def create_activity(self, activity: ActivityCreate) -> str:
        """Record an activity on an opportunity; return the backend's id for it."""

    @abstractmethod
    async def get_changes_since(self, since: datetime) -> list[ChangeRecord]:
        """Changes made after `since`. Backends with coarse timestamps read with an overlap and
        may return a change more than once; callers de-duplicate."""

    async def aclose(self) -> None:
        """Release connections; the default holds none."""

    # --- what a backend found out about its connection, kept across processes ----------------------

    def discovery(self) -> Discovery | None:
        """What this adapter asked the CRM about its connection and relies on (None: nothing, or
        not asked yet). The sync engine keeps it in the deal store for the next process."""
        return None

    def reuse_discovery(self, discovery: Mapping[str, Any]) -> bool:
        """Rely on what an earlier process found (a ``discovery()`` as JSON) instead of asking
        again; False, and nothing taken, when it does not fit this adapter (another basis)."""
        return False

    async def rediscover(self, *, everything: bool) -> None:
        """Ask the CRM again. ``everything=False``, before a pass writes: what writes rely on (the
        schema), if it was reused and not yet asked in this process; ``PropertySchemaError`` when
        it no longer fits. ``everything=True``: all of it, now (the slow re-check)."""

    # --- what the sync engine uses beyond the eight; defaults built on them ------------------------

    async def read_changes(self, cursor: str | None) -> ChangeBatch:
        """Changes after ``cursor`` (None: from the beginning) and the cursor to continue from.

        A change is delivered at least once: reading from the returned cursor never skips one,
        but may repeat some (callers compare values). The default reads ``get_changes_since``
        from the latest change time seen.
        """
        since = _EPOCH if cursor is None else datetime.fromisoformat(cursor)
        changes = await self.get_changes_since(since)
        latest = max((change.changed_at for change in changes), default=since)
        return ChangeBatch(changes, latest.isoformat())

    async def read_trashed(self, cursor: str | None) -> ChangeBatch:
        """Records archived (trashed) since ``cursor``, for backends whose change read leaves them
        out; each change carries ``archived_at``. The default: none (``read_changes`` has them)."""
        return ChangeBatch([], cursor or "")

    async def get_opportunities(self, external_ids: Sequence[str]) -> list[OpportunityRead]:
        """The records with these ids that exist, in the order asked; missing ones are left out."""
        found = await asyncio.gather(*(self.get_opportunity(external_id) for external_id in external_ids))
        return [record for record in found if record is not None]

    async def write_opportunity(self, external_id: str, data: OpportunityUpdate) -> OpportunityRead:
        """``update_opportunity`` that returns the record as written (RecordGoneError when it is gone).

        The default reads the record back; a backend whose write answers with the record returns
        that, so recording what was written costs no extra request.
        """
        await self.update_opportunity(external_id, data)
        written = await self.get_opportunity(external_id)
        if written is None:
            raise RecordGoneError(external_id)
        return written

    async def write_opportunities(self, updates: Sequence[tuple[str, OpportunityUpdate]]) -> list[WriteOutcome]:
        """``write_opportunity`` for each ``(external id, update)``: one outcome per update, in order.

        A failure of one update is its outcome and never fails the others. The default runs the
        single writes, ``capabilities.write_batch_size`` at a time (each paced and retried as
        ``write_opportunity`` is); a backend with a batch update overrides it.
        """
        slots = asyncio.Semaphore(self.capabilities.write_batch_size)

        async def write(external_id: str, data: OpportunityUpdate) -> WriteOutcome:
            async with slots:
                try:
                    return WriteOutcome(external_id, await self.write_opportunity(external_id, data))
                except Exception as error:
                    return WriteOutcome(external_id, error)

        return list(await asyncio.gather(*(write(external_id, data) for external_id, data in updates)))

    async def upsert_opportunities(self, records: Sequence[OpportunityCreate]) -> list[UpsertOutcome]:
        """Create each record under its id (the sync key), one outcome per record, in order.

        The default relies on ``create_opportunity``'s contract (a key the backend holds is not
        created twice) and reports every record as created; a value that cannot be mapped fails
        that record only.
        """
        outcomes = []
        for record in records:
            if record.id is None:
                outcomes.append(UpsertOutcome("", "failed", reason="a record needs an id (its sync key)"))
                continue
            try:
                external_id = await self.create_opportunity(record)
            except FieldMappingError as error:
                outcomes.append(UpsertOutcome(str(record.id), "failed", None, error.property_name, str(error)))
            else:
                outcomes.append(UpsertOutcome(str(record.id), "created", external_id))
        return outcomes

    async def archive_opportunity(self, external_id: str) -> OpportunityRead:
        """Archive (soft-delete) the record; returns it as archived."""
        raise NotImplementedError(f"{type(self).__name__} cannot archive records")

    async def restore_opportunity(self, external_id: str) -> OpportunityRead:
        """Undo ``archive_opportunity``; returns the record as restored."""
        raise NotImplementedError(f"{type(self).__name__} cannot restore records")

    async def find_activity(self, activity: ActivityCreate) -> str | None:
        """The backend's id for this activity if an earlier ``create_activity`` landed (looked up
        by ``activity.id``), else None. The default cannot tell and says None."""
        return None

    async def link_opportunity(self, external_id: str, sync_key: UUID) -> None:
        """Stamp a record created in the backend (no sync key yet) with its primary record's id."""
        raise NotImplementedError(f"{type(self).__name__} cannot store a sync key")
