"""`crm-pipeline sync`: one sync pass for a tenant, against the configured store and its CRM.

The same ``CRM_PIPELINE_*`` settings as everything else: the deal store (embedded unless
configured), the Notion token and database (the local sandbox's Deals database when no token is
set); a tenant of the registry (``crm-pipeline tenants``) syncs with its connection there (Notion,
HubSpot or Salesforce), opened as Dagster's runs open it (``crm_pipeline.tenants``).
Exit 0 when the pass ran, per-record errors included; 2, with the reason, when it could not run at
all (no store, an unknown tenant, a refused token, a drifted schema).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Any

import httpx
import requests
import urllib3
from pydantic import SecretStr
from tabulate import tabulate

from crm_pipeline.crm import NotionAdapter, PostgresAdapter
from crm_pipeline.crm.adapter import CRMAdapter
from crm_pipeline.crm.budget import PostgresBudget, RequestBudget
from crm_pipeline.crm.errors import PropertySchemaError
from crm_pipeline.crm.hubspot import PipelineConfigError
from crm_pipeline.crm.hubspot.client import status_of as hubspot_status_of
from crm_pipeline.crm.notion import DataSourceConfigError, NotionAdapterError
from crm_pipeline.crm.salesforce import InstanceConfigError, SessionExpiredError, StageConfigError
from crm_pipeline.models import SyncResult
from crm_pipeline.settings import Settings, get_settings
from crm_pipeline.store import Database, DealRepository, StoreError
from crm_pipeline.sync.engine import SyncEngine
from crm_pipeline.sync.ownership import DEFAULT_FIELD_OWNERSHIP
from crm_pipeline.sync.report import PlannedWrite, deals_in, planned_writes, value_text
from crm_pipeline.tenants import TokenUnavailableError, open_connection, read_token, sandbox_notion, settings_tenant
from crm_pipeline.tenants.open import open_notion
from crm_pipeline.tenants.secrets import SecretKeyError
from crm_pipeline.tenants.source import configured_connection

CANNOT_RUN = 2
COUNTS = ("pushed", "pulled", "created", "trashed", "conflicts")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("sync", help="run one sync pass between the deal store and Notion")
    parser.add_argument("--tenant", help="the tenant to sync (default: CRM_PIPELINE_TENANT_ID)")
    parser.add_argument(
        "--dry-run", action="store_true", help="list each write the pass would make, by deal name; write nothing"
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object: the counts, errors and (dry run) the writes"
    )
    parser.set_defaults(handler=run)


def notion_connection(settings: Settings) -> tuple[str | SecretStr, str | None]:
    """The Notion token and base URL of the settings: the sandbox's when no token is set."""
    if settings.notion_token is None:
        token, _, base_url = sandbox_notion(settings.sandbox_port, None, settings.notion_base_url)
        return token, base_url
    return settings.notion_token, settings.notion_base_url


def notion_adapter(
    settings: Settings,
    tenant_id: str,
    *,
    database_id: str | None = None,
    data_source_id: str | None = None,
    budget: RequestBudget | None = None,
) -> NotionAdapter:
    """The configured Notion deals database (or ``database_id`` and its ``data_source_id``), mapped
    for sync; the sandbox's Deals database when no token is set. ``budget``: the token's request
    budget across processes (None: paced in this process only)."""
    tenant = settings_tenant(settings, tenant_id)
    if database_id is not None:
        tenant = tenant.model_copy(update={"database_id": database_id, "data_source_id": data_source_id})
    if settings.notion_token is not None and not tenant.database_id:
        raise DataSourceConfigError("CRM_PIPELINE_NOTION_TOKEN is set but CRM_PIPELINE_NOTION_DATABASE_ID is not")
    return open_notion(tenant, settings.notion_token, settings, budget=budget)


async def external_adapter(
    database: Database, settings: Settings, tenant_id: str, budget: RequestBudget | None = None
) -> CRMAdapter:
    """The tenant's external CRM: its connection in the registry (or the tenants file the settings
    name), opened as Dagster's runs open it (a HubSpot or Salesforce tenant without a token: its local API);
    a tenant without one, the settings' Notion. Paced by ``budget`` as Dagster's runs are."""
    tenant = await configured_connection(database, settings, tenant_id)
    if tenant is None:
        return notion_adapter(settings, tenant_id, budget=budget)
    return open_connection(tenant, read_token(tenant, settings.secret_keys), settings, budget=budget)


async def sync_once(settings: Settings, tenant_id: str, *, dry_run: bool) -> tuple[SyncResult, list[PlannedWrite]]:
    """Open the store and the tenant's external CRM, run one pass or plan it (with the writes it
    would make, by deal name), close both."""
    async with await Database.open(settings) as database:
        external = await external_adapter(database, settings, tenant_id, PostgresBudget(database.engine))
        try:
            engine = SyncEngine(PostgresAdapter(DealRepository(database), tenant_id), external, DEFAULT_FIELD_OWNERSHIP)
            return await _planned(engine) if dry_run else (await engine.run_pass(), [])
        finally:
            await external.aclose()


async def _planned(engine: SyncEngine) -> tuple[SyncResult, list[PlannedWrite]]:
    plan = await engine.plan()
    names = await engine.deal_store.repository.opportunity_names(engine.deal_store.tenant_id, deals_in(plan))
    return plan.summary(), planned_writes(plan, names, engine.status.connector)


def cannot_run(error: BaseException) -> bool:
    """Errors that stop the whole pass, as against one record's: Notion's, HubSpot's (an answer
    of HubSpot's SDK, whose modules each have their own ApiException, or none at all) and
    Salesforce's (a refused session, the org's set-up, an answer of simple-salesforce's or none)."""
    from notion_client import APIResponseError
    from simple_salesforce.exceptions import SalesforceError

    kinds = (StoreError, PropertySchemaError, NotionAdapterError, APIResponseError, httpx.HTTPError)
    tenant = (TokenUnavailableError, SecretKeyError)
    hubspot = (PipelineConfigError, urllib3.exceptions.HTTPError)
    salesforce = (
        InstanceConfigError,
        SessionExpiredError,
        StageConfigError,
        SalesforceError,
        requests.RequestException,
    )
    return isinstance(error, kinds + tenant + hubspot + salesforce) or hubspot_status_of(error) is not None


def report(
    result: SyncResult, tenant_id: str, *, dry_run: bool, planned: Sequence[PlannedWrite] = ()
) -> dict[str, Any]:
    """The pass as one JSON object: its counts and errors; a dry run's also every write it would make."""
    counts = {name: getattr(result, name) for name in COUNTS}
    errors = [error.model_dump() for error in result.errors]
    listed = {"planned": [write.as_json() for write in planned]} if dry_run else {}
    return {
        "tenant": tenant_id,
        "dry_run": dry_run,
        "skipped": result.skipped,
        **counts,
        "deferred": result.deferred,
        "errors": errors,
        **listed,
    }


def planned_table(planned: Sequence[PlannedWrite]) -> str:
    """The writes a dry run found, one line each: deal, what, where, which field, old -> new, rule."""
    rows = [
        [
            write.deal,
            f"{write.action} in {write.to}",
            write.field,
            f"{value_text(write.old)} -> {value_text(write.new)}" if write.field else "",
            f"{write.rule} (conflict)" if write.conflict else write.rule,
        ]
        for write in planned
    ]
    return tabulate(rows, headers=["deal", "write", "field", "old -> new", "rule"], disable_numparse=True)


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    tenant_id = args.tenant or settings.tenant_id
    try:
        result, planned = asyncio.run(sync_once(settings, tenant_id, dry_run=args.dry_run))
    except Exception as error:
        if not cannot_run(error):
            raise
        print(f"crm-pipeline sync: cannot sync tenant {tenant_id!r}: {error}", file=sys.stderr)
        return CANNOT_RUN
    summary = report(result, tenant_id, dry_run=args.dry_run, planned=planned)
    if args.json:
        print(json.dumps(summary))
        return 0
    if result.skipped:
        print(f"tenant {tenant_id}: another pass is running; skipped")
    else:
        counts = ", ".join(f"{summary[name]} {name}" for name in COUNTS)
        print(f"tenant {tenant_id}{' (dry run, nothing written)' if args.dry_run else ''}: {counts}")
    for failure in result.errors:
        print(f"  error: {failure.record_id} {failure.field or ''}: {failure.reason}")
    if planned:
        print(planned_table(planned))
    return 0
