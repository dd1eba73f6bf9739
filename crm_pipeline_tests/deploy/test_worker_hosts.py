"""Tenants synced by Celery workers on two hosts through Dagster's own machinery, and a lost host.

Each host is a network namespace with its own address (crm_pipeline_tests/deploy/hosts.py),
running `crm-pipeline worker`; Dagster's webserver and daemon run here, in the root namespace,
with the checkout's dagster.yaml and the run launcher ``CRM_PIPELINE_CELERY_BROKER`` selects.
PostgreSQL (Dagster's storage and the deal store), the Redis broker and the sandbox Notion listen
on the bridge's address, the one way the hosts reach them. Run monitoring polls every second
here (30 s in dagster.yaml), so a lost host is seen within seconds.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import uuid4

import dagster as dg
import pytest
from celery import Celery
from dagster_celery.tags import DAGSTER_CELERY_TASK_ID_TAG

from crm_pipeline.defs.partitions import TENANT_PARTITIONS
from crm_pipeline.defs.schedules import sync_every_minute
from crm_pipeline.defs.sweep import SHARD_TAG, SWEEP_JOB, sync_tenants
from crm_pipeline.defs.tenants import TenantConnection, save_tenants
from crm_pipeline.models import OpportunityCreate, OpportunityUpdate
from crm_pipeline.sandbox import SandboxConfig, SandboxControl, serve_in_thread
from crm_pipeline.store import Database, DealRepository
from crm_pipeline.workers import BROKER_VARIABLE
from crm_pipeline_tests.dagster_processes import RunningDagster, dagster_dev, free_port, instance_variables
from crm_pipeline_tests.defs.conftest import deals_database
from crm_pipeline_tests.deploy.hosts import (
    Host,
    can_make_hosts,
    network,
    postgres_over_tcp,
    redis_server,
    wait_for_workers,
    worker_on,
)

pytestmark = pytest.mark.integration

RATE = 3.0
"""Requests/s per token, Notion's budget: the sandbox refuses more with a 429."""
BURST = 3
"""One second's budget: two hosts' passes on one token without the shared budget meet 429s."""
INTEGRATIONS = ("a", "b")
MONITORING = {
    "run_monitoring": {
        "enabled": True,
        "start_timeout_seconds": 120,
        "poll_interval_seconds": 1,
        "max_resume_run_attempts": 2,
    }
}


@dataclass
class Cluster:
    """Dagster here, a worker on each of two hosts, the services on the bridge's address."""

    dagster: RunningDagster
    hosts: list[Host]
    sandbox_url: str
    control: SandboxControl
    tokens: dict[str, str]
    variables: dict[str, str]
    tenants_file: Path
    celery: Celery


@pytest.fixture(scope="module")
def cluster(database: Database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if (unable := can_make_hosts()) is not None:
        reason = f"the worker-host tests cannot run here: {unable}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the worker-host tests: {reason}")
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("hosts")
    tag = uuid4().hex[:8]
    tokens = {integration: f"secret_{tag}_{integration}" for integration in INTEGRATIONS}
    variables = {integration: f"CRM_PIPELINE_TEST_{tag.upper()}_{integration.upper()}" for integration in INTEGRATIONS}
    tenants_file = folder / "tenants.toml"
    save_tenants(tenants_file, [])
    sandbox_config = SandboxConfig(tokens=tuple(tokens.values()), rate_limit=RATE, burst=BURST, latency_ms=40)
    with (
        network(2) as net,
        redis_server(folder, net.address, free_port()) as (broker, _),
        postgres_over_tcp(database.url, net.address) as owner_url,
        serve_in_thread(sandbox_config, host=net.address) as sandbox,
        SandboxControl(sandbox.base_url) as control,
    ):
        secrets = {variables[integration]: token for integration, token in tokens.items()}
        environment = {"CRM_PIPELINE_TENANTS_FILE": str(tenants_file), BROKER_VARIABLE: broker, **secrets}
        home = folder / "dagster"
        # What a host sees: the same instance and settings, PostgreSQL over its link. The workers
        # start beside Dagster: they read the instance's dagster.yaml only when a run comes.
        app_url = owner_url.set(username=database.app_url.username, password=database.app_url.password)
        remote = instance_variables(home, owner_url, app_url, environment)
        with (
            worker_on(net.hosts[0], broker, remote, folder / "host-0.log"),
            worker_on(net.hosts[1], broker, remote, folder / "host-1.log"),
            dagster_dev(home, database, environment, celery=True, overrides=MONITORING) as dagster,
        ):
            dagster.set_schedule(sync_every_minute.name, running=False)  # runs are launched here, tick by tick
            wait_for_workers(broker, net.hosts)
            celery = Celery(broker=broker, backend=broker)
            yield Cluster(dagster, net.hosts, sandbox.base_url, control, tokens, variables, tenants_file, celery)


async def _tenants(cluster: Cluster, repository: DealRepository, count: int, deals: int) -> dict[str, str]:
    """``count`` tenants with ``deals`` deals each, alternating between the two integrations, in
    the tenants file the runs read and with their partitions; tenant → its Notion data source."""
    tag = uuid4().hex[:6]
    connections, sources = [], {}
    for n in range(count):
        tenant_id = f"h-{tag}-{n}"
        await repository.register_tenant(tenant_id)
        for d in range(deals):
            await repository.create_opportunity(tenant_id, OpportunityCreate(name=f"{tenant_id} deal {d}"))
        notion = deals_database(cluster.control, title=f"Deals of {tenant_id}")
        sources[tenant_id] = notion["data_source_id"]
        integration = INTEGRATIONS[n % len(INTEGRATIONS)]
        connections.append(
            TenantConnection(
                tenant_id=tenant_id,
                database_id=notion["database_id"],
                token_env=cluster.variables[integration],
                base_url=cluster.sandbox_url,
            )
        )
    save_tenants(cluster.tenants_file, connections)
    cluster.dagster.instance.add_dynamic_partitions(TENANT_PARTITIONS, list(sources))
    return sources


def _sweep(cluster: Cluster, shard: int = 0, shards: int = 1) -> str:
    """A sweep run of one shard, submitted as the schedule's tick would request it."""
    config = {"ops": {sync_tenants.name: {"config": {"shard": shard, "shards": shards}}}}
    return cluster.dagster.client.submit_job_execution(
        SWEEP_JOB, run_config=config, tags={SHARD_TAG: f"{shard}/{shards}"}
    )


def _worker_of(cluster: Cluster, run: dg.DagsterRun) -> str:
    """The host whose worker ran (or runs) the run's latest task."""
    result = cluster.celery.AsyncResult(run.tags[DAGSTER_CELERY_TASK_ID_TAG])
    info: Any = result.info
    hostname = info.get("hostname") if isinstance(info, dict) and "hostname" in info else result.worker
    return str(hostname).split("@")[0]


def _titles(control: SandboxControl, data_source: str) -> list[str]:
    return sorted(page["properties"]["Deal Name"]["title"][0]["plain_text"] for page in control.all_pages(data_source))


def _only_ok(stats: dict[str, Any], *, cut_off: bool = False) -> None:
    """Every request answered 200, on every integration: none refused for the rate (429). With
    ``cut_off``, a request a lost host had in flight may end as 499 (its client gone)."""
    allowed = {"200", "499"} if cut_off else {"200"}
    assert all(set(statuses) <= allowed for statuses in stats["by_token"].values()), stats["by_token"]


async def test_tenants_sync_from_both_hosts_within_each_integrations_budget(
    cluster: Cluster, repository: DealRepository
) -> None:
    """Four tenants on two integrations in four shard runs: the runs go to both hosts' workers,
    every tenant's deals reach its Notion database, and the integrations' budget, shared in
    PostgreSQL by passes on both hosts, keeps every request within Notion's rate (no 429)."""
    sources = await _tenants(cluster, repository, count=4, deals=1)
    cluster.control.reset_stats()
    run_ids = [_sweep(cluster, shard, 4) for shard in range(4)]
    records = await asyncio.to_thread(cluster.dagster.wait_for_runs, run_ids)
    assert [record.dagster_run.status for record in records] == [dg.DagsterRunStatus.SUCCESS] * 4, (
        cluster.dagster.log_tail()
    )
    assert {_worker_of(cluster, record.dagster_run) for record in records} == {host.name for host in cluster.hosts}
    for tenant_id, source in sources.items():
        assert _titles(cluster.control, source) == [f"{tenant_id} deal 0"]
    _only_ok(cluster.control.stats())


async def test_a_lost_host_s_runs_finish_on_the_other_host(cluster: Cluster, repository: DealRepository) -> None:
    """A sweep run's host is lost (every process in it killed) while its passes create pages: run
    monitoring finds its worker gone and resumes the run on the other host's worker, which
    finishes every tenant with no page made twice and no pass held up by the lost one's locks;
    edits made meanwhile on either side are carried by the next tick, and nothing went over a
    token's rate."""
    deals = 6
    sources = await _tenants(cluster, repository, count=4, deals=deals)
    cluster.control.reset_stats()
    run_id = _sweep(cluster)
    instance = cluster.dagster.instance

    def pages_made() -> int:
        return sum(len(cluster.control.all_pages(source)) for source in sources.values())

    await _until(lambda: pages_made() >= 3, "the run's passes to start creating pages")
    run = instance.get_run_by_id(run_id)
    assert run is not None and run.status == dg.DagsterRunStatus.STARTED
    lost_name = _worker_of(cluster, run)
    [lost] = [host for host in cluster.hosts if host.name == lost_name]
    [other] = [host for host in cluster.hosts if host is not lost]
    lost.lose()
    made_before = pages_made()
    assert made_before < len(sources) * deals, "the run finished before its host was lost"

    # An edit on each side while the run is resumed.
    first = next(iter(sources))
    [deal] = [d for d in await repository.list_opportunities(first) if d.name == f"{first} deal 0"]
    await repository.update_opportunity(first, deal.id, OpportunityUpdate(estimated_value=4321))

    [record] = await asyncio.to_thread(cluster.dagster.wait_for_runs, [run_id])
    assert record.dagster_run.status == dg.DagsterRunStatus.SUCCESS, cluster.dagster.log_tail()
    messages = [event.message or "" for event in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)]
    assert any("does not answer" in message and "Resuming run" in message for message in messages), messages
    assert _worker_of(cluster, record.dagster_run) == other.name
    for tenant_id, source in sources.items():
        assert _titles(cluster.control, source) == [f"{tenant_id} deal {d}" for d in range(deals)], tenant_id
    metadata = _sweep_metadata(instance, run_id)
    assert (metadata["failed"], metadata["busy"]) == (0, 0), metadata  # no pass waited on a lost lock

    page = next(
        p
        for p in cluster.control.all_pages(sources[first])
        if p["properties"]["Deal Name"]["title"][0]["plain_text"] == f"{first} deal 1"
    )
    cluster.control.human_update_page(page["id"], {"properties": {"Value": {"number": 777}}})
    [tick] = await asyncio.to_thread(cluster.dagster.wait_for_runs, [_sweep(cluster)])
    assert tick.dagster_run.status == dg.DagsterRunStatus.SUCCESS
    values = {
        p["properties"]["Deal Name"]["title"][0]["plain_text"]: p["properties"]["Value"]["number"]
        for p in cluster.control.all_pages(sources[first])
    }
    assert values[f"{first} deal 0"] == 4321
    [edited] = [d for d in await repository.list_opportunities(first) if d.name == f"{first} deal 1"]
    assert edited.estimated_value == 777
    _only_ok(cluster.control.stats(), cut_off=True)


def _sweep_metadata(instance: dg.DagsterInstance, run_id: str) -> dict[str, Any]:
    """The sweep step's output metadata (its counts of tenants) in the run's last success."""
    [event] = instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_OUTPUT)[-1:]
    assert event.dagster_event is not None
    entries = event.dagster_event.step_output_data.metadata
    return {key: json.loads(json.dumps(value.value)) for key, value in entries.items()}


async def _until(condition: Any, what: str, timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await asyncio.to_thread(condition):
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"waited {timeout} s for {what}")
        await asyncio.sleep(0.2)
