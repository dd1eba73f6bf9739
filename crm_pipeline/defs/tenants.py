"""Tenant connections, as the code location has always named them; they live in
``crm_pipeline.tenants`` now, below the sync and this code location, which both open them."""

from crm_pipeline.tenants import (
    CONNECTOR_FIELDS,
    TOKEN_ENV_DEFAULT,
    TOKEN_ENV_DEFAULTS,
    Connector,
    TenantConnection,
    save_tenants,
    settings_tenant,
    tenant_toml,
)

__all__ = [
    "CONNECTOR_FIELDS",
    "TOKEN_ENV_DEFAULT",
    "TOKEN_ENV_DEFAULTS",
    "Connector",
    "TenantConnection",
    "save_tenants",
    "settings_tenant",
    "tenant_toml",
]
