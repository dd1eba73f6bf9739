"""`crm-pipeline dev`: the main job on one machine.

Starts (or joins) the PostgreSQL deal store, migrates and seeds it with demo deals for three
tenants, serves the sandbox Notion with a demo Deals database (unless a real Notion is configured),
the local HubSpot (unless a HubSpot token is set) and the local Salesforce (unless a Salesforce
token is set), registers the demo tenants' connections when the tenant registry is empty, then
runs `dagster dev` on the crm_pipeline code location with Dagster's own storage in the same server
(`dagster_process` supervises it: its log file, a stop that cancels the runs in flight and waits
for every process). This process holds the embedded server and the local APIs: they stop once
nothing of Dagster is left running.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import URL

from crm_pipeline.dagster_process import supervise
from crm_pipeline.demo import (
    DEMO_NOTION_DATABASE_ID,
    HUBSPOT_DEMO_TENANT,
    SALESFORCE_DEMO_TENANT,
    agent_step,
    seed_demo,
    seed_demo_hubspot,
    seed_demo_notion,
    seed_demo_salesforce,
)
from crm_pipeline.hubspot_sandbox import HubSpotSandboxConfig, serve_hubspot_in_thread
from crm_pipeline.salesforce_sandbox import SalesforceControl, SalesforceSandboxConfig, serve_salesforce_in_thread
from crm_pipeline.sandbox import SandboxConfig, SandboxControl, serve_in_thread, ui_url
from crm_pipeline.settings import Settings, get_settings, project_file
from crm_pipeline.store import Database, DealRepository
from crm_pipeline.tenants import TOKEN_ENV_DEFAULTS, TenantConnection, TenantRegistry, settings_tenant
from crm_pipeline.tenants.tenants_file import read_tenants_file
from crm_pipeline.workers import BROKER_VARIABLE
from crm_pipeline.workers import instance_settings as celery_instance_settings

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("dev", help="run Dagster with the deal store and demo data")
    parser.add_argument("--host", default="127.0.0.1", help="Dagster UI host (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=3000, help="Dagster UI port (default 3000)")
    parser.add_argument("--no-seed", action="store_true", help="do not load the demo deals")
    parser.add_argument(
        "--agent-every",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="the demo agent adds or edits a deal this often (default 20; 0: never; never with --no-seed)",
    )
    parser.set_defaults(handler=run)


async def _prepare(settings: Settings, seed: bool) -> tuple[URL, URL]:
    """Open (migrating) the deal store, seed it (the HubSpot and Salesforce demo tenants too when
    their local APIs are used), and return the owner's and the application's URL for the Dagster
    processes."""
    async with await Database.open(settings) as database:
        if seed:
            repository = DealRepository(database)
            result = await seed_demo(repository, settings.tenant_id)
            logger.info("demo deals for tenant %r: %s", settings.tenant_id, result)
            for demo_tenant in _local_demo_tenants().values():
                result = await seed_demo(repository, demo_tenant, demo_tenant)
                logger.info("demo deals for tenant %r: %s", demo_tenant, result)
            if registered := await demo_tenants(database, settings):
                logger.info("the demo's tenants registered: %s", ", ".join(registered))
        return database.url, database.app_url


def _local(connector: str) -> bool:
    """Whether the connector's connections use its local API: no token of its is set."""
    return not os.environ.get(TOKEN_ENV_DEFAULTS[connector])


_DEMO_TENANTS = {"hubspot": HUBSPOT_DEMO_TENANT, "salesforce": SALESFORCE_DEMO_TENANT}
"""The demo tenant of each connector `crm-pipeline dev` serves a local API of."""


def _local_demo_tenants() -> dict[str, str]:
    """The demo tenants on a local API, by connector: never one of a connector whose token is set
    (the demo writes no deals into a real account)."""
    return {connector: tenant for connector, tenant in _DEMO_TENANTS.items() if _local(connector)}


async def demo_tenants(database: Database, settings: Settings) -> list[str]:
    """Register the demo's tenants when the tenant registry is empty: those of the tenants file an
    earlier demo wrote (``<data_dir>/tenants.toml``, with an operator's changes), else the
    settings' tenant (on Notion) with ``demo-hubspot`` on the local HubSpot and ``demo-salesforce``
    on the local Salesforce (each unless its connector's token is set: the demo writes no deals
    into a real account; with both set, none is registered and the settings' tenant alone is
    synced, as by default). Returns the tenants registered."""
    registry = TenantRegistry(database)
    earlier = settings.data_dir / "tenants.toml"
    if not await registry.is_empty():
        return []
    if earlier.is_file():
        connections = read_tenants_file(earlier)
    elif local := _local_demo_tenants():
        connections = [
            settings_tenant(settings),
            *(TenantConnection(tenant_id=tenant, connector=connector) for connector, tenant in local.items()),
        ]
    else:
        return []
    await registry.save_all(connections)
    return [connection.tenant_id for connection in connections]


def run(args: argparse.Namespace) -> int:
    # Our own lines at INFO (the demo agent's steps, the banner); the libraries' only from WARNING.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("crm_pipeline").setLevel(logging.INFO)
    settings = get_settings()
    database_url, app_database_url = asyncio.run(_prepare(settings, seed=not args.no_seed))
    dagster_home = settings.data_dir / "dagster"
    write_instance_config(dagster_home, celery=settings.celery_broker is not None)
    # dagster-postgres sends `NOTIFY run_events, %(id)s`, which only psycopg2's client-side
    # parameter interpolation accepts; psycopg 3 binds on the server and fails. Set here too:
    # this process opens the instance to cancel the runs in flight when it stops.
    os.environ[DAGSTER_PG_URL_VARIABLE] = database_url.set(drivername="postgresql+psycopg2").render_as_string(
        hide_password=False
    )
    environment = _dagster_environment(settings, dagster_home, database_url, app_database_url)
    command = _dagster_command(args)
    agent_every = 0.0 if args.no_seed else args.agent_every
    log_path = dagster_home / DAGSTER_LOG
    ui = f"http://{args.host}:{args.port}"
    with (
        _notion(settings) as notion_environment,
        _hubspot(settings, seed=not args.no_seed) as hubspot_environment,
        _salesforce(settings, seed=not args.no_seed) as salesforce_environment,
        _demo_agent(settings, agent_every),
    ):
        local_apis = notion_environment | hubspot_environment | salesforce_environment
        return supervise(
            command,
            dagster_home=dagster_home,
            env=environment | local_apis,
            log_path=log_path,
            graphql_url=f"{ui}/graphql",
            on_ready=lambda: logger.info(ready_banner(ui, local_apis, log_path)),
        )


def _dagster_environment(
    settings: Settings, dagster_home: Path, database_url: URL, app_database_url: URL
) -> dict[str, str]:
    """This process's environment with what Dagster's processes need of the settings, resolved here
    (environment or .env) and handed on, since those processes run elsewhere."""
    return os.environ | {
        "DAGSTER_HOME": str(dagster_home),
        "CRM_PIPELINE_DATABASE_URL": database_url.render_as_string(hide_password=False),
        "CRM_PIPELINE_APP_DATABASE_URL": app_database_url.render_as_string(hide_password=False),
        "CRM_PIPELINE_TENANT_ID": settings.tenant_id,
        **({} if settings.tenants_file is None else {"CRM_PIPELINE_TENANTS_FILE": str(settings.tenants_file)}),
        **(
            {}
            if settings.secret_keys is None
            else {"CRM_PIPELINE_SECRET_KEYS": settings.secret_keys.get_secret_value()}
        ),
        **({} if settings.celery_broker is None else {BROKER_VARIABLE: settings.celery_broker.get_secret_value()}),
    }


def _dagster_command(args: argparse.Namespace) -> list[str]:
    """`dagster dev` on the project's workspace, at the host and port asked for."""
    return [
        sys.executable,
        # `dagster dev` is superseded by `dg dev`, which needs a dg project; an installed package has none.
        "-W",
        "ignore:Function `dev_command` is superseded",
        "-m",
        "dagster",
        "dev",
        "-w",
        str(project_file("workspace.yaml")),
        "-h",
        args.host,
        "-p",
        str(args.port),
    ]


DAGSTER_LOG = "dagster.log"
"""Dagster's output (its services' lines and every run's step events), in the instance's directory:
the console keeps to `crm-pipeline dev`'s own lines. The previous start's is kept as `dagster.log.1`."""


def ready_banner(ui: str, local_apis: dict[str, str], log_path: Path) -> str:
    """What to open once everything is up (from the environment handed to Dagster: each local API
    served here sets its port there)."""
    lines = ["crm-pipeline dev is ready (Ctrl-C stops it):", f"  Dagster UI        {ui}"]
    if "CRM_PIPELINE_SANDBOX_PORT" in local_apis:
        sandbox = f"http://127.0.0.1:{local_apis['CRM_PIPELINE_SANDBOX_PORT']}"
        lines.append(f"  sandbox Notion    {ui_url(sandbox)}  (edit the deals as the sales team)")
    if "CRM_PIPELINE_HUBSPOT_SANDBOX_PORT" in local_apis:
        lines.append(f"  local HubSpot     http://127.0.0.1:{local_apis['CRM_PIPELINE_HUBSPOT_SANDBOX_PORT']}")
    if "CRM_PIPELINE_SALESFORCE_SANDBOX_PORT" in local_apis:
        lines.append(f"  local Salesforce  http://127.0.0.1:{local_apis['CRM_PIPELINE_SALESFORCE_SANDBOX_PORT']}")
    lines.append(f"  Dagster's log     {log_path}")
    return "\n".join(lines)


DAGSTER_PG_URL_VARIABLE = "CRM_PIPELINE_DAGSTER_PG_URL"
"""Where `crm-pipeline dev` hands Dagster its storage URL: in the environment, so a password never
lands in a file."""


def write_instance_config(dagster_home: Path, *, celery: bool = False) -> None:
    """Write `dagster_home/dagster.yaml`: the checkout's dagster.yaml (settings shared by every
    Dagster command) plus storage in the deal store's PostgreSQL and local files under
    `dagster_home`, and with ``celery`` the settings that send runs to Celery workers and resume
    the runs of a lost one (which the default launcher refuses, so they are not the checkout's).
    Dagster also writes logs into its working directory, which is `dagster_home`."""
    storage = {"base_dir": str(dagster_home / "storage")}
    settings: dict[str, Any] = yaml.safe_load(project_file("dagster.yaml").read_text()) | {
        "storage": {"postgres": {"postgres_url": {"env": DAGSTER_PG_URL_VARIABLE}}},
        "local_artifact_storage": {
            "module": "dagster.core.storage.root",
            "class": "LocalArtifactStorage",
            "config": storage,
        },
        "compute_logs": {
            "module": "dagster.core.storage.local_compute_log_manager",
            "class": "LocalComputeLogManager",
            "config": storage,
        },
    }
    if celery:
        for key, value in yaml.safe_load(celery_instance_settings()).items():
            settings[key] = {**settings.get(key, {}), **value}
    dagster_home.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").write_text(
        "# Written by `crm-pipeline dev`: the checkout's dagster.yaml (which says why each setting),\n"
        "# storage in the deal store's PostgreSQL and files here"
        + (", runs on Celery workers" if celery else "")
        + ".\n"
        + yaml.safe_dump(settings, sort_keys=False)
    )


@contextmanager
def _notion(settings: Settings) -> Iterator[dict[str, str]]:
    """The Notion the pipeline talks to, as environment for Dagster: the configured one, else the
    sandbox served from here, on the port where every Notion connection without a token (the
    settings' tenant, a tenant of the tenants file) looks for it.

    The sandbox keeps its workspace in the data directory, so edits made in it survive restarts;
    the demo Deals database is created on its first start, and again if the saved workspace lacks
    it (one saved by an older release, under other ids), as the team left it a day ago.
    """
    if settings.notion_token is not None:
        if not settings.notion_database_id:
            raise SystemExit(
                "CRM_PIPELINE_NOTION_TOKEN is set, so the sandbox is not used: set CRM_PIPELINE_NOTION_DATABASE_ID "
                "to the Notion database holding the deals (or unset the token to use the sandbox)"
            )
        configured = {
            "CRM_PIPELINE_NOTION_TOKEN": settings.notion_token.get_secret_value(),
            "CRM_PIPELINE_NOTION_DATABASE_ID": settings.notion_database_id,
            "CRM_PIPELINE_NOTION_DATA_SOURCE_ID": settings.notion_data_source_id,
            "CRM_PIPELINE_NOTION_BASE_URL": settings.notion_base_url,
        }
        yield {name: value for name, value in configured.items() if value is not None}
        return
    config = SandboxConfig(state_file=settings.data_dir / "sandbox-state.json")
    with serve_in_thread(config, port=settings.sandbox_port) as sandbox:
        if DEMO_NOTION_DATABASE_ID not in sandbox.sandbox.workspace.databases:
            with SandboxControl(sandbox.base_url) as control:
                seed_demo_notion(control)
        logger.info("sandbox Notion on %s (database %s)", sandbox.base_url, DEMO_NOTION_DATABASE_ID)
        # No token: every Notion connection without one finds the sandbox on this port (tenants.sandbox_notion).
        yield {"CRM_PIPELINE_SANDBOX_PORT": sandbox.base_url.rsplit(":", 1)[1]}


@contextmanager
def _hubspot(settings: Settings, *, seed: bool) -> Iterator[dict[str, str]]:
    """The local HubSpot, served from here unless a HubSpot token is set; as environment for Dagster.

    Like the sandbox Notion it keeps its portal in the data directory; a portal without deals is
    seeded with the ``demo-hubspot`` team's (``seed``), as the team left them a day ago.
    """
    if not _local("hubspot"):
        yield {}
        return
    config = HubSpotSandboxConfig(state_file=settings.data_dir / "hubspot-state.json")
    with serve_hubspot_in_thread(config, port=settings.hubspot_sandbox_port) as hubspot:
        if seed and not hubspot.sandbox.portal.records["deals"]:
            asyncio.run(seed_demo_hubspot(hubspot.base_url))
        logger.info("local HubSpot on %s", hubspot.base_url)
        yield {"CRM_PIPELINE_HUBSPOT_SANDBOX_PORT": hubspot.base_url.rsplit(":", 1)[1]}


@contextmanager
def _salesforce(settings: Settings, *, seed: bool) -> Iterator[dict[str, str]]:
    """The local Salesforce, served from here unless a Salesforce token is set; as environment for
    Dagster. It keeps its org in the data directory; an org without opportunities is set up for
    the sync and seeded with the ``demo-salesforce`` team's (``seed``), as the team left them a day ago.
    """
    if not _local("salesforce"):
        yield {}
        return
    config = SalesforceSandboxConfig(state_file=settings.data_dir / "salesforce-state.json")
    with serve_salesforce_in_thread(config, port=settings.salesforce_sandbox_port) as salesforce:
        if seed:
            with SalesforceControl(salesforce.base_url) as control:
                empty = not control.all_records("Opportunity")
            if empty:
                asyncio.run(seed_demo_salesforce(salesforce.base_url))
        logger.info("local Salesforce on %s", salesforce.base_url)
        yield {"CRM_PIPELINE_SALESFORCE_SANDBOX_PORT": salesforce.base_url.rsplit(":", 1)[1]}


@contextmanager
def _demo_agent(settings: Settings, every_seconds: float) -> Iterator[None]:
    """The agent keeps working in the demo tenant, in a thread of its own: a write every
    ``every_seconds`` (none when 0), so a person watching sees changes flow out to Notion."""
    if every_seconds <= 0:
        yield
        return
    stop = threading.Event()
    thread = threading.Thread(
        target=lambda: asyncio.run(_agent_loop(settings, stop, every_seconds)), name="demo-agent", daemon=True
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


async def _agent_loop(settings: Settings, stop: threading.Event, every_seconds: float) -> None:
    rng = random.Random()
    async with await Database.open(settings) as database:
        repository = DealRepository(database)
        while not await asyncio.to_thread(stop.wait, every_seconds):
            try:
                logger.info("demo agent: %s", await agent_step(repository, settings.tenant_id, rng))
            except Exception:  # the demo carries on; the next step may well succeed
                logger.exception("demo agent: the step failed")
