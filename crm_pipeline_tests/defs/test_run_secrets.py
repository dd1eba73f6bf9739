"""No token or password reaches what Dagster records of a run: events, logs, errors, the run itself,
whichever reference a tenant's token is given by (a variable, a file, stored encrypted).

Failing runs matter most: their errors travel into the event log with messages, causes and stack
traces, and a connection error is where a password would show.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from crm_pipeline.defs.resources import (
    CRMConnectionResource,
    DealStoreResource,
    NotionConnector,
    RequestCount,
    SalesforceConnector,
)
from crm_pipeline.defs.tenants import TenantConnection
from crm_pipeline.salesforce_sandbox import INTEGRATION_USERNAME, RunningSalesforce
from crm_pipeline.sandbox import RunningSandbox
from crm_pipeline.settings import get_settings
from crm_pipeline.store import Database
from crm_pipeline.tenants.secrets import encrypt_token, secret_keys
from crm_pipeline.tenants.tenants_file import read_tenants_file, save_tenants
from crm_pipeline_tests.defs.conftest import TenantWorld, resources_for, sync_tenant

TOKEN = "ntn_Qr8Lm2Xz6Wv4Tb"
SALESFORCE_TOKEN = "00DXx7Kq9Wz3gEr!AQ3Jv9Rm5Ty1Bn"  # no run of digits a record could hold by chance
PASSWORD = "Pw@Zq7Xk9Vw3Jm"  # random characters: no fragment of them occurs in code or messages


def _everything_recorded(instance: dg.DagsterInstance, run_id: str) -> str:
    run = instance.get_run_by_id(run_id)
    assert run is not None
    records = [entry.to_json() for entry in instance.all_logs(run_id)]
    return "\n".join([dg.serialize_value(run), *records])


def _assert_secret_absent(recorded: str, secret: str) -> None:
    fragments = {secret[start : start + 5] for start in range(len(secret) - 4)}
    leaked = sorted(fragment for fragment in fragments if fragment in recorded)
    assert not leaked, f"fragments of a secret in the run's records: {leaked}"


async def test_a_rejected_notion_token_leaves_no_trace_of_itself(
    world: TenantWorld, instance: dg.DagsterInstance
) -> None:
    notion = NotionConnector(token=TOKEN, base_url=world.resources["crm"].notion.base_url)
    result = await sync_tenant(
        instance, {**world.resources, "crm": CRMConnectionResource(notion=notion)}, world.tenant_id
    )
    assert not result.success  # the sandbox refuses the unknown token: the error is recorded
    recorded = _everything_recorded(instance, result.run_id)
    assert "API token is invalid" in recorded
    _assert_secret_absent(recorded, TOKEN)


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("postgresql://crm:Pw%40Zq7Xk9Vw3Jm@127.0.0.1:1/crm", "cannot connect to PostgreSQL at 127.0.0.1:1/crm"),
        # An unencoded '@' in the password: the URL is refused without quoting any of it.
        (f"postgresql://crm:{PASSWORD}@127.0.0.1:1/crm", "more than one unencoded '@'"),
    ],
    ids=["unreachable", "malformed"],
)
async def test_a_database_that_cannot_be_opened_leaves_no_trace_of_its_password(
    url: str, said: str, world: TenantWorld, instance: dg.DagsterInstance
) -> None:
    deal_store = DealStoreResource(database_url=url, app_database_url=url)
    result = await sync_tenant(instance, {**world.resources, "deal_store": deal_store}, world.tenant_id)
    assert not result.success
    recorded = _everything_recorded(instance, result.run_id)
    assert said in recorded
    _assert_secret_absent(recorded, PASSWORD)


def test_resources_and_tenant_connections_keep_secrets_out_of_reprs(monkeypatch: pytest.MonkeyPatch) -> None:
    deal_store = DealStoreResource(tenant_id="t", database_url=f"postgresql://crm:{PASSWORD}@db.example/crm")
    crm = CRMConnectionResource(notion=NotionConnector(token=TOKEN), salesforce=SalesforceConnector(token=TOKEN))
    assert PASSWORD not in repr(deal_store) and PASSWORD not in str(deal_store)
    assert TOKEN not in repr(crm) and TOKEN not in str(crm)
    # A tenant connection names the variable; the adapter built from it does not show the token.
    monkeypatch.setenv("ACME_NOTION_TOKEN", TOKEN)
    tenant = TenantConnection(tenant_id="acme", database_id="db", token_env="ACME_NOTION_TOKEN")
    assert TOKEN not in tenant.model_dump_json()
    adapter = NotionConnector().connect(tenant, RequestCount())
    assert TOKEN not in repr(adapter)
    monkeypatch.setenv("ACME_SALESFORCE_TOKEN", SALESFORCE_TOKEN)
    org = TenantConnection(
        tenant_id="acme",
        connector="salesforce",
        base_url="https://acme.my.salesforce.com",
        token_env="ACME_SALESFORCE_TOKEN",
    )
    salesforce = SalesforceConnector().connect(org, RequestCount())
    assert SALESFORCE_TOKEN not in repr(salesforce) and SALESFORCE_TOKEN not in repr(salesforce.api.caller)


def _reference_token(world: TenantWorld, **reference: str) -> None:
    """Give the world's tenant its token by another reference than a variable."""
    path = Path(world.resources["tenants"].tenants_file)
    [connection] = read_tenants_file(path)
    fields = connection.model_dump(exclude={"token_env"}) | reference
    save_tenants(path, [TenantConnection.model_validate(fields)])


async def test_a_rejected_stored_token_leaves_no_trace_of_itself(
    world: TenantWorld, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("CRM_PIPELINE_SECRET_KEYS", key)
    get_settings.cache_clear()
    try:
        _reference_token(world, token_encrypted=encrypt_token(SecretStr(TOKEN), secret_keys(SecretStr(key))))
        result = await sync_tenant(instance, world.resources, world.tenant_id)
    finally:
        get_settings.cache_clear()
    assert not result.success  # the sandbox refuses the unknown token: the error is recorded
    recorded = _everything_recorded(instance, result.run_id)
    assert "API token is invalid" in recorded
    _assert_secret_absent(recorded, TOKEN)
    _assert_secret_absent(recorded, key)


@pytest.mark.parametrize("reference", ["token_file", "token_encrypted"])
async def test_a_token_that_cannot_be_read_fails_the_run_naming_the_tenant_and_reference(
    reference: str, world: TenantWorld, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    stored_with = Fernet.generate_key().decode()
    monkeypatch.setenv("CRM_PIPELINE_SECRET_KEYS", Fernet.generate_key().decode())  # not the one it was stored with
    get_settings.cache_clear()
    value = {
        "token_file": str(tmp_path / "absent"),
        "token_encrypted": encrypt_token(SecretStr(TOKEN), secret_keys(SecretStr(stored_with))),
    }[reference]
    try:
        _reference_token(world, **{reference: value})
        result = await sync_tenant(instance, world.resources, world.tenant_id)
    finally:
        get_settings.cache_clear()
    assert not result.success
    recorded = _everything_recorded(instance, result.run_id)
    said = f"file:{tmp_path / 'absent'}" if reference == "token_file" else "stored (encrypted)"
    assert f"tenant {world.tenant_id!r}: its token ({said}) is unavailable" in recorded
    _assert_secret_absent(recorded, TOKEN)
    _assert_secret_absent(recorded, stored_with)


@pytest.mark.parametrize("reference", ["token_env", "token_encrypted"])
async def test_a_rejected_salesforce_token_leaves_no_trace_of_itself(
    reference: str,
    database: Database,
    sandbox_server: RunningSandbox,
    salesforce_org: RunningSalesforce,
    tenant: str,
    instance: dg.DagsterInstance,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The local Salesforce refuses a token it never granted (401 INVALID_SESSION_ID): the run's
    error names where the token comes from, never the token nor the key it is stored with."""
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("CRM_PIPELINE_SECRET_KEYS", key)
    monkeypatch.setenv("ACME_SALESFORCE_TOKEN", SALESFORCE_TOKEN)
    token = {
        "token_env": "ACME_SALESFORCE_TOKEN",
        "token_encrypted": encrypt_token(SecretStr(SALESFORCE_TOKEN), secret_keys(SecretStr(key))),
    }[reference]
    connection = TenantConnection.model_validate(
        {
            "tenant_id": tenant,
            "connector": "salesforce",
            "base_url": salesforce_org.base_url,
            "integration_username": INTEGRATION_USERNAME,
            reference: token,
        }
    )
    resources = resources_for(database, sandbox_server, [connection], tmp_path / "tenants.toml")
    get_settings.cache_clear()
    try:
        result = await sync_tenant(instance, resources, tenant)
    finally:
        get_settings.cache_clear()
    assert not result.success
    recorded = _everything_recorded(instance, result.run_id)
    said = "env:ACME_SALESFORCE_TOKEN" if reference == "token_env" else "stored (encrypted)"
    assert f"Salesforce refused the access token from {said} (expired or revoked)" in recorded
    _assert_secret_absent(recorded, SALESFORCE_TOKEN)
    _assert_secret_absent(recorded, key)
