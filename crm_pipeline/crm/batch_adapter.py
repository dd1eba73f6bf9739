"""What the backends with batch APIs (HubSpot, Salesforce) share beyond ``CRMAdapter``'s defaults:
the eight's reads and update built on reads by ids in batches (``BatchReadAdapter``), a create
that is a keyed upsert, and the start of a batched ``write_opportunities``."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TypeVar
from uuid import uuid4

from crm_pipeline.crm.adapter import ChangeBatch, CRMAdapter, WriteOutcome, listed
from crm_pipeline.crm.errors import FieldMappingError, WriteRefusedError
from crm_pipeline.models import (
    ChangeRecord,
    ExternalOpportunityRead,
    OpportunityCreate,
    OpportunityFilter,
    OpportunityRead,
    OpportunityUpdate,
)

_Mapped = TypeVar("_Mapped")


def mapped_updates(
    updates: Sequence[tuple[str, OpportunityUpdate]], mapped: Callable[[str, OpportunityUpdate], _Mapped]
) -> tuple[list[tuple[int, str, _Mapped]], dict[int, WriteOutcome]]:
    """The start of a batched ``write_opportunities``: each update's index, external id and values
    as the backend takes them (``mapped``), and the outcome of each whose values cannot be mapped
    (its ``FieldMappingError``), which fails it alone."""
    ready: list[tuple[int, str, _Mapped]] = []
    failed: dict[int, WriteOutcome] = {}
    for index, (external_id, data) in enumerate(updates):
        try:
            ready.append((index, external_id, mapped(external_id, data)))
        except FieldMappingError as error:
            failed[index] = WriteOutcome(external_id, error)
    return ready, failed


async def create_by_upsert(
    adapter: CRMAdapter, opportunity: OpportunityCreate, property_names: Mapping[str, str]
) -> str:
    """``create_opportunity`` of a backend whose ``upsert_opportunities`` is keyed on the sync key:
    a key the backend holds is updated, never created twice, and a record without a key gets a
    fresh one, so even its create is keyed. A refusal naming a mapped property (``property_names``:
    field -> the backend's property) is a ``FieldMappingError``, any other a ``WriteRefusedError``."""
    record = opportunity if opportunity.id is not None else opportunity.model_copy(update={"id": uuid4()})
    (outcome,) = await adapter.upsert_opportunities([record])
    if outcome.external_id is not None and outcome.ok:
        return outcome.external_id
    reason = outcome.reason or "no answer for this record"
    field = next((f for f, name in property_names.items() if name == outcome.property_name), None)
    if field is not None:
        raise FieldMappingError(outcome.record_id, field, str(outcome.property_name), getattr(record, field), reason)
    raise WriteRefusedError(outcome.record_id, reason)


class BatchReadAdapter(CRMAdapter):
    """The eight's reads and update for a backend that reads records by ids in batches, lists all
    of them page by page, reads changes from a cursor and writes with ``write_opportunity``
    (HubSpot, Salesforce). It comes after the backend's own layers in the adapter's bases, so
    their methods are the ones it uses."""

    @abstractmethod
    async def _by_ids(self, external_ids: Sequence[str]) -> list[ExternalOpportunityRead]:
        """The records with these ids, archived ones as ``in_trash``, in the order asked."""

    @abstractmethod
    async def _list_all(self, archived: bool) -> list[ExternalOpportunityRead]:
        """Every live record, or every archived one."""

    @abstractmethod
    async def read_changes(self, cursor: str | None) -> ChangeBatch:
        """Abstract here: ``get_changes_since`` is built on it (the default is built the other way)."""

    @abstractmethod
    async def write_opportunity(self, external_id: str, data: OpportunityUpdate) -> OpportunityRead:
        """Abstract here: ``update_opportunity`` is built on it (the default is built the other way)."""

    async def update_opportunity(self, external_id: str, data: OpportunityUpdate) -> None:
        await self.write_opportunity(external_id, data)

    async def get_opportunity(self, external_id: str) -> ExternalOpportunityRead | None:
        found = await self._by_ids([external_id])
        return found[0] if found else None

    async def get_opportunities(self, external_ids: Sequence[str]) -> list[OpportunityRead]:
        """The records with these ids in the batches ``_by_ids`` reads, archived ones as ``in_trash``."""
        return list[OpportunityRead](await self._by_ids(external_ids))

    async def list_opportunities(self, filters: OpportunityFilter) -> list[OpportunityRead]:
        """Every record (live, archived or both) read page by page, then filtered, ordered and paged."""
        modes = {False: [False], True: [True], None: [False, True]}[filters.archived]
        return listed([r for archived in modes for r in await self._list_all(archived)], filters)

    async def get_changes_since(self, since: datetime) -> list[ChangeRecord]:
        return (await self.read_changes(since.isoformat())).changes
