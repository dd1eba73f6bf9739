"""`crm-pipeline tenants`: list the configured tenant connections, or add one.

Adding registers the tenant in the deal store, writes its connection to the tenants file and,
when DAGSTER_HOME names an instance, adds its ``tenant`` partition there at once (the partitions
sensor would within half a minute).
"""

from __future__ import annotations

import argparse
import asyncio
import os

from pydantic import ValidationError

from crm_pipeline.defs.dagster_home import dagster_home, open_instance
from crm_pipeline.defs.partitions import TENANT_PARTITIONS
from crm_pipeline.defs.tenants import TOKEN_ENV_DEFAULTS, TenantConnection, add_tenant, load_tenants, tenants_file
from crm_pipeline.settings import Settings, get_settings
from crm_pipeline.store import Database, DealRepository


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("tenants", help="list or add the tenants the Dagster schedule syncs")
    commands = parser.add_subparsers(dest="tenants_command", required=True)
    commands.add_parser("list", help="the configured tenant connections").set_defaults(handler=run_list)
    add = commands.add_parser("add", help="add (or replace) a tenant connection")
    add.add_argument("tenant_id", help="lowercase slug, e.g. acme")
    add.add_argument("--name", help="display name in the deal store (default: the id)")
    add.add_argument(
        "--connector", choices=sorted(TOKEN_ENV_DEFAULTS), default="notion", help="its CRM (default notion)"
    )
    add.add_argument("--database-id", help="Notion: the database of its deals (default: the sandbox's Deals)")
    add.add_argument("--data-source-id", help="Notion: which data source of the database, when it has several")
    add.add_argument("--pipeline", help="HubSpot: the deal pipeline's id (default: the account's default pipeline)")
    defaults = ", ".join(f"{name}: {env}" for name, env in sorted(TOKEN_ENV_DEFAULTS.items()))
    add.add_argument(
        "--token-env",
        help=f"the environment variable holding its token (default {defaults}); never the token",
    )
    add.add_argument(
        "--base-url",
        help="the API's base URL (default: the connector's public API; without a token: the sandbox Notion or the local HubSpot)",
    )
    add.add_argument("--inactive", action="store_true", help="configure it but leave it out of the schedule")
    add.set_defaults(handler=run_add)


def run_list(args: argparse.Namespace) -> int:
    settings = get_settings()
    print(f"# {tenants_file(settings)}")
    for tenant in load_tenants(settings):
        state = "active" if tenant.active else "inactive"
        print(f"{tenant.tenant_id}\t{state}\t{tenant.connector}\t{_where(tenant)}\t${tenant.token_env}")
    return 0


def _where(tenant: TenantConnection) -> str:
    """Where the tenant's deals are, in its connector's terms."""
    if tenant.connector == "hubspot":
        return f"pipeline {tenant.pipeline or 'default'}"
    return tenant.database_id or "(sandbox)"


def run_add(args: argparse.Namespace) -> int:
    settings = get_settings()
    try:
        tenant = TenantConnection(
            tenant_id=args.tenant_id,
            connector=args.connector,
            database_id=args.database_id,
            data_source_id=args.data_source_id,
            pipeline=args.pipeline,
            token_env=args.token_env,
            base_url=args.base_url,
            active=not args.inactive,
        )
    except ValidationError as error:
        print(f"crm-pipeline tenants add: {error}")
        return 2
    asyncio.run(_register(settings, tenant.tenant_id, args.name))
    path = add_tenant(settings, tenant)
    print(f"tenant {tenant.tenant_id} written to {path}")
    if os.environ.get("DAGSTER_HOME"):
        with open_instance(dagster_home(settings)) as instance:
            instance.add_dynamic_partitions(TENANT_PARTITIONS, [tenant.tenant_id])
        print(f"partition {tenant.tenant_id} added to the Dagster instance in $DAGSTER_HOME")
    return 0


async def _register(settings: Settings, tenant_id: str, name: str | None) -> None:
    async with await Database.open(settings) as database:
        await DealRepository(database).register_tenant(tenant_id, name=name)
