"""Tenants: the registry (or a tenants file), the partitions that follow it, the schedule's runs
per tenant, and a backfill that syncs only the tenants chosen."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import dagster as dg
import pytest
from cryptography.fernet import Fernet
from dagster._core.test_utils import create_run_for_test
from pydantic import SecretStr

from crm_pipeline.cli import main
from crm_pipeline.definitions import defs
from crm_pipeline.defs.resources import CRMConnectionResource, DealStoreResource, NotionConnector, TenantsResource
from crm_pipeline.defs.runs import SYNC_JOB
from crm_pipeline.defs.schedules import INTEGRATION_TAG, sync_each_tenant_every_minute
from crm_pipeline.defs.sensors import tenant_partitions_sensor
from crm_pipeline.defs.tenants import TenantConnection, save_tenants
from crm_pipeline.models import OpportunityCreate
from crm_pipeline.sandbox import DEFAULT_TOKEN as SANDBOX_TOKEN
from crm_pipeline.sandbox import RunningSandbox, SandboxControl
from crm_pipeline.settings import PROJECT_ROOT, Settings, get_settings
from crm_pipeline.store import Database, DealRepository
from crm_pipeline.sync import Direction, SyncStatus
from crm_pipeline.tenants import TenantRegistry
from crm_pipeline.tenants.secrets import encrypt_token, secret_keys
from crm_pipeline_tests.defs.conftest import UNSET_TOKEN_ENV, deals_database, metadata, resources_for, sync_tenant

TICK = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)  # any minute: the schedule only names its runs by it


def _tenants(path: Path, *connections: TenantConnection) -> TenantsResource:
    save_tenants(path, connections)
    return TenantsResource(tenants_file=str(path))


def test_while_the_registry_is_empty_the_settings_tenant_is_synced_and_a_first_add_says_it_no_longer_is(
    empty_store: Settings, settings_of: Callable[[Settings], None], capsys: pytest.CaptureFixture[str]
) -> None:
    settings_of(empty_store)
    assert [t.tenant_id for t in TenantsResource().active()] == [empty_store.tenant_id]
    assert main(["tenants", "add", "acme", "--database-id", "db-1", "--token-env", "ACME_NOTION_TOKEN"]) == 0
    assert f"the settings' tenant {empty_store.tenant_id!r} is synced no more" in capsys.readouterr().out
    assert [(t.tenant_id, t.token_env) for t in TenantsResource().active()] == [("acme", "ACME_NOTION_TOKEN")]


def test_a_connection_refuses_what_is_not_a_variable_name_or_a_slug() -> None:
    with pytest.raises(ValueError):
        TenantConnection(tenant_id="Acme Corp")
    with pytest.raises(ValueError):
        TenantConnection(tenant_id="acme", token_env="ntn_abc-123.secret")
    with pytest.raises(ValueError, match="token_file"):
        TenantConnection(tenant_id="acme", token_file="secrets/acme")  # each run has a working directory of its own
    with pytest.raises(ValueError, match="not token_env and token_file"):
        TenantConnection(tenant_id="acme", token_env="ACME_TOKEN", token_file="/run/secrets/acme")


def test_each_connector_has_its_own_fields_and_token_variable() -> None:
    hubspot = TenantConnection(tenant_id="acme", connector="hubspot", pipeline="sales-eu")
    assert (hubspot.token_env, hubspot.pipeline) == ("CRM_PIPELINE_HUBSPOT_TOKEN", "sales-eu")
    assert TenantConnection(tenant_id="acme").token_env == "CRM_PIPELINE_NOTION_TOKEN"
    with pytest.raises(ValueError, match="a hubspot connection has no database_id"):
        TenantConnection(tenant_id="acme", connector="hubspot", database_id="db-1")
    with pytest.raises(ValueError, match="a notion connection has no pipeline"):
        TenantConnection(tenant_id="acme", pipeline="default")
    salesforce = TenantConnection(
        tenant_id="acme",
        connector="salesforce",
        base_url="https://acme.my.salesforce.com",
        integration_username="sync@acme.example",
    )
    assert salesforce.token_env == "CRM_PIPELINE_SALESFORCE_TOKEN"
    assert salesforce.where() == "org https://acme.my.salesforce.com as sync@acme.example"
    assert TenantConnection(tenant_id="acme", connector="salesforce").where() == "org (local Salesforce)"
    with pytest.raises(ValueError, match="a salesforce connection has no database_id, pipeline"):
        TenantConnection(tenant_id="acme", connector="salesforce", database_id="db-1", pipeline="default")
    with pytest.raises(ValueError, match="a hubspot connection has no integration_username"):
        TenantConnection(tenant_id="acme", connector="hubspot", integration_username="sync@acme.example")
    with pytest.raises(ValueError):
        TenantConnection.model_validate({"tenant_id": "acme", "connector": "pipedrive"})


@pytest.mark.integration
async def test_tenants_add_registers_a_hubspot_connection(
    database: Database,
    store_settings: Settings,
    settings_of: Callable[[Settings], None],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings_of(store_settings)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    acme, bad = f"acme-{uuid4().hex[:8]}", f"bad-{uuid4().hex[:8]}"
    args = ["tenants", "add", acme, "--connector", "hubspot", "--pipeline", "sales-eu", "--token-env", "ACME_HS"]
    assert await asyncio.to_thread(main, args) == 0
    bad_args = ["tenants", "add", bad, "--connector", "hubspot", "--database-id", "db-1"]
    assert await asyncio.to_thread(main, bad_args) == 2
    registered = await TenantRegistry(database).get(acme)
    assert registered is not None
    assert (registered.connector, registered.pipeline, registered.token_env) == ("hubspot", "sales-eu", "ACME_HS")
    assert await TenantRegistry(database).get(bad) is None
    assert "a hubspot connection has no database_id" in capsys.readouterr().err


def test_the_schedule_tags_each_run_with_its_connectors_integration(tmp_path: Path) -> None:
    """Notion's and HubSpot's budgets are separate, so are their queue limits: even under one
    token variable name, a Notion tenant and a HubSpot tenant never wait for each other."""
    tenants = _tenants(
        tmp_path / "tenants.toml",
        TenantConnection(tenant_id="acme", token_env="ACME_TOKEN"),
        TenantConnection(tenant_id="globex", connector="hubspot", token_env="ACME_TOKEN"),
        TenantConnection(tenant_id="initech", connector="hubspot"),
    )
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("tenant", ["acme", "globex", "initech"])
        context = dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=TICK,
            resources={"tenants": tenants},
            repository_def=defs.get_repository_def(),
        )
        requests = sync_each_tenant_every_minute.evaluate_tick(context).run_requests or []
    assert [(r.partition_key, r.tags[INTEGRATION_TAG]) for r in requests] == [
        ("acme", "notion:ACME_TOKEN"),
        ("globex", "hubspot:ACME_TOKEN"),
        ("initech", "hubspot:CRM_PIPELINE_HUBSPOT_TOKEN"),
    ]


def test_the_sensor_adds_a_partition_per_new_active_tenant(tmp_path: Path) -> None:
    tenants = _tenants(
        tmp_path / "tenants.toml",
        TenantConnection(tenant_id="acme"),
        TenantConnection(tenant_id="globex"),
        TenantConnection(tenant_id="paused", active=False),
    )
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("tenant", ["acme"])
        result = tenant_partitions_sensor(dg.build_sensor_context(instance=instance, resources={"tenants": tenants}))
        assert isinstance(result, dg.SensorResult)
        [request] = result.dynamic_partitions_requests or []
        assert isinstance(request, dg.AddDynamicPartitionsRequest) and list(request.partition_keys) == ["globex"]


def test_the_schedule_runs_every_active_tenant_and_skips_one_still_in_flight(tmp_path: Path) -> None:
    tenants = _tenants(
        tmp_path / "tenants.toml",
        TenantConnection(tenant_id="acme", token_env="ACME_TOKEN"),
        TenantConnection(tenant_id="globex", token_env="GLOBEX_TOKEN"),
        TenantConnection(tenant_id="paused", active=False),
    )
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("tenant", ["acme", "globex", "paused"])

        def tick() -> dg.ScheduleExecutionData:
            context = dg.build_schedule_context(
                instance=instance,
                scheduled_execution_time=TICK,
                resources={"tenants": tenants},
                repository_def=defs.get_repository_def(),
            )
            return sync_each_tenant_every_minute.evaluate_tick(context)

        requests = tick().run_requests or []
        assert [(r.partition_key, r.tags[INTEGRATION_TAG]) for r in requests] == [
            ("acme", "notion:ACME_TOKEN"),
            ("globex", "notion:GLOBEX_TOKEN"),
        ]
        assert len({r.run_key for r in requests}) == 2

        run = create_run_for_test(
            instance, job_name=SYNC_JOB, status=dg.DagsterRunStatus.STARTED, tags={"dagster/partition": "acme"}
        )
        assert [r.partition_key for r in tick().run_requests or []] == ["globex"]

        create_run_for_test(
            instance, job_name=SYNC_JOB, status=dg.DagsterRunStatus.STARTING, tags={"dagster/partition": "globex"}
        )
        skipped = tick()
        assert not skipped.run_requests
        assert (
            skipped.skip_message is not None and run.run_id in skipped.skip_message and "globex" in skipped.skip_message
        )

        instance.report_run_canceled(run)  # a finished run no longer holds its tenant back
        assert [r.partition_key for r in tick().run_requests or []] == ["acme"]


@pytest.mark.integration
async def test_a_backfill_of_one_tenant_syncs_that_tenant_only(
    database: Database,
    repository: DealRepository,
    sandbox_server: RunningSandbox,
    control: SandboxControl,
    tenant: str,
    tmp_path: Path,
) -> None:
    other = f"{tenant}-b"
    await repository.register_tenant(other)
    control.reset()
    deals = {tenant: deals_database(control, "Deals A"), other: deals_database(control, "Deals B")}
    connections = [
        TenantConnection(tenant_id=t, database_id=d["database_id"], token_env=UNSET_TOKEN_ENV) for t, d in deals.items()
    ]
    resources = resources_for(database, sandbox_server, connections, tmp_path / "tenants.toml")
    for t in deals:
        await repository.create_opportunity(t, OpportunityCreate(name=f"Deal of {t}"))

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("tenant", [tenant, other])
        result = await sync_tenant(instance, resources, tenant)

        assert result.success
        assert metadata(result, "outbound_sync")["created"] == 1
        assert len(control.all_pages(deals[tenant]["data_source_id"])) == 1
        assert control.all_pages(deals[other]["data_source_id"]) == []
        assert await SyncStatus(repository, other, "notion").watermark(Direction.INBOUND) is None
        assert await SyncStatus(repository, tenant, "notion").watermark(Direction.INBOUND) is not None
        # The run is the tenant's partition: the UI shows it on that tenant only.
        assert instance.get_materialized_partitions(dg.AssetKey("inbound_sync")) == {tenant}


def test_dagster_home_prepares_an_instance_holding_each_active_tenants_partition(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What Dagster's own commands need to run a tenant's partition, with no daemon adding it:
    `<data dir>/dagster-cli` (DAGSTER_HOME unset) with the checkout's settings, every active
    tenant's partition, and its path printed; run again, it adds only what is new."""
    _tenants(
        tmp_path / "tenants.toml",
        TenantConnection(tenant_id="acme"),
        TenantConnection(tenant_id="paused", active=False),
    )
    monkeypatch.setenv("CRM_PIPELINE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CRM_PIPELINE_TENANTS_FILE", str(tmp_path / "tenants.toml"))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    get_settings.cache_clear()
    try:
        assert main(["dagster-home"]) == 0
        home = tmp_path / "dagster-cli"
        assert capsys.readouterr().out == f"{home}\n"
        assert (home / "dagster.yaml").read_text() == (PROJECT_ROOT / "dagster.yaml").read_text()
        _tenants(tmp_path / "tenants.toml", TenantConnection(tenant_id="acme"), TenantConnection(tenant_id="globex"))
        monkeypatch.setenv("DAGSTER_HOME", str(home))
        assert main(["dagster-home"]) == 0
    finally:
        get_settings.cache_clear()
    assert "partitions added to the Dagster instance in" in capsys.readouterr().err.replace("\n", " ")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_dynamic_partitions("tenant") == ["acme", "globex"]


@pytest.mark.integration
async def test_a_run_opens_its_tenant_from_the_registry_with_its_stored_token(
    empty_store: Settings,
    settings_of: Callable[[Settings], None],
    sandbox_server: RunningSandbox,
    control: SandboxControl,
    monkeypatch: pytest.MonkeyPatch,
    instance: dg.DagsterInstance,
) -> None:
    """The code location's own resources, unconfigured: the registry read through the run's deal
    store as the application role, the stored token decrypted with the deployment's key."""
    control.reset()
    deals = deals_database(control)
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("CRM_PIPELINE_SECRET_KEYS", key)
    settings_of(empty_store)
    stored = encrypt_token(SecretStr(SANDBOX_TOKEN), secret_keys(SecretStr(key)))
    async with await Database.open(empty_store) as database:
        await TenantRegistry(database).save(
            TenantConnection(tenant_id="acme", database_id=deals["database_id"], token_encrypted=stored)
        )
        await DealRepository(database).create_opportunity("acme", OpportunityCreate(name="Acme renewal"))
    notion = NotionConnector(base_url=sandbox_server.base_url, requests_per_second=1000, max_attempts=1)
    resources = {
        "deal_store": DealStoreResource(),
        "crm": CRMConnectionResource(notion=notion),
        "tenants": TenantsResource(),
    }

    result = await sync_tenant(instance, resources, "acme")

    assert result.success
    assert metadata(result, "outbound_sync")["created"] == 1
    assert len(control.all_pages(deals["data_source_id"])) == 1
