"""Opening tenants' connections: what every connection of a process shares."""

from __future__ import annotations

import ssl
from typing import Any

import pytest
from pydantic import SecretStr

from crm_pipeline.settings import Settings
from crm_pipeline.tenants import TenantConnection
from crm_pipeline.tenants.open import open_notion, tls_context


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
