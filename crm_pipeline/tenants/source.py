"""Which tenants are synced: the registry in the deal store; while it is empty, the one tenant of
the ``CRM_PIPELINE_*`` settings (so `crm-pipeline sync` and the demo need no set-up). A
deployment that names a tenants file (``CRM_PIPELINE_TENANTS_FILE``, or the Dagster resource's
``tenants_file``) keeps reading it instead, as before the registry."""

from __future__ import annotations

from pathlib import Path

from crm_pipeline.settings import Settings
from crm_pipeline.store import Database
from crm_pipeline.tenants.connection import TenantConnection
from crm_pipeline.tenants.registry import TenantRegistry
from crm_pipeline.tenants.tenants_file import read_tenants_file


def settings_tenant(settings: Settings, tenant_id: str | None = None) -> TenantConnection:
    """The single tenant of the ``CRM_PIPELINE_*`` settings (or ``tenant_id`` on the settings' Notion)."""
    return TenantConnection(
        tenant_id=tenant_id or settings.tenant_id,
        database_id=settings.notion_database_id,
        data_source_id=settings.notion_data_source_id,
        base_url=settings.notion_base_url,
    )


def file_tenants(path: Path, settings: Settings) -> list[TenantConnection]:
    """The tenants of a tenants file, in its order; no file: the settings' tenant."""
    return read_tenants_file(path) if path.is_file() else [settings_tenant(settings)]


async def registry_tenants(database: Database, settings: Settings, *, active_only: bool) -> list[TenantConnection]:
    """The registry's connections (active ones only, or all) in one query; an empty registry:
    the settings' tenant."""
    registry = TenantRegistry(database)
    found = await registry.connections(active_only=active_only)
    if found or not await registry.is_empty():
        return found
    return [settings_tenant(settings)]


def _registry(database: Database | None) -> Database:
    if database is None:
        raise ValueError("the tenant registry is read through the deal store: open it first")
    return database


async def active_connections(database: Database | None, settings: Settings) -> list[TenantConnection]:
    """The tenants the schedule syncs. ``database`` (the deal store) is not read with a tenants file."""
    if settings.tenants_file is not None:
        return [tenant for tenant in file_tenants(settings.tenants_file, settings) if tenant.active]
    return await registry_tenants(_registry(database), settings, active_only=True)


async def active_tenants(settings: Settings) -> list[TenantConnection]:
    """The tenants the schedule syncs, opening the deal store only when the registry is read."""
    if settings.tenants_file is not None:
        return await active_connections(None, settings)
    async with await Database.open(settings) as database:
        return await active_connections(database, settings)


async def configured_connection(
    database: Database | None, settings: Settings, tenant_id: str
) -> TenantConnection | None:
    """The tenant's own connection, active or not: its entry in the tenants file or its row in
    the registry; None when it has none (the settings' tenant included)."""
    if settings.tenants_file is not None:
        path = settings.tenants_file
        return (
            next((tenant for tenant in read_tenants_file(path) if tenant.tenant_id == tenant_id), None)
            if path.is_file()
            else None
        )
    return await TenantRegistry(_registry(database)).get(tenant_id)


async def find_connection(database: Database | None, settings: Settings, tenant_id: str) -> TenantConnection | None:
    """The tenant's connection, active or not; while no tenant is configured, the settings' tenant."""
    if (configured := await configured_connection(database, settings, tenant_id)) is not None:
        return configured
    if tenant_id != settings.tenant_id:
        return None
    if settings.tenants_file is not None:
        nothing_configured = not settings.tenants_file.is_file()
    else:
        nothing_configured = await TenantRegistry(_registry(database)).is_empty()
    return settings_tenant(settings) if nothing_configured else None
