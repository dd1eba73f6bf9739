"""Dagster resources: the deal store, opened once per run on the run's event loop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import dagster as dg
from pydantic import PrivateAttr, SecretStr

from crm_pipeline.settings import get_settings
from crm_pipeline.store import Database, DealRepository


class DealStoreResource(dg.ConfigurableResource):
    """The PostgreSQL deal store for one tenant (the database comes from the project settings)."""

    tenant_id: str = get_settings().tenant_id
    database_url: str | None = None
    """None: the project settings decide (CRM_PIPELINE_DATABASE_URL, else the embedded server)."""
    _database: Database | None = PrivateAttr(default=None)

    @asynccontextmanager
    async def yield_for_execution(self, context: dg.InitResourceContext) -> AsyncIterator[DealStoreResource]:
        settings = get_settings()
        if self.database_url is not None:
            settings = settings.model_copy(update={"database_url": SecretStr(self.database_url)})
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
