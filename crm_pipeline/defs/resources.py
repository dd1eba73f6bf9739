"""Dagster resources: the deal store and the Notion connector, opened once per run on the run's
event loop (Dagster drives async resources and assets on one loop per run)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import dagster as dg
from pydantic import Field, PrivateAttr, SecretStr

from crm_pipeline.crm import NotionAdapter
from crm_pipeline.settings import get_settings
from crm_pipeline.store import Database, DealRepository


class DealStoreResource(dg.ConfigurableResource["DealStoreResource"]):
    """The PostgreSQL deal store for one tenant (the database comes from the project settings)."""

    tenant_id: str = get_settings().tenant_id
    database_url: str | None = Field(default=None, repr=False)
    """None: the project settings decide (CRM_PIPELINE_DATABASE_URL, else the embedded server).
    It may carry a password: give it as `dg.EnvVar`, never as a literal."""
    app_database_url: str | None = Field(default=None, repr=False)
    """The application's login (CRM_PIPELINE_APP_DATABASE_URL), required with `database_url`."""
    _database: Database | None = PrivateAttr(default=None)

    # Dagster's stub declares a sync context manager; an async one runs on the run's event loop.
    @asynccontextmanager
    async def yield_for_execution(self, context: dg.InitResourceContext) -> AsyncIterator[DealStoreResource]:  # type: ignore[override]
        settings = get_settings()
        if self.database_url is not None:
            settings = settings.model_copy(
                update={
                    "database_url": SecretStr(self.database_url),
                    "app_database_url": None if self.app_database_url is None else SecretStr(self.app_database_url),
                }
            )
        self._database = await Database.open(settings)
        try:
            yield self
        finally:
            await self._database.close()
            self._database = None

    @property
    def repository(self) -> DealRepository:
        if self._database is None:
            raise RuntimeError("DealStoreResource is used outside a run: it opens the database per run")
        return DealRepository(self._database)


class NotionResource(dg.ConfigurableResource["NotionResource"]):
    """The Notion deals database, through NotionAdapter (paced and retried).

    The token comes from `dg.EnvVar("CRM_PIPELINE_NOTION_TOKEN")`, resolved at launch and never
    shown in the UI.
    """

    token: str = Field(repr=False)
    database_id: str
    data_source_id: str | None = None
    base_url: str | None = None
    tenant_id: str = get_settings().tenant_id
    _adapter: NotionAdapter | None = PrivateAttr(default=None)

    # Dagster's stub declares a sync context manager; an async one runs on the run's event loop.
    @asynccontextmanager
    async def yield_for_execution(self, context: dg.InitResourceContext) -> AsyncIterator[NotionResource]:  # type: ignore[override]
        self._adapter = NotionAdapter(
            self.token,
            self.database_id,
            data_source_id=self.data_source_id,
            base_url=self.base_url,
            tenant_id=self.tenant_id,
        )
        try:
            yield self
        finally:
            await self._adapter.aclose()
            self._adapter = None

    @property
    def adapter(self) -> NotionAdapter:
        if self._adapter is None:
            raise RuntimeError("NotionResource is used outside a run: it opens its client per run")
        return self._adapter
