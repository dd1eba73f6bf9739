"""Tenants as independent partitioned runs under Dagster's own processes: the daemon's run queue
with the checkout's per-integration limit, and the default run launcher, which starts each run
in a process of its own. Throughput grows with run workers; an integration's budget does not."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import dagster as dg
import pytest

from crm_pipeline.definitions import defs
from crm_pipeline.defs.resources import TenantsResource
from crm_pipeline.defs.runs import SYNC_JOB
from crm_pipeline.defs.schedules import INTEGRATION_TAG, sync_each_tenant_every_minute, sync_every_minute
from crm_pipeline.defs.tenants import TenantConnection, save_tenants
from crm_pipeline.models import OpportunityCreate
from crm_pipeline.sandbox import SandboxConfig, SandboxControl, serve_in_thread
from crm_pipeline.store import Database, DealRepository
from crm_pipeline_tests.dagster_processes import dagster_dev
from crm_pipeline_tests.defs.conftest import deals_database

pytestmark = pytest.mark.integration

RATE = 3.0
"""Requests/s per token, Notion's budget, which the client paces to and the sandbox enforces."""
BURST = 3
"""The sandbox's bucket: one second's budget, so a paced client never meets a 429 while two
clients on one token (twice the rate) do within seconds."""
DEALS = 6
"""Deals per tenant: a first pass creates each page, some twenty requests at 3/s."""
TENANTS = {"a1": "a", "a2": "a", "b": "b", "c": "c"}
"""Tenant → integration: a1 and a2 share one, b and c have one each."""


@pytest.mark.long
async def test_three_tenants_sync_in_parallel_runs_without_exceeding_one_integrations_budget(
    database: Database, repository: DealRepository, tmp_path: Path
) -> None:
    """Four tenants on three integrations, each run requested by the schedule's own logic and
    launched through the webserver: the runs of the three integrations overlap, the two of the
    shared integration take turns, every tenant's deals reach its Notion database, and no token
    is refused for going over its rate (the sandbox limits each token to Notion's budget)."""
    tag = uuid4().hex[:8]
    tokens = {integration: f"secret_{tag}_{integration}" for integration in sorted(set(TENANTS.values()))}
    # The variables are unique to this test: the queue's limit applies per value across the storage.
    variables = {integration: f"CRM_PIPELINE_TEST_{tag.upper()}_{integration.upper()}" for integration in tokens}
    sandbox_config = SandboxConfig(tokens=tuple(tokens.values()), rate_limit=RATE, burst=BURST)
    with serve_in_thread(sandbox_config) as sandbox, SandboxControl(sandbox.base_url) as control:
        connections: dict[str, TenantConnection] = {}
        data_sources: dict[str, str] = {}
        for name, integration in TENANTS.items():
            tenant_id = f"t-{tag}-{name}"
            await repository.register_tenant(tenant_id, name=f"Tenant {name}")
            for n in range(DEALS):
                await repository.create_opportunity(tenant_id, OpportunityCreate(name=f"{name} deal {n}"))
            notion_database = deals_database(control, title=f"Deals of {name}")
            data_sources[name] = notion_database["data_source_id"]
            connections[name] = TenantConnection(
                tenant_id=tenant_id,
                database_id=notion_database["database_id"],
                token_env=variables[integration],
                base_url=sandbox.base_url,
            )
        tenants_file = tmp_path / "tenants.toml"
        save_tenants(tenants_file, list(connections.values()))
        environment = {"CRM_PIPELINE_TENANTS_FILE": str(tenants_file)} | {
            variables[integration]: token for integration, token in tokens.items()
        }
        runs, stats = await asyncio.to_thread(
            _launch_the_schedules_requests, tmp_path / "dagster", database, environment, control
        )
        pages = {name: control.all_pages(data_source) for name, data_source in data_sources.items()}

    by_tenant = {connection.tenant_id: name for name, connection in connections.items()}
    runs_by_tenant = {by_tenant[run.dagster_run.tags["dagster/partition"]]: run for run in runs}
    assert set(runs_by_tenant) == set(TENANTS)
    assert {name: run.dagster_run.status for name, run in runs_by_tenant.items()} == dict.fromkeys(
        TENANTS, dg.DagsterRunStatus.SUCCESS
    )
    for name, integration in TENANTS.items():
        assert runs_by_tenant[name].dagster_run.tags[INTEGRATION_TAG] == f"notion:{variables[integration]}"
        titles = {page["properties"]["Deal Name"]["title"][0]["plain_text"] for page in pages[name]}
        assert titles == {f"{name} deal {n}" for n in range(DEALS)}

    def span(name: str) -> tuple[float, float]:
        start, end = runs_by_tenant[name].start_time, runs_by_tenant[name].end_time
        assert start is not None and end is not None
        return start, end

    shared = sorted(["a1", "a2"], key=lambda name: span(name)[0])
    assert span(shared[0])[1] <= span(shared[1])[0], "runs on one integration overlapped"
    parallel = [span(name) for name in (shared[0], "b", "c")]
    assert max(start for start, _ in parallel) < min(end for _, end in parallel), (
        f"the three integrations' runs never ran at once: {parallel}"
    )
    per_token = stats["by_token"]
    assert len(per_token) == len(tokens), per_token  # every integration's token was used
    assert all(set(statuses) == {"200"} for statuses in per_token.values()), per_token  # no 429, nothing failed


def _launch_the_schedules_requests(
    home: Path, database: Database, environment: dict[str, str], control: SandboxControl
) -> tuple[list[dg.RunRecord], dict[str, Any]]:
    """Start Dagster, give it the tenants' partitions (as `crm-pipeline tenants add` does), ask
    `sync_each_tenant_every_minute` for its run requests and submit each through the webserver, as the
    daemon would submit them on a tick; wait for the runs to finish. Returns their records and
    the sandbox's statistics then, before Dagster stops (stopping would cut off any run the
    running schedule has started since)."""
    home.mkdir()
    tenants = TenantsResource(tenants_file=environment["CRM_PIPELINE_TENANTS_FILE"])
    with dagster_dev(home, database, environment) as dagster:
        # The sweep would sync these tenants too: what is measured here is the run per tenant.
        dagster.set_schedule(sync_every_minute.name, running=False)
        dagster.instance.add_dynamic_partitions("tenant", [tenant.tenant_id for tenant in tenants.active()])
        context = dg.build_schedule_context(
            instance=dagster.instance,
            resources={"tenants": tenants},
            repository_def=defs.get_repository_def(),
            scheduled_execution_time=datetime.now(UTC),
        )
        requests = sync_each_tenant_every_minute.evaluate_tick(context).run_requests or []
        run_ids = [
            dagster.client.submit_job_execution(
                SYNC_JOB, tags={**request.tags, "dagster/partition": str(request.partition_key)}
            )
            for request in requests
        ]
        return dagster.wait_for_runs(run_ids), control.stats()
