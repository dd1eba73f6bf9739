"""The one place a tenant's connection is opened as a ``CRMAdapter``: Dagster's runs and
`crm-pipeline sync` both come here.

A connection without a token is served by the local API `crm-pipeline dev` runs: the sandbox
Notion (its demo Deals database unless another is named), the local HubSpot or the local Salesforce.
"""

from __future__ import annotations

import ssl
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import httpx
from pydantic import SecretStr

from crm_pipeline.crm import NotionAdapter, hubspot, salesforce
from crm_pipeline.crm.adapter import CRMAdapter
from crm_pipeline.crm.budget import RequestBudget
from crm_pipeline.crm.hubspot import HubSpotAdapter
from crm_pipeline.crm.notion import DataSourceConfigError
from crm_pipeline.crm.notion.client import RateLimit, RetryPolicy
from crm_pipeline.crm.notion.properties import SYNCED_PROPERTY_MAP
from crm_pipeline.crm.salesforce import InstanceConfigError, SalesforceAdapter
from crm_pipeline.hubspot_sandbox import DEFAULT_TOKEN as HUBSPOT_SANDBOX_TOKEN
from crm_pipeline.salesforce_sandbox import DEFAULT_TOKEN as SALESFORCE_SANDBOX_TOKEN
from crm_pipeline.sandbox import DEFAULT_TOKEN
from crm_pipeline.settings import Settings
from crm_pipeline.tenants.connection import TenantConnection

# The ids of the Deals database in crm_pipeline/sandbox/deals_seed.json: code written against the
# sandbox (the README's example, the Notion resource's default) finds the Deals database in both.
DEMO_NOTION_DATABASE_ID = "2a1b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
DEMO_NOTION_DATA_SOURCE_ID = "3b2c4d5e-6f70-4b8c-9dae-1f203a4b5c6d"


def sandbox_notion(sandbox_port: int, database_id: str | None, base_url: str | None) -> tuple[str, str, str]:
    """Token, database id and base URL of a Notion connection that has no token: the sandbox that
    `crm-pipeline dev` serves on ``sandbox_port``, and its demo Deals database unless another is named."""
    return DEFAULT_TOKEN, database_id or DEMO_NOTION_DATABASE_ID, base_url or f"http://127.0.0.1:{sandbox_port}"


def sandbox_hubspot(hubspot_sandbox_port: int, base_url: str | None) -> tuple[str, str]:
    """Token and base URL of a HubSpot connection that has no token: the local HubSpot that
    `crm-pipeline dev` serves on ``hubspot_sandbox_port``, unless another base URL is named."""
    return HUBSPOT_SANDBOX_TOKEN, base_url or f"http://127.0.0.1:{hubspot_sandbox_port}"


def sandbox_salesforce(salesforce_sandbox_port: int, base_url: str | None) -> tuple[str, str]:
    """Token and instance URL of a Salesforce connection that has no token: the local Salesforce
    that `crm-pipeline dev` serves on ``salesforce_sandbox_port``, unless another base URL is named."""
    return SALESFORCE_SANDBOX_TOKEN, base_url or f"http://127.0.0.1:{salesforce_sandbox_port}"


@dataclass(frozen=True)
class NotionOptions:
    """How Notion connections are opened: a base URL over the tenants' own, and the pacing."""

    base_url: str | None = None
    requests_per_second: float = RateLimit.requests_per_second
    max_attempts: int = RetryPolicy.max_attempts


@dataclass(frozen=True)
class HubSpotOptions:
    """How HubSpot connections are opened: a base URL over the tenants' own, and the pacing
    (``per_ten_seconds`` 0: unpaced, for a local HubSpot without limits)."""

    base_url: str | None = None
    per_ten_seconds: int = hubspot.RateLimit.per_ten_seconds
    max_attempts: int = hubspot.RetryPolicy.max_attempts


@dataclass(frozen=True)
class SalesforceOptions:
    """How Salesforce connections are opened: an instance URL over the tenants' own, and the
    pacing (``per_minute`` 0: no window, for a local Salesforce; the org's daily allowance and its
    floor hold regardless)."""

    base_url: str | None = None
    per_minute: int = salesforce.RateLimit.per_minute
    max_attempts: int = salesforce.RetryPolicy.max_attempts


@cache
def tls_context() -> ssl.SSLContext:
    """The TLS context of every Notion client this process opens: httpx's default (the CA bundle,
    certificates and host names verified), loaded once: a sweep opens a client per tenant, and
    loading the CA bundle for each was a third of an idle pass's CPU."""
    return httpx.create_ssl_context()


class SharedPool(httpx.AsyncBaseTransport):
    """One pool of HTTP connections for the Notion clients of a run: a sweep opens a client per
    tenant, and each used to open its own connection (and TLS handshake) to the API for one or two
    requests. Clients lent the pool reuse its kept-alive connections; a client closing leaves it
    open for the others, and its owner closes it (``close_pool``)."""

    def __init__(self) -> None:
        self._pool = httpx.AsyncHTTPTransport(verify=tls_context())

    @classmethod
    def for_environment(cls) -> SharedPool | None:
        """A pool, unless the environment names an HTTP proxy: then each client keeps its own,
        which follows the proxy settings (and their exceptions) as httpx reads them."""
        return None if urllib.request.getproxies() else cls()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._pool.handle_async_request(request)

    async def aclose(self) -> None:
        """A client is done with the pool: the pool stays open for the others."""

    async def close_pool(self) -> None:
        await self._pool.aclose()


def open_notion(
    tenant: TenantConnection,
    token: SecretStr | None,
    settings: Settings,
    options: NotionOptions = NotionOptions(),
    *,
    budget: RequestBudget | None = None,
    on_request: Callable[[], None] | None = None,
    pool: SharedPool | None = None,
) -> NotionAdapter:
    """The tenant's Notion database, mapped for sync; without a token, the sandbox's. Its client
    sends through ``pool`` when given, else through connections of its own."""
    base_url = options.base_url or tenant.base_url
    database_id = tenant.database_id
    if token is None:
        secret, database_id, base_url = sandbox_notion(settings.sandbox_port, database_id, base_url)
        token = SecretStr(secret)
    elif not database_id:
        raise DataSourceConfigError(
            f"tenant {tenant.tenant_id!r} has a Notion token ({tenant.token}), so the sandbox is not used: "
            "configure its database_id"
        )

    async def count(request: httpx.Request) -> None:
        assert on_request is not None
        on_request()

    return NotionAdapter(
        token,
        database_id,
        data_source_id=tenant.data_source_id,
        base_url=base_url,
        tenant_id=tenant.tenant_id,
        property_map=SYNCED_PROPERTY_MAP,
        rate_limit=RateLimit(requests_per_second=options.requests_per_second, shared=budget),
        retry=RetryPolicy(max_attempts=options.max_attempts),
        http_client=httpx.AsyncClient(
            verify=tls_context(), transport=pool, event_hooks={"request": [count] if on_request else []}
        ),
    )


def open_hubspot(
    tenant: TenantConnection,
    token: SecretStr | None,
    settings: Settings,
    options: HubSpotOptions = HubSpotOptions(),
    *,
    budget: RequestBudget | None = None,
    on_request: Callable[[], None] | None = None,
) -> HubSpotAdapter:
    """The tenant's HubSpot deal pipeline; without a token, in the local HubSpot."""
    base_url = options.base_url or tenant.base_url
    if token is None:
        secret, base_url = sandbox_hubspot(settings.hubspot_sandbox_port, base_url)
        token = SecretStr(secret)
    return HubSpotAdapter(
        token,
        base_url=base_url,
        tenant_id=tenant.tenant_id,
        pipeline=tenant.pipeline or "default",
        rate_limit=hubspot.RateLimit(per_ten_seconds=options.per_ten_seconds, shared=budget),
        retry=hubspot.RetryPolicy(max_attempts=options.max_attempts),
        on_request=on_request,
    )


def open_salesforce(
    tenant: TenantConnection,
    token: SecretStr | None,
    settings: Settings,
    options: SalesforceOptions = SalesforceOptions(),
    *,
    budget: RequestBudget | None = None,
    on_request: Callable[[], None] | None = None,
) -> SalesforceAdapter:
    """The tenant's Salesforce org (its instance URL is the connection's base URL); without a
    token, the local Salesforce with its integration user's token, whatever org the connection
    names: an org's instance URL is never sent the local Salesforce's token. Without a username,
    either names its integration user by the token's OAuth user info."""
    base_url = options.base_url or tenant.base_url
    if token is None:
        secret, base_url = sandbox_salesforce(settings.salesforce_sandbox_port, options.base_url)
        token = SecretStr(secret)
    elif not base_url:
        raise InstanceConfigError(
            f"tenant {tenant.tenant_id!r} has a Salesforce token ({tenant.token}), so the local Salesforce is not "
            "used: configure its org's instance URL as base_url (https://<domain>.my.salesforce.com)"
        )
    return SalesforceAdapter(
        token,
        instance_url=base_url,
        tenant_id=tenant.tenant_id,
        token_ref=str(tenant.token),
        integration_username=tenant.integration_username,
        rate_limit=salesforce.RateLimit(per_minute=options.per_minute, shared=budget),
        retry=salesforce.RetryPolicy(max_attempts=options.max_attempts),
        on_request=on_request,
    )


def open_connection(
    tenant: TenantConnection,
    token: SecretStr | None,
    settings: Settings,
    *,
    notion: NotionOptions = NotionOptions(),
    hubspot: HubSpotOptions = HubSpotOptions(),
    salesforce: SalesforceOptions = SalesforceOptions(),
    budget: RequestBudget | None = None,
    on_request: Callable[[], None] | None = None,
) -> CRMAdapter:
    """The tenant's external CRM, by the connector its connection names, with its token (read
    from its reference: ``crm_pipeline.tenants.secrets.read_token``), paced by ``budget`` (the
    integration's across processes; None: this process's own) and counting each request sent
    (retries included) through ``on_request``."""
    if tenant.connector == "hubspot":
        return open_hubspot(tenant, token, settings, hubspot, budget=budget, on_request=on_request)
    if tenant.connector == "salesforce":
        return open_salesforce(tenant, token, settings, salesforce, budget=budget, on_request=on_request)
    return open_notion(tenant, token, settings, notion, budget=budget, on_request=on_request)
