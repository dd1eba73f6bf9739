"""The sweep: one run syncs many tenants in one process; only passes that did something are
recorded, as their tenants' partitions; a failing tenant fails alone; the schedule shards the
registry and never starts a shard twice."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import dagster as dg
import pytest
from dagster._core.test_utils import create_run_for_test
from sqlalchemy import text

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


@dataclass
class Sweeping:
    """Registered tenants, each with a Deals database of its own in the sandbox and a partition
    in a Dagster instance of the test's own, and sweeps of them in process."""

    database: Database
    sandbox: RunningSandbox
    repository: DealRepository
    control: SandboxControl
    instance: dg.DagsterInstance
    tenants_file: Path
    connections: list[TenantConnection] = field(default_factory=list)
    data_sources: dict[str, str] = field(default_factory=dict)
    tag: str = field(default_factory=lambda: uuid4().hex[:8])
    """In every tenant id: unique to the test, on a deal store other tests share."""

    async def add(self, count: int, prefix: str, *, deal: bool = False, **schema: Any) -> list[TenantConnection]:
        """``count`` tenants (with a deal each to sync when ``deal``); ``schema`` overrides their
        Deals databases' properties."""
        made = []
        for n in range(count):
            tenant_id = f"{prefix}-{n}-{self.tag}"
            await self.repository.register_tenant(tenant_id)
            if deal:
                await self.repository.create_opportunity(tenant_id, OpportunityCreate(name=f"Deal of {tenant_id}"))
            deals = deals_database(self.control, f"Deals of {tenant_id}", **schema)
            self.data_sources[tenant_id] = deals["data_source_id"]
            made.append(
                TenantConnection(tenant_id=tenant_id, database_id=deals["database_id"], token_env=UNSET_TOKEN_ENV)
            )
        self.instance.add_dynamic_partitions("tenant", [tenant.tenant_id for tenant in made])
        self.connections += made
        return made

    def titles(self, tenant: TenantConnection) -> list[str]:
        pages = self.control.all_pages(self.data_sources[tenant.tenant_id])
        return [page["properties"]["Deal Name"]["title"][0]["plain_text"] for page in pages]

    async def sweep(self, shard: int = 0, shards: int = 1, concurrency: int = 8) -> dg.ExecuteInProcessResult:
        """One run of ``tenants_sweep_job`` over the tenants added so far; Dagster runs its own
        event loop, so in a thread."""
        resources = resources_for(self.database, self.sandbox, self.connections, self.tenants_file)
        config = {"ops": {"sync_tenants": {"config": {"shard": shard, "shards": shards, "concurrency": concurrency}}}}
        return await asyncio.to_thread(
            defs.resolve_job_def(SWEEP_JOB).execute_in_process,
            run_config=config,
            resources=resources,
            instance=self.instance,
            raise_on_error=False,
        )

    def recorded(self, result: dg.ExecuteInProcessResult) -> dict[str, set[str | None]]:
        """The partitions each kind of asset event of the run names: ``<asset>`` for a
        materialization, ``<check>`` for a check's result, ``observed <asset>`` for an observation."""
        found: dict[str, set[str | None]] = defaultdict(set)
        for entry in self.instance.all_logs(result.run_id):
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

    def rows(self, result: dg.ExecuteInProcessResult) -> int:
        """The run's rows in Dagster's event log."""
        return len(self.instance.all_logs(result.run_id))


def _outcome(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    """The sweep's own metadata: its tenants, and how their passes ended."""
    [output] = [event for event in result.all_events if event.is_successful_output]
    return {key: value.value for key, value in output.step_output_data.metadata.items()}


@pytest.fixture
def sweep_instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as instance:
        yield instance


@pytest.fixture
def sweeping(
    database: Database,
    repository: DealRepository,
    sandbox_server: RunningSandbox,
    control: SandboxControl,
    sweep_instance: dg.DagsterInstance,
    tmp_path: Path,
) -> Sweeping:
    control.reset()
    return Sweeping(database, sandbox_server, repository, control, sweep_instance, tmp_path / "tenants.toml")


async def test_a_sweep_syncs_every_tenant_in_one_run_and_records_only_the_passes_that_did_something(
    sweeping: Sweeping,
) -> None:
    busy, other, idle = await sweeping.add(2, "sweep", deal=True) + await sweeping.add(1, "sweep-quiet")

    first = await sweeping.sweep()

    assert first.success
    assert sweeping.titles(busy) == [f"Deal of {busy.tenant_id}"]
    assert sweeping.titles(other) == [f"Deal of {other.tenant_id}"]
    events = sweeping.recorded(first)
    for asset in SYNC_ASSETS:
        assert events[asset] == {busy.tenant_id, other.tenant_id}, asset  # never the idle tenant
    for check in {key.name for key in defs.resolve_asset_graph().asset_check_keys}:
        assert events[check] == {busy.tenant_id, other.tenant_id}, check  # every check a run of one would give
    outcome = _outcome(first)
    assert (outcome["tenants"], outcome["synced"], outcome["quiet"], outcome["failed"]) == (3, 2, 1, 0)

    settling = await sweeping.sweep()  # reads its own pages back
    assert settling.success
    sweeping.control.reset_stats()
    second = await sweeping.sweep()

    assert second.success
    assert sweeping.recorded(second) == {}  # three quiet passes: nothing for any tenant
    assert sweeping.control.stats()["total"] == 3  # one request per idle tenant


async def test_a_tenant_with_a_run_of_its_own_in_flight_is_left_to_that_run(sweeping: Sweeping) -> None:
    """A backfill's ``deals_sync_job`` run of a tenant is in flight: the sweep neither reads nor
    writes that tenant (two passes would race for its lock and its rate budget)."""
    backfilled, swept = await sweeping.add(2, "own-run", deal=True)
    create_run_for_test(
        sweeping.instance,
        job_name=SYNC_JOB,
        status=dg.DagsterRunStatus.STARTED,
        tags={"dagster/partition": backfilled.tenant_id},
    )

    result = await sweeping.sweep()

    assert result.success
    assert (sweeping.titles(backfilled), sweeping.titles(swept)) == ([], [f"Deal of {swept.tenant_id}"])
    assert sweeping.recorded(result)["inbound_sync"] == {swept.tenant_id}
    outcome = _outcome(result)
    assert (outcome["tenants"], outcome["synced"], outcome["busy"]) == (2, 1, 1)


async def test_a_tenant_whose_schema_drifted_fails_alone_and_its_partition_says_why(sweeping: Sweeping) -> None:
    [fine] = await sweeping.add(1, "fine", deal=True)
    [drifted] = await sweeping.add(1, "drifted", deal=True, Stage={"type": "rich_text", "rich_text": {}})

    result = await sweeping.sweep()

    assert not result.success  # the run says a tenant failed ...
    assert len(sweeping.titles(fine)) == 1  # ... once the others synced
    assert sweeping.titles(drifted) == []
    events = sweeping.recorded(result)
    assert events["inbound_sync"] == {fine.tenant_id}
    assert events["observed inbound_sync"] == {drifted.tenant_id}
    assert events["mapping_matches_schema"] == {fine.tenant_id, drifted.tenant_id}
    [failure] = [event for event in result.all_events if event.is_step_failure]
    assert drifted.tenant_id in str(failure.step_failure_data.error) and "mapping_matches_schema" in str(
        failure.step_failure_data.error
    )


async def test_the_tenants_the_agent_changed_are_passed_before_the_rest_of_the_shard(sweeping: Sweeping) -> None:
    """One pass at a time: the agent's new deal, on the shard's last tenant, reaches Notion before
    the people's edits on the tenants before it come in. The deal store's changes are known
    without asking any CRM, so the agent's edits do not wait behind a shard of idle tenants."""
    edited = await sweeping.add(2, "human-edits", deal=True)
    for _ in range(2):  # links the deals, then reads the sync's own pages back
        assert (await sweeping.sweep()).success
    [agent] = await sweeping.add(1, "agent-edit", deal=True)
    for tenant in edited:
        [page] = sweeping.control.all_pages(sweeping.data_sources[tenant.tenant_id])
        sweeping.control.human_update_page(page["id"], {"properties": {"Stage": {"select": {"name": "Qualified"}}}})

    result = await sweeping.sweep(concurrency=1)

    assert result.success

    async def earliest(tenant: TenantConnection, query: str) -> datetime | None:
        async with sweeping.database.tenant_transaction(tenant.tenant_id) as connection:
            return (await connection.execute(text(query))).scalar_one()

    created = await earliest(agent, "SELECT min(linked_at) FROM crm.sync_links")
    pulls = [await earliest(t, "SELECT min(changed_at) FROM crm.change_log WHERE actor = 'human'") for t in edited]
    pulled = min((moment for moment in pulls if moment is not None), default=None)
    assert created is not None and pulled is not None
    assert created < pulled


async def test_a_tenant_whose_token_cannot_be_read_fails_alone(sweeping: Sweeping) -> None:
    [fine] = await sweeping.add(1, "readable-token", deal=True)
    [broken] = await sweeping.add(1, "unreadable-token", deal=True)
    missing = "/nonexistent/crm-pipeline/token"
    sweeping.connections[-1] = TenantConnection(
        tenant_id=broken.tenant_id, database_id=broken.database_id, token_file=missing
    )

    result = await sweeping.sweep()

    assert not result.success  # the run says a tenant failed, once the others synced
    assert sweeping.titles(fine) == [f"Deal of {fine.tenant_id}"]
    assert sweeping.titles(broken) == []
    events = sweeping.recorded(result)
    assert (events["inbound_sync"], events["observed inbound_sync"]) == ({fine.tenant_id}, {broken.tenant_id})
    [failure] = [event for event in result.all_events if event.is_step_failure]
    assert broken.tenant_id in str(failure.step_failure_data.error) and missing in str(failure.step_failure_data.error)


async def test_an_idle_tenant_day_adds_no_rows_to_dagsters_storage_beyond_its_shards_runs(sweeping: Sweeping) -> None:
    """What idle tenants cost Dagster's storage: a sweep of three quiet tenants writes exactly the
    rows of a sweep of none (the run's own), so a day adds 1,440 runs per shard, and each run's
    rows, and nothing per idle tenant; housekeeping (``keep_days``) bounds the runs kept."""
    quiet = await sweeping.add(3, "idle")
    shards = 1000
    [shard] = {shard_of(t.tenant_id, shards) for t in quiet[:1]}
    empty = next(n for n in range(shards) if all(shard_of(t.tenant_id, shards) != n for t in quiet))

    first = await sweeping.sweep()  # discovers each connection
    assert sweeping.recorded(first) == {}  # quiet from the start: nothing to sync
    sweeping.control.reset_stats()
    idle = await sweeping.sweep()
    assert sweeping.control.stats()["total"] == 3
    nobody = await sweeping.sweep(empty, shards)
    one = await sweeping.sweep(shard, shards)

    assert idle.success and nobody.success and one.success
    assert sweeping.control.stats()["total"] == 3 + 1  # the empty shard asked nothing; the one-tenant shard once
    assert sweeping.rows(idle) == sweeping.rows(nobody) == sweeping.rows(one)
    assert sweeping.recorded(idle) == {}


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
