"""What a ``SyncEngine`` is set up with: its two sides and settings (each documented where the
constructor keeps it), the status store it reaches through the deal store, and what the external
adapter discovered about its connection, kept in the deal store across processes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from crm_pipeline.crm.adapter import CRMAdapter, Discovery
from crm_pipeline.crm.postgres import PostgresAdapter
from crm_pipeline.sync.model import EXTERNAL_TIME_PRECISION
from crm_pipeline.sync.ownership import FieldOwnershipConfig
from crm_pipeline.sync.pass_rules import MAX_VANISHED_SHARE
from crm_pipeline.sync.status import ConnectionState, SyncStatus

TIME_BUDGET_SHARE = 0.8
"""The share of the sync interval a pass may spend starting writes (the default time budget)."""

CREATES_PER_PASS = 5_000
"""Deals without a link a pass plans to create at most (the default ``creates_per_pass``)."""

DISCOVERY_RECHECK_SECONDS = 3600.0
"""How long a kept discovery is relied on before it is asked again in full (Notion: the database,
the data source and the bot user, three requests): what writes rely on is asked before each pass
that writes anyway, so this only bounds how stale the rest may get."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


class EngineSetup:
    """A ``SyncEngine``'s sides, settings and status store, and its external adapter's discovery
    kept across processes: what every stage of a pass works with."""

    def __init__(
        self,
        primary: CRMAdapter,
        external: CRMAdapter | None,
        field_ownership: FieldOwnershipConfig,
        sync_interval_seconds: int = 60,
        *,
        connector: str | None = None,
        time_budget_seconds: float | None = None,
        trash_check_seconds: float = 300,
        reconcile_seconds: float = 300,
        reconcile_per_pass: int = 50,
        max_vanished_share: float = MAX_VANISHED_SHARE,
        creates_per_pass: int = CREATES_PER_PASS,
        discovery_recheck_seconds: float = DISCOVERY_RECHECK_SECONDS,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        if external is not None and not isinstance(primary, PostgresAdapter):
            raise TypeError(
                f"the primary is a {type(primary).__name__}: with an external CRM it must be the deal store's "
                "PostgresAdapter, whose database holds the sync's state (links, bases, watermarks, the error ledger)"
            )
        self.primary = primary
        self.external = external
        self.field_ownership = field_ownership
        self.sync_interval_seconds = sync_interval_seconds
        self._connector = connector or (type(external).__name__.removesuffix("Adapter").lower() if external else "none")
        self.time_budget_seconds = (
            TIME_BUDGET_SHARE * sync_interval_seconds if time_budget_seconds is None else time_budget_seconds
        )
        """How long after its start a pass may start new writes (its reads count); what is left
        waits in the ledger for the next."""
        self.trash_check_seconds = trash_check_seconds
        """How often a pass also reads the external trash (deletes and restores made there)."""
        self.reconcile_seconds = reconcile_seconds
        self.reconcile_per_pass = reconcile_per_pass
        """Every ``reconcile_seconds`` a pass re-reads this many linked records in full (in id
        order, starting over after the last), to catch what the watermark missed: edits hidden by
        rounding, deletes, lost access."""
        self.max_vanished_share = max_vanished_share
        """The mass-delete breaker: when more of the linked records than this share vanish in one
        pass, none is queued for deletion and the pass says so."""
        self.creates_per_pass = creates_per_pass
        """A pass plans creates for at most this many deals without a link, the first in id order
        (``SyncStatus.unlinked``); the next passes find the rest there, and the ones its time
        budget left, so a load of any size costs each pass the same and none of it waits in the
        ledger. A deal whose create failed is retried from the ledger, beside them."""
        self.discovery_recheck_seconds = discovery_recheck_seconds
        """How long what the adapter discovered (kept in the deal store) is reused before it is asked
        again in full; ``clock`` tells the time for it."""
        self.clock = clock
        self._kept: ConnectionState | None = None
        self._kept_loaded = False
        self._asking_in_full = False
        """The adapter discovers everything afresh this pass: what it finds is stamped ``checked_at``."""
        self._last_sync: datetime | None = None
        resolution = external.capabilities.timestamp_resolution_seconds if external is not None else 0
        self._precision = timedelta(seconds=resolution) if resolution else EXTERNAL_TIME_PRECISION
        """How finely the external side dates edits (Notion: a minute, HubSpot: a millisecond):
        two edits closer than this are a tie (the person's edit is kept); unknown: a minute."""

    def has_external(self) -> bool:
        return self.external is not None

    @property
    def deal_store(self) -> PostgresAdapter:
        """The primary as the deal store, which every stage of a pass reads and writes. Only an
        engine with nothing to sync (no external CRM) may have another primary."""
        if not isinstance(self.primary, PostgresAdapter):
            raise TypeError(f"the primary is a {type(self.primary).__name__}, not the deal store's PostgresAdapter")
        return self.primary

    @cached_property
    def status(self) -> SyncStatus:
        """The sync's state for this tenant and connector, in the deal store."""
        return SyncStatus(self.deal_store.repository, self.deal_store.tenant_id, self._connector)

    async def close(self) -> None:
        """Close the adapters' connections (the deal store's pool belongs to its owner)."""
        if self.external is not None:
            await self.external.aclose()

    # --- what the adapter discovered, kept across processes -------------------------------------

    async def _use_discovery(self) -> None:
        """Before the external side is used: let the adapter rely on what it (or an earlier
        process) discovered, kept in the deal store, unless ``discovery_recheck_seconds`` have
        passed since it was asked in full: then it asks everything again."""
        assert self.external is not None
        if not self._kept_loaded:
            self._kept, self._kept_loaded = await self.status.connection_state(), True
        kept = self._kept
        if kept is None:
            self._asking_in_full = True  # nothing kept: the adapter asks on first use
        elif self.clock() - kept.checked_at >= timedelta(seconds=self.discovery_recheck_seconds):
            self._asking_in_full = True
            await self.external.rediscover(everything=True)
        elif self.external.discovery() is None and not self.external.reuse_discovery(kept.discovery):
            self._asking_in_full = True  # kept for another configuration

    async def _keep_discovery(self) -> None:
        """After a stage: what the adapter relies on now, kept for the next process when it
        changed (stamped with the clock when it was asked in full)."""
        assert self.external is not None
        current = self.external.discovery()
        kept = self._kept
        if current is None or (not self._asking_in_full and kept is not None and _same(current, kept.discovery)):
            return
        checked_at = kept.checked_at if kept is not None and not self._asking_in_full else self.clock()
        self._kept = ConnectionState(current.model_dump(mode="json"), checked_at)
        self._asking_in_full = False
        await self.status.set_connection_state(self._kept)


def _same(discovery: Discovery, kept: Mapping[str, Any]) -> bool:
    """Whether a discovery is the one kept (compared as values: JSON lists of sets have no order)."""
    return type(discovery).reusable(kept, discovery.basis) == discovery
