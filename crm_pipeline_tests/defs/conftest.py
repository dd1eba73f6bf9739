"""Fixtures for the code location: a tenant with its own sandbox Notion database, configured in a
tenants file of the test's own, and the resources a run of it needs."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from crm_pipeline.crm.notion.properties import SYNCED_PROPERTY_MAP, notion_properties_schema
from crm_pipeline.definitions import defs
from crm_pipeline.defs.resources import (
    CRMConnectionResource,
    DealStoreResource,
    HubSpotConnector,
    NotionConnector,
    SalesforceConnector,
    TenantsResource,
)
from crm_pipeline.defs.tenants import TenantConnection, save_tenants
from crm_pipeline.sandbox import RunningSandbox, SandboxControl
from crm_pipeline.store import Database

UNSET_TOKEN_ENV = "CRM_PIPELINE_TEST_NO_TOKEN"
"""A token variable no test sets: the tenants talk to the sandbox."""


@dataclass
class TenantWorld:
    """A registered tenant, its sandbox Deals database and the resources for its runs."""

    tenant_id: str
    control: SandboxControl
    data_source_id: str
    resources: dict[str, Any]

    def configure(self, **connection: Any) -> None:
        """Replace the tenant's connection in its tenants file."""
        path = Path(self.resources["tenants"].tenants_file)
        save_tenants(path, [TenantConnection(tenant_id=self.tenant_id, token_env=UNSET_TOKEN_ENV, **connection)])

    def pages(self) -> list[dict[str, Any]]:
        return self.control.all_pages(self.data_source_id)


def deals_database(control: SandboxControl, title: str = "Deals", **property_overrides: Any) -> dict[str, Any]:
    """Seed one Deals database with the synced map (some properties replaced, for drift)."""
    properties = {**notion_properties_schema(SYNCED_PROPERTY_MAP), **property_overrides}
    [database] = control.seed({"databases": [{"title": title, "properties": properties}]})
    return database


def resources_for(
    database: Database, sandbox: RunningSandbox, tenants: Sequence[TenantConnection], path: Path
) -> dict[str, Any]:
    """The code location's resources over the test's store and sandbox Notion; HubSpot and
    Salesforce tenants name their local API in their connection (``base_url``), unpaced there."""
    save_tenants(path, tenants)
    return {
        "deal_store": DealStoreResource(
            database_url=database.url.render_as_string(hide_password=False),
            app_database_url=database.app_url.render_as_string(hide_password=False),
        ),
        "crm": CRMConnectionResource(
            notion=NotionConnector(base_url=sandbox.base_url, requests_per_second=1000, max_attempts=1),
            hubspot=HubSpotConnector(per_ten_seconds=0, max_attempts=1),
            salesforce=SalesforceConnector(per_minute=0, max_attempts=1),
        ),
        "tenants": TenantsResource(tenants_file=str(path)),
    }


@pytest.fixture
def world(
    database: Database, sandbox_server: RunningSandbox, control: SandboxControl, tenant: str, tmp_path: Path
) -> TenantWorld:
    control.reset()
    deals = deals_database(control)
    connection = TenantConnection(tenant_id=tenant, database_id=deals["database_id"], token_env=UNSET_TOKEN_ENV)
    resources = resources_for(database, sandbox_server, [connection], tmp_path / "tenants.toml")
    return TenantWorld(tenant, control, deals["data_source_id"], resources)


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as instance:
        yield instance


async def sync_tenant(
    instance: dg.DagsterInstance, resources: dict[str, Any], tenant_id: str
) -> dg.ExecuteInProcessResult:
    """One pass of the tenant through the code location's own job (assets and their checks), in
    process; Dagster runs its own event loop, so in a thread."""
    instance.add_dynamic_partitions("tenant", [tenant_id])
    job = defs.resolve_job_def("deals_sync_job")
    return await asyncio.to_thread(
        job.execute_in_process, resources=resources, instance=instance, partition_key=tenant_id, raise_on_error=False
    )


def metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, Any]:
    [materialization] = result.asset_materializations_for_node(asset)
    return {key: value.value for key, value in materialization.metadata.items()}


def check_results(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {evaluation.check_name: evaluation.passed for evaluation in result.get_asset_check_evaluations()}
