"""Tenants and their CRM connections: the registry in the deal store, where each token is found,
and the one place a connection is opened (below the sync and the Dagster code location, which
both use it)."""

from crm_pipeline.tenants.connection import (
    CONNECTOR_FIELDS,
    TOKEN_ENV_DEFAULT,
    TOKEN_ENV_DEFAULTS,
    Connector,
    EnvToken,
    FileToken,
    StoredToken,
    TenantConnection,
    TokenReference,
)
from crm_pipeline.tenants.open import (
    HubSpotOptions,
    NotionOptions,
    SalesforceOptions,
    open_connection,
    sandbox_hubspot,
    sandbox_notion,
    sandbox_salesforce,
)
from crm_pipeline.tenants.registry import TenantRegistry
from crm_pipeline.tenants.secrets import SecretKeyError, TokenUnavailableError, read_token
from crm_pipeline.tenants.source import active_connections, active_tenants, find_connection, settings_tenant
from crm_pipeline.tenants.tenants_file import read_tenants_file, save_tenants, tenant_toml

__all__ = [
    "CONNECTOR_FIELDS",
    "TOKEN_ENV_DEFAULT",
    "TOKEN_ENV_DEFAULTS",
    "Connector",
    "EnvToken",
    "FileToken",
    "HubSpotOptions",
    "NotionOptions",
    "SalesforceOptions",
    "SecretKeyError",
    "StoredToken",
    "TenantConnection",
    "TenantRegistry",
    "TokenReference",
    "TokenUnavailableError",
    "active_connections",
    "active_tenants",
    "find_connection",
    "open_connection",
    "read_tenants_file",
    "read_token",
    "sandbox_hubspot",
    "sandbox_notion",
    "sandbox_salesforce",
    "save_tenants",
    "settings_tenant",
    "tenant_toml",
]
