"""Tenant connections: which tenants the code location syncs, and with which external CRM.

They live in a TOML file an operator edits or extends with `crm-pipeline tenants add`
(``CRM_PIPELINE_TENANTS_FILE``, default ``<data_dir>/tenants.toml``). A connection names the
environment variable holding its token, never the token, and which connector serves it (Notion
or HubSpot); each connector has its own fields and token variable default. Without the file, the one tenant of the
``CRM_PIPELINE_*`` settings is synced (the demo tenant against the sandbox out of the box), as
`crm-pipeline sync` does.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from crm_pipeline.settings import Settings

TOKEN_ENV_DEFAULT = "CRM_PIPELINE_NOTION_TOKEN"
Connector = Literal["notion", "hubspot"]
TOKEN_ENV_DEFAULTS: dict[str, str] = {"notion": TOKEN_ENV_DEFAULT, "hubspot": "CRM_PIPELINE_HUBSPOT_TOKEN"}
CONNECTOR_FIELDS: dict[str, frozenset[str]] = {
    "notion": frozenset({"database_id", "data_source_id"}),
    "hubspot": frozenset({"pipeline"}),
}
"""The fields only one connector reads: set on a tenant of another connector, they are refused
(a HubSpot tenant with a Notion database id is a mistake, not something to ignore)."""
_SLUG = r"^[a-z0-9][a-z0-9_-]*$"
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class TenantConnection(BaseModel, frozen=True):
    """One tenant's connection to its external CRM (no secrets: ``token_env`` is a variable's name)."""

    tenant_id: str = Field(pattern=_SLUG)
    connector: Connector = "notion"
    database_id: str | None = None
    """Notion: the database holding the tenant's deals (None: the sandbox's Deals database)."""
    data_source_id: str | None = None
    """Notion: which data source of the database, when it has several."""
    pipeline: str | None = None
    """HubSpot: the deal pipeline's id (None: the account's ``default`` pipeline)."""
    token_env: str = Field(default=TOKEN_ENV_DEFAULT, pattern=_ENV_NAME)
    """The environment variable holding the token (default per connector); unset there means the
    local API `crm-pipeline dev` serves: the sandbox Notion, or the local HubSpot."""
    base_url: str | None = None
    """The API's base URL (None: the connector's public API, or its local API without a token)."""
    active: bool = True

    @model_validator(mode="before")
    @classmethod
    def _per_connector(cls, data: Any) -> Any:
        """The connector's token variable by default, and none of another connector's fields."""
        if not isinstance(data, dict):
            return data
        connector = data.get("connector", "notion")
        if connector not in CONNECTOR_FIELDS:
            return data  # the Literal refuses it, naming the connectors there are
        foreign = sorted(
            name
            for other, names in CONNECTOR_FIELDS.items()
            if other != connector
            for name in names
            if data.get(name) is not None
        )
        if foreign:
            raise ValueError(f"a {connector} connection has no {', '.join(foreign)}")
        if data.get("token_env") is None:
            data = {**data, "token_env": TOKEN_ENV_DEFAULTS[connector]}
        return data

    @property
    def integration(self) -> str:
        """What a rate budget is shared by: one integration (token) of one connector may serve
        several tenants, and each connector's API budgets its own integrations."""
        return f"{self.connector}:{self.token_env}"


def tenants_file(settings: Settings) -> Path:
    return settings.tenants_file or settings.data_dir / "tenants.toml"


def settings_tenant(settings: Settings) -> TenantConnection:
    """The single tenant of the ``CRM_PIPELINE_*`` settings, as `crm-pipeline sync` uses it."""
    return TenantConnection(
        tenant_id=settings.tenant_id,
        database_id=settings.notion_database_id,
        data_source_id=settings.notion_data_source_id,
        base_url=settings.notion_base_url,
    )


def load_tenants(settings: Settings) -> list[TenantConnection]:
    """Every configured tenant connection (active or not), in the file's order."""
    path = tenants_file(settings)
    if not path.is_file():
        return [settings_tenant(settings)]
    document = tomllib.loads(path.read_text(encoding="utf-8"))
    return [TenantConnection.model_validate(entry) for entry in document.get("tenant", [])]


def active_tenants(settings: Settings) -> list[TenantConnection]:
    return [tenant for tenant in load_tenants(settings) if tenant.active]


def find_tenant(settings: Settings, tenant_id: str) -> TenantConnection:
    for tenant in load_tenants(settings):
        if tenant.tenant_id == tenant_id:
            return tenant
    raise LookupError(f"tenant {tenant_id!r} is not configured in {tenants_file(settings)}")


def tenant_toml(tenant: TenantConnection) -> str:
    """One ``[[tenant]]`` table of the file (JSON strings are valid TOML basic strings)."""
    lines = ["[[tenant]]"]
    for name, value in tenant.model_dump(exclude_none=True).items():
        lines.append(f"{name} = {json.dumps(value)}")
    return "\n".join(lines)


def save_tenants(path: Path, tenants: Sequence[TenantConnection]) -> None:
    """Write the file as ``[[tenant]]`` tables."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n\n".join(tenant_toml(tenant) for tenant in tenants) + "\n", encoding="utf-8")


def add_tenant(settings: Settings, tenant: TenantConnection) -> Path:
    """Add (or replace) a tenant in the file; a first add keeps the settings' tenant beside it."""
    path = tenants_file(settings)
    current = load_tenants(settings)
    kept = [existing for existing in current if existing.tenant_id != tenant.tenant_id]
    save_tenants(path, [*kept, tenant])
    return path
