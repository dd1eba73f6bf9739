"""CRMAdapter: the one interface every CRM backend implements.

The eight abstract methods are the whole contract a new connector (Salesforce, HubSpot …) must
meet; `docs/connectors.md` spells out their semantics. Anything more a sync can use (bulk writes,
archiving, per-field timestamps) is an extra method that a backend declares in its
`AdapterCapabilities`, so a minimal connector still syncs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime

from crm_pipeline.models import (
    ActivityCreate,
    ChangeRecord,
    ContactCreate,
    ContactUpdate,
    OpportunityCreate,
    OpportunityFilter,
    OpportunityRead,
    OpportunityUpdate,
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


class CRMAdapter(ABC):
    """A CRM backend, seen by the sync engine. Ids are the backend's own, as strings."""

    capabilities: AdapterCapabilities = AdapterCapabilities()

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
