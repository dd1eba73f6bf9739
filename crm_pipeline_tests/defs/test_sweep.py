"""The sweep: one run syncs many tenants in one process; only passes that did something are
recorded, as their tenants' partitions; a failing tenant fails alone; the schedule shards the
registry and never starts a shard twice."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster._core.test_utils import create_run_for_test

from crm_pipeline.definitions import defs
from crm_pipeline.defs import schedules
from crm_pipeline.defs.resources import TenantsResource
from crm_pipeline.defs.runs import SYNC_JOB
from crm_pipeline.defs.schedules import sync_every_minute
from crm_pipeline.defs.sweep import SHARD_TAG, SWEEP_JOB, shard_of
from crm_pipeline.defs.tenants import TenantConnection, save_tenants
from crm_pipeline.models import OpportunityCreate
from crm_pipeline.sandbox import RunningSandbox, SandboxControl
from crm_pipeline.store import Database, DealRepository
from crm_pipeline_tests.defs.conftest import UNSET_TOKEN_ENV, deals_database, resources_for

TICK = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)  # any minute: the schedule only names its runs by it
SYNC_ASSETS = {"postgres_opportunities", "notion_pages", "reconciled_deals", "outbound_sync", "inbound_sync"}


class Tenants:
    """Registered tenants, each with a Deals database of its own in the sandbox."""

    def __init__(self, repository: DealRepository, control: SandboxControl, count: int, prefix: str) -> None:
        self.repository, self.control, self.count, self.prefix = repository, control, count, prefix
        self.connections: list[TenantConnection] = []
        self.data_sources: dict[str, str] = {}

    async def create(self, **schema_overrides: Any) -> list[TenantConnection]:
        made = []
        for n in range(self.count):
            tenant_id = f"{self.prefix}-{n}-{len(self.connections)}"
            await self.repository.register_tenant(tenant_id)
            deals = deals_database(self.control, f"Deals of {tenant_id}", **schema_overrides)
            self.data_sources[tenant_id] = deals["data_source_id"]
            made.append(
                TenantConnection(tenant_id=tenant_id, database_id=deals["database_id"], token_env=UNSET_TOKEN_ENV)
            )
        self.connections += made
        return made


def sweep(
    instance: dg.DagsterInstance, resources: dict[str, Any], shard: int = 0, shards: int = 1
) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def(SWEEP_JOB)
    config = {"ops": {"sync_tenants": {"config": {"shard": shard, "shards": shards}}}}
    return job.execute_in_process(run_config=config, resources=resources, instance=instance, raise_on_error=False)


def _output_metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    [output] = [event for event in result.all_events if event.is_successful_output]
    return dict(output.step_output_data.metadata)


def recorded(instance: dg.DagsterInstance, run_id: str) -> dict[str, set[str | None]]:
    """The partitions each kind of asset event of the run names: ``<asset>`` for a
    materialization, ``<check>`` for a check's result, ``observed <asset>`` for an observation."""
    found: dict[str, set[str | None]] = defaultdict(set)
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None:
            continue
        if event.is_step_materialization:
            materialization = event.step_materialization_data.materialization
            found[materialization.asset_key.to_user_string()].add(materialization.partition)
        elif event.is_asset_observation:
            observation = event.asset_observation_data.asset_observation
            found[f"observed {observation.asset_key.to_user_string()}"].add(observation.partition)
        elif event.event_type is dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.event_specific_data
            assert isinstance(evaluation, dg.AssetCheckEvaluation)
            found[evaluation.check_name].add(evaluation.partition)
    return dict(found)


@pytest.fixture
def sweep_instance() -> Any:
    with dg.instance_for_test() as instance:
        yield instance


async def test_a_sweep_syncs_every_tenant_in_one_run_and_records_only_the_passes_that_did_something(
    database: Database,
    repository: DealRepository,
    sandbox_server: RunningSandbox,
    control: SandboxControl,
    sweep_instance: dg.DagsterInstance,
    tmp_path: Path,
) -> None:
    control.reset()
    tenants = Tenants(repository, control, 3, "sweep")
    busy, other, idle = await tenants.create()
    await repository.create_opportunity(busy.tenant_id, OpportunityCreate(name="Acme renewal"))
    await repository.create_opportunity(other.tenant_id, OpportunityCreate(name="Globex pilot"))
    resources = resources_for(database, sandbox_server, tenants.connections, tmp_path / "tenants.toml")
    sweep_instance.add_dynamic_partitions("tenant", [t.tenant_id for t in tenants.connections])

    first = await asyncio.to_thread(sweep, sweep_instance, resources)

    assert first.success
    assert [
        p["properties"]["Deal Name"]["title"][0]["plain_text"]
        for p in control.all_pages(tenants.data_sources[busy.tenant_id])
    ] == ["Acme renewal"]
    assert len(control.all_pages(tenants.data_sources[other.tenant_id])) == 1
    events = recorded(sweep_instance, first.run_id)
    for asset in SYNC_ASSETS:
        assert events[asset] == {busy.tenant_id, other.tenant_id}, asset  # never the idle tenant
    for check in {key.name for key in defs.resolve_asset_graph().asset_check_keys}:
        assert events[check] == {busy.tenant_id, other.tenant_id}, check  # every check a run of one would give
    outcome = {key: value.value for key, value in _output_metadata(first).items()}
    assert (outcome["tenants"], outcome["synced"], outcome["quiet"], outcome["failed"]) == (3, 2, 1, 0)

    settling = await asyncio.to_thread(sweep, sweep_instance, resources)  # reads its own pages back
    assert settling.success
    control.reset_stats()
    second = await asyncio.to_thread(sweep, sweep_instance, resources)

    assert second.success
    assert recorded(sweep_instance, second.run_id) == {}  # three quiet passes: nothing for any tenant
    assert control.stats()["total"] == 3  # one request per idle tenant


async def test_a_tenant_with_a_run_of_its_own_in_flight_is_left_to_that_run(
    database: Database,
    repository: DealRepository,
    sandbox_server: RunningSandbox,
    control: SandboxControl,
    sweep_instance: dg.DagsterInstance,
    tmp_path: Path,
) -> None:
    """A backfill's ``deals_sync_job`` run of a tenant is in flight: the sweep neither reads nor
    writes that tenant (two passes would race for its lock and its rate budget)."""
    control.reset()
    tenants = Tenants(repository, control, 2, "own-run")
    backfilled, swept = await tenants.create()
    for connection in (backfilled, swept):
        await repository.create_opportunity(
            connection.tenant_id, OpportunityCreate(name=f"Deal of {connection.tenant_id}")
        )
    resources = resources_for(database, sandbox_server, tenants.connections, tmp_path / "tenants.toml")
    sweep_instance.add_dynamic_partitions("tenant", [t.tenant_id for t in tenants.connections])
    create_run_for_test(
        sweep_instance,
        job_name=SYNC_JOB,
        status=dg.DagsterRunStatus.STARTED,
        tags={"dagster/partition": backfilled.tenant_id},
    )

    result = await asyncio.to_thread(sweep, sweep_instance, resources)

    assert result.success
    assert control.all_pages(tenants.data_sources[backfilled.tenant_id]) == []
    assert len(control.all_pages(tenants.data_sources[swept.tenant_id])) == 1
    assert recorded(sweep_instance, result.run_id)["inbound_sync"] == {swept.tenant_id}
    outcome = {key: value.value for key, value in _output_metadata(result).items()}
    assert (outcome["tenants"], outcome["synced"], outcome["busy"]) == (2, 1, 1)


async def test_a_tenant_whose_schema_drifted_fails_alone_and_its_partition_says_why(
    database: Database,
    repository: DealRepository,
    sandbox_server: RunningSandbox,
    control: SandboxControl,
    sweep_instance: dg.DagsterInstance,
    tmp_path: Path,
) -> None:
    control.reset()
    tenants = Tenants(repository, control, 1, "fine")
    [fine] = await tenants.create()
    drifted_tenants = Tenants(repository, control, 1, "drifted")
    [drifted] = await drifted_tenants.create(Stage={"type": "rich_text", "rich_text": {}})
    for connection in (fine, drifted):
        await repository.create_opportunity(
            connection.tenant_id, OpportunityCreate(name=f"Deal of {connection.tenant_id}")
        )
    resources = resources_for(database, sandbox_server, [fine, drifted], tmp_path / "tenants.toml")
    sweep_instance.add_dynamic_partitions("tenant", [fine.tenant_id, drifted.tenant_id])

    result = await asyncio.to_thread(sweep, sweep_instance, resources)

    assert not result.success  # the run says a tenant failed ...
    assert len(control.all_pages(tenants.data_sources[fine.tenant_id])) == 1  # ... once the others synced
    assert control.all_pages(drifted_tenants.data_sources[drifted.tenant_id]) == []
    events = recorded(sweep_instance, result.run_id)
    assert events["inbound_sync"] == {fine.tenant_id}
    assert events["observed inbound_sync"] == {drifted.tenant_id}
    assert events["mapping_matches_schema"] == {fine.tenant_id, drifted.tenant_id}
    [failure] = [event for event in result.all_events if event.is_step_failure]
    assert drifted.tenant_id in str(failure.step_failure_data.error) and "mapping_matches_schema" in str(
        failure.step_failure_data.error
    )


async def test_an_idle_tenant_day_adds_no_rows_to_dagsters_storage_beyond_its_shards_runs(
    database: Database,
    repository: DealRepository,
    sandbox_server: RunningSandbox,
    control: SandboxControl,
    sweep_instance: dg.DagsterInstance,
    tmp_path: Path,
) -> None:
    """What idle tenants cost Dagster's storage: a sweep of three quiet tenants writes exactly the
    rows of a sweep of none (the run's own), so a day adds 1,440 runs per shard, and each run's
    rows, and nothing per idle tenant; housekeeping (``keep_days``) bounds the runs kept."""
    control.reset()
    tenants = Tenants(repository, control, 3, "idle")
    quiet = await tenants.create()
    resources = resources_for(database, sandbox_server, quiet, tmp_path / "tenants.toml")
    sweep_instance.add_dynamic_partitions("tenant", [t.tenant_id for t in quiet])
    shards = 1000
    [shard] = {shard_of(t.tenant_id, shards) for t in quiet[:1]}
    empty = next(n for n in range(shards) if all(shard_of(t.tenant_id, shards) != n for t in quiet))

    first = await asyncio.to_thread(sweep, sweep_instance, resources)  # discovers each connection
    assert recorded(sweep_instance, first.run_id) == {}  # quiet from the start: nothing to sync
    control.reset_stats()
    idle = await asyncio.to_thread(sweep, sweep_instance, resources)
    assert control.stats()["total"] == 3
    nobody = await asyncio.to_thread(sweep, sweep_instance, resources, empty, shards)
    one = await asyncio.to_thread(sweep, sweep_instance, resources, shard, shards)

    assert idle.success and nobody.success and one.success
    assert control.stats()["total"] == 3 + 1  # the empty shard asked nothing; the one-tenant shard once
    rows = {run.run_id: len(sweep_instance.all_logs(run.run_id)) for run in (idle, nobody, one)}
    assert rows[idle.run_id] == rows[nobody.run_id] == rows[one.run_id], rows
    assert recorded(sweep_instance, idle.run_id) == {}


def _schedule_context(
    instance: dg.DagsterInstance, tenants: list[TenantConnection], path: Path
) -> dg.ScheduleEvaluationContext:
    save_tenants(path, tenants)
    return dg.build_schedule_context(
        instance=instance, scheduled_execution_time=TICK, resources={"tenants": TenantsResource(tenants_file=str(path))}
    )


def test_the_schedule_shards_the_active_tenants_and_skips_a_shard_still_in_flight(
    sweep_instance: dg.DagsterInstance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(schedules, "TENANTS_PER_RUN", 2)
    tenants = [TenantConnection(tenant_id=f"acme-{n}") for n in range(5)] + [
        TenantConnection(tenant_id="paused", active=False)
    ]
    sweep_instance.add_dynamic_partitions("tenant", [t.tenant_id for t in tenants if t.tenant_id != "acme-4"])
    context = _schedule_context(sweep_instance, tenants, tmp_path / "tenants.toml")

    requests = sync_every_minute.evaluate_tick(context).run_requests or []

    # four active tenants have partitions (acme-4 waits for the sensor): two shards of two
    assert [request.tags[SHARD_TAG] for request in requests] == ["0/2", "1/2"]
    configs = [request.run_config["ops"]["sync_tenants"]["config"] for request in requests]
    assert [(c["shard"], c["shards"]) for c in configs] == [(0, 2), (1, 2)]
    assert len({request.run_key for request in requests}) == 2

    create_run_for_test(sweep_instance, job_name=SWEEP_JOB, tags={SHARD_TAG: "1/2"}, status=dg.DagsterRunStatus.STARTED)
    again = sync_every_minute.evaluate_tick(context).run_requests or []
    assert [request.tags[SHARD_TAG] for request in again] == ["0/2"]


def test_every_tenant_falls_in_exactly_one_shard_whatever_the_count() -> None:
    ids = [f"tenant-{n}" for n in range(500)]
    for shards in (1, 2, 3, 7):
        by_shard = [[t for t in ids if shard_of(t, shards) == shard] for shard in range(shards)]
        assert sorted(t for shard in by_shard for t in shard) == sorted(ids)
        assert all(len(shard) > 500 / shards / 2 for shard in by_shard)  # spread, not piled in one
