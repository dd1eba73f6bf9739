"""`crm-pipeline sync`: the demo database synced both ways by the command, JSON out, clear refusals."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from crm_pipeline.cli import main
from crm_pipeline.defs.tenants import TenantConnection, save_tenants
from crm_pipeline.demo import (
    DEMO_NOTION_DATA_SOURCE_ID,
    DEMO_NOTION_DATABASE_ID,
    HUBSPOT_DEMO_TENANT,
    SALESFORCE_DEMO_TENANT,
    demo_notion_seed,
    seed_demo,
    seed_demo_hubspot,
    seed_demo_salesforce,
)
from crm_pipeline.hubspot_sandbox import DEFAULT_TOKEN as HUBSPOT_SANDBOX_TOKEN
from crm_pipeline.hubspot_sandbox import HubSpotControl, RunningHubSpot
from crm_pipeline.salesforce_sandbox import INTEGRATION_USERNAME, RunningSalesforce, SalesforceControl
from crm_pipeline.sandbox import SandboxControl
from crm_pipeline.settings import get_settings
from crm_pipeline.store import Database, DealRepository
from crm_pipeline.tenants import TenantRegistry
from crm_pipeline.tenants.secrets import encrypt_token, secret_keys
from crm_pipeline_tests.conftest import requests_reserved

pytestmark = pytest.mark.integration


async def reserved() -> int:
    async with await Database.open(get_settings()) as database:
        return await requests_reserved(database)


def sync(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["sync", *args])
    out, err = capsys.readouterr()
    return code, out, err


DEMO_FIRST_PASS = {"pushed": 3, "pulled": 3, "created": 26, "trashed": 0, "conflicts": 7}
"""The demo's first pass (crm_pipeline/demo_deals.toml): of the agent's 24 deals, 6 are in Notion
already, so 18 pages are created and the team's 8 pages become deals (26). The 6 on both sides
differ in 7 fields, each a conflict: the agent's values go out to 3 pages (Acme's probability,
agent-owned; Initech's stage and Stark's value and close date, the agent's later writes) and the
team's come in to 3 deals (Globex's notes, Umbrella's tags, Wayne's stage override; human-owned)."""


def test_sync_command_syncs_the_demo_database_both_ways(
    configured: str, control: SandboxControl, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = sync(capsys, "--tenant", configured, "--dry-run", "--json")
    assert code == 0
    planned = json.loads(out)
    assert (planned["dry_run"], planned["errors"]) == (True, [])
    assert {name: planned[name] for name in DEMO_FIRST_PASS} == DEMO_FIRST_PASS

    control.reset_stats()
    reserved_before = asyncio.run(reserved())
    code, out, _ = sync(capsys, "--tenant", configured, "--json")
    assert code == 0
    # Paced through the shared request budget in the deal store, as Dagster's runs are.
    assert asyncio.run(reserved()) - reserved_before == control.stats()["total"] > 0
    assert json.loads(out) == {
        "tenant": configured,
        "dry_run": False,
        "skipped": False,
        **DEMO_FIRST_PASS,
        "deferred": 0,
        "errors": [],
    }
    code, out, _ = sync(capsys, "--tenant", configured)
    assert (code, out.strip()) == (0, f"tenant {configured}: 0 pushed, 0 pulled, 0 created, 0 trashed, 0 conflicts")


def test_sync_command_refuses_an_unknown_tenant_clearly(configured: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = sync(capsys, "--tenant", "nobody-here", "--json")
    assert (code, out) == (2, "")
    assert "cannot sync tenant 'nobody-here'" in err and "unknown tenant" in err


def test_sync_command_refuses_a_wrong_token_clearly(
    configured: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_PIPELINE_NOTION_TOKEN", "ntn_not_the_right_one")
    monkeypatch.setenv("CRM_PIPELINE_NOTION_DATABASE_ID", DEMO_NOTION_DATABASE_ID)
    get_settings.cache_clear()
    code, out, err = sync(capsys, "--tenant", configured)
    assert (code, out) == (2, "")
    assert "cannot sync tenant" in err and "ntn_not_the_right_one" not in err


async def _register_demo_tenant(connection: TenantConnection, demo_tenant: str) -> None:
    """The demo tenant's deals seeded under the connection's tenant, and the connection registered."""
    async with await Database.open(get_settings()) as database:
        await seed_demo(DealRepository(database), connection.tenant_id, demo_tenant)
        await TenantRegistry(database).save(connection)


def test_sync_command_refuses_a_drifted_schema_clearly(
    configured: str, capsys: pytest.CaptureFixture[str], control: SandboxControl
) -> None:
    control.reset()
    drifted = demo_notion_seed()
    del drifted["databases"][0]["properties"]["Notes"]
    drifted["databases"][0]["pages"] = []
    control.seed(drifted)
    code, out, err = sync(capsys, "--tenant", configured, "--json")
    assert (code, out) == (2, "")
    assert "'Notes'" in err and "no property" in err


def test_sync_command_syncs_a_hubspot_tenant_of_the_registry_with_its_token_file(
    configured: str,
    capsys: pytest.CaptureFixture[str],
    hubspot_server: RunningHubSpot,
    hubspot_control: HubSpotControl,
    tmp_path: Path,
) -> None:
    """A registered HubSpot connection, its token in a file (a mounted secret), opened as the
    Dagster resource opens it."""
    hubspot_control.reset()
    asyncio.run(seed_demo_hubspot(hubspot_server.base_url))
    on_hubspot = f"{configured}-hs"
    (tmp_path / "token").write_text(f"{HUBSPOT_SANDBOX_TOKEN}\n")
    connection = TenantConnection(
        tenant_id=on_hubspot, connector="hubspot", token_file=str(tmp_path / "token"), base_url=hubspot_server.base_url
    )

    asyncio.run(_register_demo_tenant(connection, HUBSPOT_DEMO_TENANT))

    code, out, _ = sync(capsys, "--tenant", on_hubspot, "--json")

    assert code == 0
    # 8 agent deals, 3 in HubSpot already: 5 created there, the team's 3 adopted; 3 conflicts.
    summary = json.loads(out)
    assert (summary["created"], summary["conflicts"], summary["errors"]) == (5 + 3, 3, [])
    assert len(hubspot_control.all_records("deals")) == 11
    # A tenant not in the registry still syncs with the settings' Notion.
    code, out, _ = sync(capsys, "--tenant", configured, "--json")
    assert (code, json.loads(out)["created"]) == (0, DEMO_FIRST_PASS["created"])
    # A token file gone: the pass cannot run, and says whose token and where, never the token.
    (tmp_path / "token").unlink()
    code, out, err = sync(capsys, "--tenant", on_hubspot)
    assert (code, out) == (2, "")
    assert f"tenant {on_hubspot!r}: its token (file:{tmp_path / 'token'}) is unavailable" in err
    assert HUBSPOT_SANDBOX_TOKEN not in err


SALESFORCE_TOKEN = "00DSb0000000001!AQ6Wr3Nc8Hx2Lp"
"""A session the test's org grants (and ends): never the default token other tests share."""


def test_sync_command_syncs_a_salesforce_tenant_of_the_registry_with_its_stored_token(
    configured: str,
    capsys: pytest.CaptureFixture[str],
    salesforce_server: RunningSalesforce,
    salesforce_control: SalesforceControl,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A registered Salesforce connection, its token stored encrypted, opened as the Dagster
    resource opens it; an ended session stops the pass naming where the token comes from."""
    salesforce_control.reset()
    asyncio.run(seed_demo_salesforce(salesforce_server.base_url))
    salesforce_control.grant_token(SALESFORCE_TOKEN)
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("CRM_PIPELINE_SECRET_KEYS", key)
    get_settings.cache_clear()
    on_salesforce = f"{configured}-sf"
    connection = TenantConnection(
        tenant_id=on_salesforce,
        connector="salesforce",
        token_encrypted=encrypt_token(SecretStr(SALESFORCE_TOKEN), secret_keys(SecretStr(key))),
        base_url=salesforce_server.base_url,
        integration_username=INTEGRATION_USERNAME,
    )

    asyncio.run(_register_demo_tenant(connection, SALESFORCE_DEMO_TENANT))

    code, out, _ = sync(capsys, "--tenant", on_salesforce, "--json")

    assert code == 0
    # 6 agent deals, 4 in Salesforce already: 2 created there, the team's 2 adopted; 6 conflicts.
    summary = json.loads(out)
    assert (summary["created"], summary["conflicts"], summary["errors"]) == (2 + 2, 6, [])
    assert len(salesforce_control.all_records("Opportunity")) == 8
    salesforce_control.expire_token(SALESFORCE_TOKEN)
    code, out, err = sync(capsys, "--tenant", on_salesforce)
    assert (code, out) == (2, "")
    assert f"cannot sync tenant {on_salesforce!r}: Salesforce refused the access token from stored (encrypted)" in err
    assert SALESFORCE_TOKEN not in err and key not in err


def test_sync_command_refuses_a_hubspot_tenant_whose_hubspot_does_not_answer_clearly(
    configured: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    tenants = tmp_path / "tenants.toml"
    connection = TenantConnection(tenant_id=configured, connector="hubspot", token_env="CRM_PIPELINE_TEST_UNSET")
    save_tenants(tenants, [connection])
    monkeypatch.setenv("CRM_PIPELINE_TENANTS_FILE", str(tenants))
    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        monkeypatch.setenv("CRM_PIPELINE_HUBSPOT_SANDBOX_PORT", str(unused.getsockname()[1]))
    get_settings.cache_clear()
    code, out, err = sync(capsys, "--tenant", configured)
    assert (code, out) == (2, "")
    assert f"cannot sync tenant {configured!r}" in err


def test_sync_dry_run_lists_each_write_by_deal_name_and_writes_nothing(
    configured: str, control: SandboxControl, capsys: pytest.CaptureFixture[str]
) -> None:
    pages_before = control.all_pages(DEMO_NOTION_DATA_SOURCE_ID)

    code, out, _ = sync(capsys, "--tenant", configured, "--dry-run", "--json")

    assert code == 0
    planned = json.loads(out)
    assert {name: planned[name] for name in DEMO_FIRST_PASS} == DEMO_FIRST_PASS  # the counts stay
    updates = {(w["deal"], w["field"]): w for w in planned["planned"] if w["action"] == "update"}
    assert updates[("Acme Corp platform renewal", "probability")] == {
        "deal": "Acme Corp platform renewal",
        "record_id": updates[("Acme Corp platform renewal", "probability")]["record_id"],
        "action": "update",
        "to": "Notion",
        "field": "probability",
        "old": "0.4",
        "new": "0.7",
        "rule": "agent-owned",
        "conflict": True,
    }
    pulled = updates[("Globex analytics pilot", "custom_notes")]
    assert (pulled["to"], pulled["rule"], pulled["conflict"]) == ("PostgreSQL", "human-owned", True)
    assert pulled["new"].startswith("Pilot scope agreed")
    assert sum(update["conflict"] for update in updates.values()) == DEMO_FIRST_PASS["conflicts"]
    creates = [w for w in planned["planned"] if w["action"] == "create"]
    assert len(creates) == DEMO_FIRST_PASS["created"]
    assert {w["to"] for w in creates} == {"Notion", "PostgreSQL"}
    assert all(w["deal"] for w in planned["planned"])  # every write names its deal

    code, out, _ = sync(capsys, "--tenant", configured, "--dry-run")
    assert code == 0
    header, table = out.splitlines()[0], out.splitlines()[1:]
    assert header.startswith(f"tenant {configured} (dry run, nothing written): 3 pushed, 3 pulled")
    acme = next(line for line in table if "Acme Corp platform renewal" in line and "probability" in line)
    assert "update in Notion" in acme and "0.4 -> 0.7" in acme and "agent-owned (conflict)" in acme

    # Nothing was written: the same pages, and no deal linked or adopted.
    assert control.all_pages(DEMO_NOTION_DATA_SOURCE_ID) == pages_before
    assert main(["deals", "list", "--tenant", configured, "--json"]) == 0
    deals = json.loads(capsys.readouterr().out)["deals"]
    assert len(deals) == 24 and {deal["link"]["state"] for deal in deals} == {"not yet linked"}
