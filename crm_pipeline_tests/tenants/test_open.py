"""Opening tenants' connections: what every connection of a process shares, and a Salesforce
connection opened on its org or, without a token, on the local Salesforce."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import pytest
from pydantic import SecretStr

from crm_pipeline.crm import NotionAdapter
from crm_pipeline.crm.salesforce import InstanceConfigError, SalesforceAdapter
from crm_pipeline.defs.resources import CRMConnectionResource, NotionConnector
from crm_pipeline.settings import Settings
from crm_pipeline.tenants import SalesforceOptions, TenantConnection, open_connection
from crm_pipeline.tenants.open import SharedPool, open_notion, tls_context
from crm_pipeline_tests.crm.test_salesforce_unit import RecordingBudget

SALESFORCE_TOKEN = "00DXx0000001gEr!AQ7Kd2Vn8Pz4Hs"


async def test_notion_connections_share_one_tls_context(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sweep opens a connection per tenant, and loading the CA bundle into a TLS context for
    each was a third of an idle pass's CPU: they share one."""
    created: list[ssl.SSLContext] = []
    create_default_context = ssl.create_default_context

    def counted(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        created.append(create_default_context(*args, **kwargs))
        return created[-1]

    monkeypatch.setattr(ssl, "create_default_context", counted)
    tenants = [TenantConnection(tenant_id=f"acme-{n}", database_id="db", token_env="ACME_TOKEN") for n in range(3)]
    for tenant in tenants:
        await open_notion(tenant, SecretStr("secret"), Settings()).aclose()
    assert len(created) <= 1  # none once an earlier test has opened a connection


def test_the_shared_tls_context_verifies_certificates_and_host_names() -> None:
    assert tls_context().verify_mode is ssl.CERT_REQUIRED
    assert tls_context().check_hostname
    assert tls_context() is tls_context()


@dataclass
class CountingServer:
    """An HTTP/1.1 server on loopback that keeps connections alive, answers every request with
    Notion's ``users/me`` answer, and counts the connections it accepted and saw closed."""

    url: str = ""
    accepted: int = 0
    closed: int = 0
    authorizations: list[str] = field(default_factory=list)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        body = json.dumps({"object": "user", "id": "bot", "type": "bot", "bot": {}}).encode()
        answer = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.authorizations += [
                    line.split(b":", 1)[1].strip().decode()
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"authorization:")
                ]
                writer.write(answer.encode() + body)
                await writer.drain()
        except asyncio.IncompleteReadError:  # the client closed the connection
            self.closed += 1
            writer.close()


@asynccontextmanager
async def counting_server() -> AsyncIterator[CountingServer]:
    counter = CountingServer()
    server = await asyncio.start_server(counter.serve, "127.0.0.1", 0)
    counter.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    async with server:
        yield counter


def _tenant(n: int, base_url: str) -> TenantConnection:
    return TenantConnection(tenant_id=f"acme-{n}", database_id="db", token_env=f"ACME_TOKEN_{n}", base_url=base_url)


async def test_the_notion_clients_of_a_run_share_one_pool_of_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sweep opens a client per tenant for a request or two each: through the run's pool they
    reuse one kept-alive connection, each with its own token, and a tenant's client closing
    leaves the pool to the next; the run's end closes it."""
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    async with counting_server() as server:
        crm = CRMConnectionResource(notion=NotionConnector(base_url=server.url))
        async with crm.yield_for_execution(dg.build_init_resource_context()) as run_crm:
            for n in range(3):
                monkeypatch.setenv(f"ACME_TOKEN_{n}", f"secret-{n}")
                adapter, requests = run_crm.open(_tenant(n, server.url))
                assert isinstance(adapter, NotionAdapter)
                await adapter.client.users.me()
                await run_crm.close(f"acme-{n}")
                assert requests.sent == 1
            assert (server.accepted, server.closed) == (1, 0)
        await asyncio.sleep(0.1)  # the server sees the pool's connection end
        assert server.closed == 1
    assert server.authorizations == [f"Bearer secret-{n}" for n in range(3)]


async def test_a_proxy_in_the_environment_gives_each_client_its_own_connections(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pool would bypass the proxy httpx reads from the environment per client (and its
    NO_PROXY exceptions): with one named, no pool is shared."""
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    assert SharedPool.for_environment() is None
    monkeypatch.delenv("HTTPS_PROXY")
    for proxy in ("HTTP_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    pool = SharedPool.for_environment()
    assert pool is not None
    await pool.close_pool()


async def test_a_salesforce_connection_opens_its_org_or_without_a_token_the_local_salesforce() -> None:
    settings = Settings(salesforce_sandbox_port=18767)
    tenant = TenantConnection(
        tenant_id="acme",
        connector="salesforce",
        base_url="https://acme.my.salesforce.com",
        integration_username="sync@acme.example",
        token_env="ACME_SALESFORCE_TOKEN",
    )
    budget = RecordingBudget()
    adapter = open_connection(tenant, SecretStr(SALESFORCE_TOKEN), settings, budget=budget)
    assert isinstance(adapter, SalesforceAdapter)
    caller = adapter.api.caller
    assert (adapter.instance_url, adapter.tenant_id, adapter.integration_username) == (
        "https://acme.my.salesforce.com",
        "acme",
        "sync@acme.example",
    )
    assert caller.token_ref == "env:ACME_SALESFORCE_TOKEN"  # what an expired session's error names
    assert caller.limit.shared is budget and caller.limit.per_minute == SalesforceOptions.per_minute
    assert SALESFORCE_TOKEN not in repr(adapter)
    await adapter.aclose()

    local = open_connection(tenant, None, settings)  # its token unset: never the org's address
    assert isinstance(local, SalesforceAdapter)
    assert (local.instance_url, local.integration_username) == ("http://127.0.0.1:18767", "sync@acme.example")
    await local.aclose()
    unnamed = TenantConnection(tenant_id="acme", connector="salesforce")
    local = open_connection(unnamed, None, settings, salesforce=SalesforceOptions(per_minute=0))
    assert isinstance(local, SalesforceAdapter)
    assert local.integration_username is None  # the local org's user info names its integration user
    assert local.api.caller.limit.per_minute == 0
    await local.aclose()

    with pytest.raises(
        InstanceConfigError, match="tenant 'acme' has a Salesforce token \\(env:CRM_PIPELINE_SALESFORCE_TOKEN\\)"
    ) as refused:
        open_connection(unnamed, SecretStr(SALESFORCE_TOKEN), settings)
    assert SALESFORCE_TOKEN not in str(refused.value)
