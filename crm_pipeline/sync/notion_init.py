"""`crm-pipeline notion-init`: create the Notion database the sync writes into, or check one.

``--parent-page <page id>`` creates a "Deals" database under that page (the integration must be
shared with it) whose data source has every property the sync maps, the Sync Key, and a unique_id
"Deal ID" (by which reads page past a minute holding more rows than one query returns), then
prints the settings and the tenants.toml entry that point at it. ``--verify`` checks an existing
database the way the sync binds it and names each property that is missing or of another type.
The token and base URL are the ``CRM_PIPELINE_NOTION_*`` settings (the sandbox without a token).
Exit 0 when the database is usable; 2, with the reason, when it is not or cannot be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import httpx
from pydantic import SecretStr

from crm_pipeline.crm.errors import PropertySchemaError
from crm_pipeline.crm.notion import NotionAdapterError, RateLimit, RetryPolicy
from crm_pipeline.crm.notion.api import NotionAPI
from crm_pipeline.crm.notion.client import NotionCaller, sdk_client
from crm_pipeline.crm.notion.properties import SYNCED_PROPERTY_MAP, notion_properties_schema
from crm_pipeline.crm.retrying import token_digest
from crm_pipeline.settings import Settings, get_settings
from crm_pipeline.sync.cli import CANNOT_RUN, notion_adapter, notion_connection
from crm_pipeline.tenants import TenantConnection, tenant_toml

DEALS_TITLE = "Deals"
DEAL_ID = "Deal ID"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "notion-init", help="create the Notion deals database the sync maps, or verify an existing one"
    )
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--parent-page", help="create the database under this Notion page (id)")
    action.add_argument("--verify", action="store_true", help="check an existing database against the mapping")
    parser.add_argument("--database-id", help="with --verify: the database (default: CRM_PIPELINE_NOTION_DATABASE_ID)")
    parser.add_argument("--data-source-id", help="with --verify: its data source, when it has several")
    parser.add_argument("--tenant", help="the tenant id for the printed tenants.toml entry (default: the settings')")
    parser.set_defaults(handler=run)


def deals_properties() -> dict[str, Any]:
    """The initial data source's schema: the synced map, the Sync Key and the unique_id column."""
    return {**notion_properties_schema(SYNCED_PROPERTY_MAP), DEAL_ID: {"unique_id": {"prefix": None}}}


async def create_deals_database(settings: Settings, parent_page_id: str) -> tuple[str, str]:
    """Create the Deals database under a page; its database and data source ids."""
    token, base_url = notion_connection(settings)
    secret = token.get_secret_value() if isinstance(token, SecretStr) else token
    async with sdk_client(secret, base_url=base_url, timeout_s=30.0) as client:
        api = NotionAPI(client, NotionCaller(token_digest(secret), RetryPolicy(), RateLimit()))
        database = await api.create_database(
            {
                "parent": {"type": "page_id", "page_id": parent_page_id},
                "title": [{"type": "text", "text": {"content": DEALS_TITLE}}],
                "initial_data_source": {"properties": deals_properties()},
            }
        )
    return database["id"], database["data_sources"][0]["id"]


async def verify_database(
    settings: Settings, database_id: str | None, data_source_id: str | None
) -> tuple[str, str, list[PropertySchemaError]]:
    """The database and data source checked, and what keeps the sync from using them."""
    adapter = notion_adapter(settings, settings.tenant_id, database_id=database_id, data_source_id=data_source_id)
    try:
        problems = await adapter.schema_problems()
    finally:
        await adapter.aclose()
    assert adapter.data_source_id is not None  # schema_problems resolved it
    return adapter.database_id, adapter.data_source_id, problems


def print_settings(settings: Settings, tenant_id: str, database_id: str, data_source_id: str) -> None:
    print("Settings to use:")
    print(f"  CRM_PIPELINE_NOTION_DATABASE_ID={database_id}")
    print(f"  CRM_PIPELINE_NOTION_DATA_SOURCE_ID={data_source_id}")
    tenant = TenantConnection(
        tenant_id=tenant_id,
        database_id=database_id,
        data_source_id=data_source_id,
        base_url=settings.notion_base_url,
    )
    print("or, as a tenant in tenants.toml:")
    print(tenant_toml(tenant))


def _unreachable(error: BaseException) -> bool:
    """Errors that mean the database could not be created or read at all."""
    from notion_client import APIResponseError

    return isinstance(error, NotionAdapterError | APIResponseError | httpx.HTTPError)


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    tenant_id = args.tenant or settings.tenant_id
    try:
        if args.parent_page is not None:
            database_id, data_source_id = asyncio.run(create_deals_database(settings, args.parent_page))
            print(f"Created the {DEALS_TITLE} database {database_id} (data source {data_source_id}).")
            problems: list[PropertySchemaError] = []
        else:
            database_id, data_source_id, problems = asyncio.run(
                verify_database(settings, args.database_id, args.data_source_id)
            )
    except Exception as error:
        if not _unreachable(error):
            raise
        print(f"crm-pipeline notion-init: {error}", file=sys.stderr)
        return CANNOT_RUN
    if problems:
        print(f"Database {database_id} (data source {data_source_id}) does not fit the mapping:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return CANNOT_RUN
    if args.verify:
        print(f"Database {database_id} (data source {data_source_id}) has every mapped property.")
    print_settings(settings, tenant_id, database_id, data_source_id)
    return 0
