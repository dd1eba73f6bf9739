"""Dagster resources: the deal store and the external CRM connection.

Assets see the deal store as a ``PostgresAdapter`` and the external CRM as a ``CRMAdapter``, opened
for the run's tenant by the connector its connection names: ``CRMConnectionResource``, bound to the
``crm`` key, hands each tenant to its connector (``NotionConnector``, ``HubSpotConnector``,
``SalesforceConnector``). Another
connector is another ``CRMConnector`` and an entry there, not new assets. Nothing is read from the environment at import; what a resource is not given
comes from the project settings when a run starts, so every Dagster command works from a checkout
with no settings at all (the embedded deal store, the sandbox Notion, the local HubSpot and
Salesforce). Secrets
are config only as ``dg.EnvVar``; a tenant's token is read from the reference its connection holds
(a variable, a file, or stored encrypted) when the run opens it, by ``crm_pipeline.tenants``,
which `crm-pipeline sync` opens connections with too.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from pydantic import Field, PrivateAttr, SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from crm_pipeline.crm import NotionAdapter, PostgresAdapter, hubspot, salesforce
from crm_pipeline.crm.adapter import CRMAdapter
from crm_pipeline.crm.budget import RequestBudget
from crm_pipeline.crm.hubspot import HubSpotAdapter
from crm_pipeline.crm.notion.client import RateLimit, RetryPolicy
from crm_pipeline.crm.salesforce import SalesforceAdapter
from crm_pipeline.settings import Settings, get_settings
from crm_pipeline.store import Database, DealRepository
from crm_pipeline.tenants import HubSpotOptions, NotionOptions, SalesforceOptions, TenantConnection, read_token
from crm_pipeline.tenants.open import SharedPool, open_hubspot, open_notion, open_salesforce
from crm_pipeline.tenants.source import active_connections, active_tenants, find_connection


class DealStoreResource(dg.ConfigurableResource["DealStoreResource"]):
    """The PostgreSQL deal store (the database comes from the project settings unless given)."""

    tenant_id: str = ""
    """Empty: the project's tenant (CRM_PIPELINE_TENANT_ID), resolved when a run starts."""
    database_url: str | None = Field(default=None, repr=False)
    """None: the project settings decide (CRM_PIPELINE_DATABASE_URL, else the embedded server).
    It may carry a password: give it as `dg.EnvVar`, never as a literal."""
    app_database_url: str | None = Field(default=None, repr=False)
    """The application's login (CRM_PIPELINE_APP_DATABASE_URL), required with `database_url`."""
    _database: Database | None = PrivateAttr(default=None)

    # Dagster runs an async `yield_for_execution` on the run's loop; its stubs know only the sync one.
    @asynccontextmanager
    async def yield_for_execution(  # type: ignore[override]
        self, context: dg.InitResourceContext
    ) -> AsyncIterator[DealStoreResource]:
        settings = get_settings()
        if self.database_url is not None:
            settings = settings.model_copy(
                update={
                    "database_url": SecretStr(self.database_url),
                    "app_database_url": None if self.app_database_url is None else SecretStr(self.app_database_url),
                }
            )
        resolved = self.model_copy(update={"tenant_id": self.tenant_id or settings.tenant_id})
        resolved._database = await Database.open(settings)
        try:
            yield resolved
        finally:
            await resolved._database.close()
            resolved._database = None

    @property
    def database(self) -> Database:
        if self._database is None:
            raise RuntimeError("DealStoreResource is used outside a run: it opens the database per run")
        return self._database

    @property
    def repository(self) -> DealRepository:
        return DealRepository(self.database)

    @property
    def engine(self) -> AsyncEngine:
        """The application's connection pool (what a ``PostgresBudget`` reserves through)."""
        return self.database.engine

    def primary(self, tenant_id: str) -> PostgresAdapter:
        """The deal store of one tenant, as the sync engine's primary side."""
        return PostgresAdapter(self.repository, tenant_id)


@dataclass
class RequestCount:
    """HTTP requests an adapter sent (retries included): what a run used of the rate budget."""

    sent: int = 0

    def add(self) -> None:
        """One more request sent (the adapters' ``on_request`` hook)."""
        self.sent += 1


class CRMConnector(dg.Config, ABC):
    """How one connector opens a tenant's adapter, and the request budget it paces it to."""

    token: str = Field(default="", repr=False)
    """Overrides every tenant's own token (give it as ``dg.EnvVar``); empty: each tenant's, read
    from its reference when the run opens it."""

    def tenant_token(self, tenant: TenantConnection) -> SecretStr | None:
        """The token to open the tenant with (None: its connector's local API)."""
        return SecretStr(self.token) if self.token else read_token(tenant, get_settings().secret_keys)

    @abstractmethod
    def connect(
        self,
        tenant: TenantConnection,
        requests: RequestCount,
        budget: RequestBudget | None = None,
        pool: SharedPool | None = None,
    ) -> CRMAdapter:
        """An adapter for the tenant's connection, counting its requests into ``requests`` and
        pacing them by ``budget``, the integration's across processes (None: this process's own);
        a connector that speaks through ``pool`` shares its connections with the run's others."""

    @property
    @abstractmethod
    def requests_per_minute(self) -> int:
        """The request budget per integration, as this connector paces it."""


class NotionConnector(CRMConnector):
    """Notion, through NotionAdapter (paced and retried) with the synced property map.

    With no token anywhere, the tenant's database (the Deals database by default) is served by
    the sandbox Notion.
    """

    base_url: str | None = None
    requests_per_second: float = RateLimit.requests_per_second
    max_attempts: int = RetryPolicy.max_attempts
    """Attempts per request (retryable failures only); a write still failing waits in the error
    ledger for the next pass."""

    @property
    def requests_per_minute(self) -> int:
        return int(self.requests_per_second * 60)

    def connect(
        self,
        tenant: TenantConnection,
        requests: RequestCount,
        budget: RequestBudget | None = None,
        pool: SharedPool | None = None,
    ) -> NotionAdapter:
        options = NotionOptions(self.base_url, self.requests_per_second, self.max_attempts)
        token = self.tenant_token(tenant)
        return open_notion(tenant, token, get_settings(), options, budget=budget, on_request=requests.add, pool=pool)


class HubSpotConnector(CRMConnector):
    """HubSpot, through HubSpotAdapter (paced per app and retried) in the tenant's deal pipeline.

    With no token anywhere, the tenant's deals are in the local HubSpot (docs/hubspot-sandbox.md).
    """

    base_url: str | None = None
    per_ten_seconds: int = hubspot.RateLimit.per_ten_seconds
    """Requests per app in any ten seconds, under HubSpot's 100 (190 on Professional/Enterprise);
    0: unpaced (a local HubSpot without limits)."""
    max_attempts: int = hubspot.RetryPolicy.max_attempts

    @property
    def requests_per_minute(self) -> int:
        return self.per_ten_seconds * 6

    def connect(
        self,
        tenant: TenantConnection,
        requests: RequestCount,
        budget: RequestBudget | None = None,
        pool: SharedPool | None = None,
    ) -> HubSpotAdapter:
        options = HubSpotOptions(self.base_url, self.per_ten_seconds, self.max_attempts)
        return open_hubspot(
            tenant, self.tenant_token(tenant), get_settings(), options, budget=budget, on_request=requests.add
        )


class SalesforceConnector(CRMConnector):
    """Salesforce, through SalesforceAdapter (paced per org, its daily allowance kept above a
    floor, retried) on the org the tenant's base URL names.

    With no token anywhere, the tenant's deals are in the local Salesforce (docs/salesforce-sandbox.md).
    """

    base_url: str | None = None
    """An instance URL over every tenant's own."""
    per_minute: int = salesforce.RateLimit.per_minute
    """Requests per org in any minute (Salesforce counts a day's; this spreads a pass's); 0: no window."""
    max_attempts: int = salesforce.RetryPolicy.max_attempts

    @property
    def requests_per_minute(self) -> int:
        return self.per_minute

    def connect(
        self,
        tenant: TenantConnection,
        requests: RequestCount,
        budget: RequestBudget | None = None,
        pool: SharedPool | None = None,
    ) -> SalesforceAdapter:
        options = SalesforceOptions(self.base_url, self.per_minute, self.max_attempts)
        return open_salesforce(
            tenant, self.tenant_token(tenant), get_settings(), options, budget=budget, on_request=requests.add
        )


class CRMConnectionResource(dg.ConfigurableResource["CRMConnectionResource"]):
    """Each tenant's external CRM, opened as a ``CRMAdapter`` by the connector its connection
    names (``tenant.connector``); each connector is configured in its own field."""

    notion: NotionConnector = NotionConnector()
    hubspot: HubSpotConnector = HubSpotConnector()
    salesforce: SalesforceConnector = SalesforceConnector()
    _opened: dict[str, tuple[CRMAdapter, RequestCount]] = PrivateAttr(default_factory=dict)
    _pool: SharedPool | None = PrivateAttr(default=None)

    def connector(self, tenant: TenantConnection) -> CRMConnector:
        connectors: dict[str, CRMConnector] = {
            "notion": self.notion,
            "hubspot": self.hubspot,
            "salesforce": self.salesforce,
        }
        return connectors[tenant.connector]

    def requests_per_minute(self, tenant: TenantConnection) -> int:
        """The request budget of the tenant's integration, as its connector paces it."""
        return self.connector(tenant).requests_per_minute

    # Dagster runs an async `yield_for_execution` on the run's loop; its stubs know only the sync one.
    @asynccontextmanager
    async def yield_for_execution(  # type: ignore[override]
        self, context: dg.InitResourceContext
    ) -> AsyncIterator[CRMConnectionResource]:
        self._pool = SharedPool.for_environment()
        try:
            yield self
        finally:
            for adapter, _ in self._opened.values():
                await adapter.aclose()
            self._opened.clear()
            if self._pool is not None:
                await self._pool.close_pool()
                self._pool = None

    def open(self, tenant: TenantConnection, budget: RequestBudget | None = None) -> tuple[CRMAdapter, RequestCount]:
        """The tenant's adapter for this run and its request count: opened on first use and
        shared by the run's steps (one binding to the schema, one client), closed with the run.
        ``budget`` paces it with every other run on the same token (``PostgresBudget``). The
        run's clients share one pool of connections."""
        if tenant.tenant_id not in self._opened:
            requests = RequestCount()
            adapter = self.connector(tenant).connect(tenant, requests, budget, self._pool)
            self._opened[tenant.tenant_id] = (adapter, requests)
        return self._opened[tenant.tenant_id]

    async def close(self, tenant_id: str) -> None:
        """Close the tenant's adapter before the run ends (a sweep opens hundreds)."""
        opened = self._opened.pop(tenant_id, None)
        if opened is not None:
            await opened[0].aclose()


class TenantsResource(dg.ConfigurableResource["TenantsResource"]):
    """The tenant connections: the registry in the deal store (``crm_pipeline.tenants``), or a
    tenants file when one is named."""

    tenants_file: str | None = None
    """A TOML file of tenants to read instead of the registry; None: CRM_PIPELINE_TENANTS_FILE
    when set, else the registry (while it is empty, the settings' tenant)."""

    def _settings(self) -> Settings:
        settings = get_settings()
        return (
            settings
            if self.tenants_file is None
            else settings.model_copy(update={"tenants_file": Path(self.tenants_file)})
        )

    def active(self) -> list[TenantConnection]:
        """Every active tenant, in one query: for the schedule and the partitions sensor, which
        run outside any event loop."""
        return asyncio.run(active_tenants(self._settings()))

    async def active_in(self, database: Database) -> list[TenantConnection]:
        """Every active tenant, read through a run's deal store (``database``)."""
        return await active_connections(database, self._settings())

    async def get(self, tenant_id: str, database: Database) -> TenantConnection:
        """The tenant's connection, read through the run's deal store (``database``)."""
        found = await find_connection(database, self._settings(), tenant_id)
        if found is None:
            raise LookupError(f"tenant {tenant_id!r} has no connection: add it with `crm-pipeline tenants add`")
        return found
