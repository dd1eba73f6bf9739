"""Dagster resources: the deal store and the Notion connector, opened once per run on the run's
event loop (Dagster drives async resources and assets on one loop per run).

Both resolve what they are not given from the project settings when a run starts, never at
import, so every Dagster command works from a checkout with no settings at all: the embedded deal
store, and without a Notion token the sandbox Notion that `crm-pipeline dev` (or
`crm-pipeline sandbox`) serves on the sandbox port.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import dagster as dg
from pydantic import Field, PrivateAttr, SecretStr

from crm_pipeline.crm import NotionAdapter
from crm_pipeline.demo import DEMO_NOTION_DATABASE_ID
from crm_pipeline.sandbox import DEFAULT_TOKEN
from crm_pipeline.settings import get_settings
from crm_pipeline.store import Database, DealRepository


class DealStoreResource(dg.ConfigurableResource["DealStoreResource"]):
    """The PostgreSQL deal store for one tenant (the database comes from the project settings)."""

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
    def repository(self) -> DealRepository:
        if self._database is None:
            raise RuntimeError("DealStoreResource is used outside a run: it opens the database per run")
        return DealRepository(self._database)


class NotionResource(dg.ConfigurableResource["NotionResource"]):
    """The Notion deals database, through NotionAdapter (paced and retried).

    Left empty, the token comes from CRM_PIPELINE_NOTION_TOKEN when a run starts (never shown in
    the UI); with no token anywhere, the resource talks to the sandbox Notion's Deals database.
    """

    token: str = Field(default="", repr=False)
    database_id: str = ""
    data_source_id: str | None = None
    base_url: str | None = None
    tenant_id: str = ""
    _adapter: NotionAdapter | None = PrivateAttr(default=None)

    # Dagster runs an async `yield_for_execution` on the run's loop; its stubs know only the sync one.
    @asynccontextmanager
    async def yield_for_execution(  # type: ignore[override]
        self, context: dg.InitResourceContext
    ) -> AsyncIterator[NotionResource]:
        self._adapter = self._open_adapter()
        try:
            yield self
        finally:
            await self._adapter.aclose()
            self._adapter = None

    def _open_adapter(self) -> NotionAdapter:
        """The adapter for what this resource names, the project settings filling the gaps."""
        settings = get_settings()
        token = self.token or (settings.notion_token.get_secret_value() if settings.notion_token else "")
        tenant_id = self.tenant_id or settings.tenant_id
        data_source_id = self.data_source_id or settings.notion_data_source_id
        base_url = self.base_url or settings.notion_base_url
        if not token:
            return NotionAdapter(
                DEFAULT_TOKEN,
                self.database_id or DEMO_NOTION_DATABASE_ID,
                data_source_id=data_source_id,
                base_url=base_url or f"http://127.0.0.1:{settings.sandbox_port}",
                tenant_id=tenant_id,
            )
        database_id = self.database_id or settings.notion_database_id
        if not database_id:
            raise ValueError(
                "a Notion token is set, so the sandbox is not used: set CRM_PIPELINE_NOTION_DATABASE_ID to the "
                "Notion database holding the deals (or unset the token to use the sandbox)"
            )
        return NotionAdapter(token, database_id, data_source_id=data_source_id, base_url=base_url, tenant_id=tenant_id)

    @property
    def adapter(self) -> NotionAdapter:
        if self._adapter is None:
            raise RuntimeError("NotionResource is used outside a run: it opens its client per run")
        return self._adapter
