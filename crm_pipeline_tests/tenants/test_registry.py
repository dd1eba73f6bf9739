"""The tenant registry in the deal store: who may change it, the `crm-pipeline tenants` commands
end to end, the TOML round trip, the schedule and sensor following it, and key rotation."""

from __future__ import annotations

import ast
import asyncio
import io
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import dagster as dg
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError

from crm_pipeline.cli import main
from crm_pipeline.definitions import defs
from crm_pipeline.defs.resources import TenantsResource
from crm_pipeline.defs.schedules import sync_each_tenant_every_minute
from crm_pipeline.defs.sensors import tenant_partitions_sensor
from crm_pipeline.models import OpportunityCreate
from crm_pipeline.settings import PROJECT_ROOT, Settings
from crm_pipeline.store import Database, DealRepository
from crm_pipeline.tenants import TenantConnection, TenantRegistry, TokenUnavailableError, read_token
from crm_pipeline.tenants.tenants_file import read_tenants_file, save_tenants

TOKEN = "ntn_Hq4Wz8Rk2Pv6Ym"
"""A token that must never show: random characters, no fragment of them in code or messages."""
SALESFORCE_TOKEN = "00DXx0000001gEr!AQ4Fz9Lk3Tq7Wm"
"""A Salesforce access token's look (the org id, '!', a secret), never to show either."""


def test_nothing_under_sync_imports_the_code_location_or_the_demo() -> None:
    """The sync sits below the code location: both open connections through crm_pipeline.tenants."""
    forbidden = ("crm_pipeline.defs", "crm_pipeline.demo")
    found = []
    for path in sorted((PROJECT_ROOT / "crm_pipeline" / "sync").glob("**/*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            found += [f"{path.name}: {name}" for name in names if name.startswith(forbidden)]
    assert found == []
    assert list((PROJECT_ROOT / "crm_pipeline" / "sync").glob("*.py")), "the walk saw the sync's modules"


@pytest.mark.integration
async def test_the_application_role_reads_the_registry_but_cannot_change_it(database: Database) -> None:
    tenant_id = f"t-{uuid4().hex[:12]}"
    await TenantRegistry(database).save(TenantConnection(tenant_id=tenant_id, token_env="ACME_TOKEN"))
    assert await TenantRegistry(database).get(tenant_id) == TenantConnection(
        tenant_id=tenant_id, token_env="ACME_TOKEN"
    )
    for statement in (
        "UPDATE crm.tenant_connections SET token_env = 'OTHER' WHERE tenant_id = :tenant",
        "DELETE FROM crm.tenant_connections WHERE tenant_id = :tenant",
        "INSERT INTO crm.tenant_connections (tenant_id, connector, token_env) VALUES (:tenant, 'notion', 'X')",
    ):
        with pytest.raises(ProgrammingError, match="permission denied for table tenant_connections"):
            async with database.tenant_transaction(tenant_id) as connection:
                await connection.execute(text(statement), {"tenant": tenant_id})
    assert await TenantRegistry(database).get(tenant_id) == TenantConnection(
        tenant_id=tenant_id, token_env="ACME_TOKEN"
    )


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["tenants", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.integration
def test_the_tenants_commands_end_to_end(
    empty_store: Settings,
    settings_of: Callable[[Settings], None],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    settings_of(empty_store)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv("CRM_PIPELINE_SECRET_KEYS", Fernet.generate_key().decode())
    assert _run(capsys, "add", "acme", "--database-id", "db-1", "--token-env", "ACME_NOTION_TOKEN")[0] == 0
    assert _run(capsys, "add", "globex", "--connector", "hubspot", "--token-file", "/run/secrets/globex")[0] == 0
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{TOKEN}\n"))
    code, out, err = _run(capsys, "add", "initech", "--database-id", "db-3", "--token-stdin")
    assert code == 0 and TOKEN not in out + err
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{SALESFORCE_TOKEN}\n"))
    salesforce = ["--connector", "salesforce", "--base-url", "https://umbrella.my.salesforce.com"]
    salesforce += ["--integration-username", "sync@umbrella.example", "--token-stdin"]
    code, out, err = _run(capsys, "add", "umbrella", *salesforce)
    assert code == 0 and SALESFORCE_TOKEN not in out + err

    code, out, _ = _run(capsys, "list")
    assert code == 0 and TOKEN not in out and SALESFORCE_TOKEN not in out
    assert out.splitlines() == [
        "acme\tactive\tnotion\tdb-1\tenv:ACME_NOTION_TOKEN",
        "globex\tactive\thubspot\tpipeline default\tfile:/run/secrets/globex",
        "initech\tactive\tnotion\tdb-3\tstored (encrypted)",
        "umbrella\tactive\tsalesforce\torg https://umbrella.my.salesforce.com as sync@umbrella.example"
        "\tstored (encrypted)",
    ]
    code, _, err = _run(capsys, "add", "hooli", "--connector", "salesforce", "--pipeline", "default")
    assert code == 2 and "a salesforce connection has no pipeline" in err
    assert _run(capsys, "pause", "globex")[0] == 0
    assert "globex\tpaused" in _run(capsys, "list")[1]
    assert _run(capsys, "resume", "globex")[0] == 0
    assert "globex\tactive" in _run(capsys, "list")[1]
    code, _, err = _run(capsys, "pause", "nobody")
    assert code == 2 and "'nobody' is not registered" in err
    code, out, _ = _run(capsys, "rediscover", "globex")  # no pass ran yet: nothing kept to drop
    assert code == 0 and "0 kept connection(s) dropped" in out

    # Removing detaches the tenant from its CRM; its deals stay in the deal store.
    async def deal_of_acme() -> None:
        async with await Database.open(empty_store) as database:
            await DealRepository(database).create_opportunity("acme", OpportunityCreate(name="Acme renewal"))

    asyncio.run(deal_of_acme())
    code, out, _ = _run(capsys, "remove", "acme")
    assert code == 0 and "deals and sync state stay" in out
    assert [line.split("\t")[0] for line in _run(capsys, "list")[1].splitlines()] == ["globex", "initech", "umbrella"]

    async def deals_of_acme() -> list[str]:
        async with await Database.open(empty_store) as database:
            return [deal.name for deal in await DealRepository(database).list_opportunities("acme")]

    assert asyncio.run(deals_of_acme()) == ["Acme renewal"]

    # The stored token is in the database only encrypted.
    async def stored_text() -> str:
        async with await Database.open(empty_store) as database, database.owner_transaction() as connection:
            rows = await connection.execute(text("SELECT c::text FROM crm.tenant_connections AS c"))
            return "\n".join(row[0] for row in rows)

    stored = asyncio.run(stored_text())
    assert TOKEN not in stored and SALESFORCE_TOKEN not in stored
    assert "sync@umbrella.example" in stored  # the connector's own settings, beside the encrypted token


@pytest.mark.integration
def test_import_then_export_round_trips_a_tenants_file(
    empty_store: Settings, settings_of: Callable[[Settings], None], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    settings_of(empty_store)
    tenants = [
        TenantConnection(tenant_id="acme", database_id="db-1", data_source_id="ds-1", token_env="ACME_TOKEN"),
        TenantConnection(tenant_id="globex", connector="hubspot", pipeline="sales-eu", base_url="http://hs.example"),
        TenantConnection(tenant_id="initech", token_file="/run/secrets/initech", active=False),
        TenantConnection(
            tenant_id="soylent",
            connector="salesforce",
            base_url="https://soylent.my.salesforce.com",
            integration_username="sync@soylent.example",
            token_env="SOYLENT_SALESFORCE_TOKEN",
        ),
        TenantConnection(tenant_id="umbrella", token_encrypted=Fernet(Fernet.generate_key()).encrypt(b"x").decode()),
    ]
    save_tenants(tmp_path / "in.toml", tenants)
    assert _run(capsys, "import", str(tmp_path / "in.toml"))[0] == 0
    assert _run(capsys, "export", str(tmp_path / "out.toml"))[0] == 0
    assert read_tenants_file(tmp_path / "out.toml") == tenants
    code, out, _ = _run(capsys, "export")
    assert code == 0 and out == (tmp_path / "out.toml").read_text()
    # A file with one entry wrong is refused before anything of it is written.
    (tmp_path / "bad.toml").write_text(
        '[[tenant]]\ntenant_id = "hooli"\n\n[[tenant]]\ntenant_id = "bad"\nconnector = "hubspot"\ndatabase_id = "db-9"\n'
    )
    code, _, err = _run(capsys, "import", str(tmp_path / "bad.toml"))
    assert code == 2 and "a hubspot connection has no database_id" in err
    (tmp_path / "bad.toml").write_text(
        '[[tenant]]\ntenant_id = "bad"\nconnector = "salesforce"\ndata_source_id = "ds-9"\n'
    )
    code, _, err = _run(capsys, "import", str(tmp_path / "bad.toml"))
    assert code == 2 and "a salesforce connection has no data_source_id" in err
    assert _run(capsys, "export")[1] == out


TICK = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.integration
def test_pausing_and_resuming_a_tenant_is_followed_by_the_schedule_and_the_sensor(
    empty_store: Settings, settings_of: Callable[[Settings], None], capsys: pytest.CaptureFixture[str]
) -> None:
    settings_of(empty_store)
    for tenant in ("acme", "globex"):
        assert _run(capsys, "add", tenant, "--token-env", f"{tenant.upper()}_TOKEN")[0] == 0
    tenants = TenantsResource()
    with dg.instance_for_test() as instance:

        def partitions_added() -> list[str]:
            result = tenant_partitions_sensor(
                dg.build_sensor_context(instance=instance, resources={"tenants": tenants})
            )
            assert isinstance(result, dg.SensorResult)
            added = [
                key for request in result.dynamic_partitions_requests or [] for key in request.partition_keys or []
            ]
            instance.add_dynamic_partitions("tenant", added)
            return added

        def runs_requested() -> list[str]:
            context = dg.build_schedule_context(
                instance=instance,
                scheduled_execution_time=TICK,
                resources={"tenants": tenants},
                repository_def=defs.get_repository_def(),
            )
            return [
                request.partition_key or ""
                for request in sync_each_tenant_every_minute.evaluate_tick(context).run_requests or []
            ]

        assert _run(capsys, "pause", "globex")[0] == 0
        assert partitions_added() == ["acme"]
        assert runs_requested() == ["acme"]
        assert _run(capsys, "resume", "globex")[0] == 0
        assert partitions_added() == ["globex"]
        assert runs_requested() == ["acme", "globex"]


@pytest.mark.integration
def test_rotating_the_key_re_encrypts_every_stored_token(
    empty_store: Settings,
    settings_of: Callable[[Settings], None],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings_of(empty_store)
    old, new = (_run(capsys, "generate-key")[1].strip() for _ in range(2))
    assert old != new and len(Fernet(new.encode()).encrypt(b"-")) > 0
    monkeypatch.setenv("CRM_PIPELINE_SECRET_KEYS", old)
    settings_of(empty_store)
    monkeypatch.setattr("sys.stdin", io.StringIO(TOKEN))
    assert _run(capsys, "add", "acme", "--database-id", "db-1", "--token-stdin")[0] == 0

    monkeypatch.setenv("CRM_PIPELINE_SECRET_KEYS", f"{new},{old}")  # the new key in front
    settings_of(empty_store)
    code, out, _ = _run(capsys, "rotate-key")
    assert code == 0 and out.startswith("1 stored tokens re-encrypted")

    async def acme() -> TenantConnection:
        async with await Database.open(empty_store) as database:
            found = await TenantRegistry(database).get("acme")
        assert found is not None
        return found

    rotated = asyncio.run(acme())
    token = read_token(rotated, Settings(secret_keys=new).secret_keys)  # the old key dropped
    assert token is not None and token.get_secret_value() == TOKEN
    with pytest.raises(TokenUnavailableError, match="tenant 'acme'.*stored \\(encrypted\\).*no key") as refused:
        read_token(rotated, Settings(secret_keys=old).secret_keys)  # the old key alone no longer decrypts
    assert TOKEN not in str(refused.value)
    # A rotation with keys that decrypt none of the stored tokens changes nothing and says whose.
    monkeypatch.setenv("CRM_PIPELINE_SECRET_KEYS", Fernet.generate_key().decode())
    settings_of(empty_store)
    code, _, err = _run(capsys, "rotate-key")
    assert code == 2 and "tenant 'acme'" in err and "nothing was re-encrypted" in err
    assert asyncio.run(acme()) == rotated


@pytest.mark.integration
def test_the_commands_say_so_when_a_tenants_file_is_read_instead_of_the_registry(
    empty_store: Settings,
    settings_of: Callable[[Settings], None],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    save_tenants(tmp_path / "tenants.toml", [TenantConnection(tenant_id="acme")])
    monkeypatch.setenv("CRM_PIPELINE_TENANTS_FILE", str(tmp_path / "tenants.toml"))
    settings_of(empty_store)
    code, out, err = _run(capsys, "list")
    assert code == 0 and out.startswith("# no tenant registered")
    assert f"CRM_PIPELINE_TENANTS_FILE is set, so the code location reads {tmp_path / 'tenants.toml'}" in err
    assert [tenant.tenant_id for tenant in TenantsResource().active()] == ["acme"]
