"""Fixtures shared by every test: a real PostgreSQL deal store, one local Notion, one local HubSpot and
one local Salesforce.

With CRM_PIPELINE_DATABASE_URL unset, the tests run on the embedded server in a database of their
own (created here, dropped afterwards). With it set (and CRM_PIPELINE_APP_DATABASE_URL, the
application's login), they use that database and leave it in place; every test registers its own
tenant, so runs never see each other's rows. `scripts/test` runs the suite on the embedded server,
then its deal-store tests (--store-only) on an external one.
"""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
import pytest_asyncio
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from crm_pipeline.demo import salesforce_custom_fields
from crm_pipeline.emulation.control_client import ControlClient
from crm_pipeline.hubspot_sandbox import HubSpotControl, HubSpotSandboxConfig, RunningHubSpot, serve_hubspot_in_thread
from crm_pipeline.salesforce_sandbox import (
    INTEGRATION_USERNAME,
    RunningSalesforce,
    SalesforceControl,
    SalesforceSandboxConfig,
    serve_salesforce_in_thread,
)
from crm_pipeline.sandbox import RunningSandbox, SandboxConfig, SandboxControl, serve_in_thread
from crm_pipeline.settings import Settings, get_settings
from crm_pipeline.store import Database, DealRepository

HUBSPOT_CLOCK = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
"""Where the local HubSpot's clock stands when ``hubspot_sandbox`` hands it out."""
SALESFORCE_CLOCK = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
"""Where the local Salesforce's clock stands when ``salesforce_org`` hands it out."""
SALESFORCE_USERNAME = INTEGRATION_USERNAME
"""The local Salesforce's integration user (its default token's)."""
SALESFORCE_CUSTOM_FIELDS = salesforce_custom_fields()
"""The custom Opportunity fields the Salesforce adapter maps, as an admin would create them."""


def clock_sleep(control: ControlClient) -> Callable[[float], Awaitable[None]]:
    """A retry policy's sleep that moves the local CRM's clock instead: retry waits never sleep."""

    async def advance(seconds: float) -> None:
        control.advance_clock(seconds)

    return advance


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--store-only",
        action="store_true",
        help="run only the tests that use the deal store (the store_settings fixture): the external-PostgreSQL pass",
    )


def pytest_configure(config: pytest.Config) -> None:
    """A pytest-xdist worker gets an embedded server of its own (a data directory per worker, for
    it and every process it starts): the change feed reads up to the server's oldest open
    transaction, in any database, so workers sharing one server would hold back each other's
    passes. The external pass runs in one process for the same reason (scripts/test)."""
    # Run as a background job of a non-interactive shell, pytest (and each xdist worker) starts
    # with SIGINT ignored, and Dagster gives SIGTERM SIGINT's handler whenever it captures
    # interrupts: ignored, which every process a run starts inherits (its compute-log `tail`s
    # then outlive SIGTERM, and each in-process run waits 30 s for each).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker and "CRM_PIPELINE_DATABASE_URL" not in os.environ:
        os.environ["CRM_PIPELINE_DATA_DIR"] = str(Settings().data_dir / "pytest-workers" / worker)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With --store-only, leave out the tests that never reach the deal store through the suite's
    fixtures (the local APIs, the pure merge, the models, what pins the embedded server): a
    second run of them on another PostgreSQL would prove nothing new.

    The tests marked ``long`` go first (in their own order, then the rest in theirs): with
    parallel workers (scripts/test runs pytest-xdist), a long test started last would leave the
    other workers idle while it runs."""
    if config.getoption("--store-only"):
        kept = [item for item in items if "store_settings" in getattr(item, "fixturenames", ())]
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


@pytest.fixture(scope="session")
def store_settings() -> Settings:
    return Settings(database_name=f"crm_pipeline_test_{os.getpid()}")


@pytest_asyncio.fixture(scope="session")
async def database(store_settings: Settings) -> AsyncIterator[Database]:
    database = await Database.open(store_settings)
    yield database
    await database.close()
    if store_settings.database_url is None:
        engine = create_engine(database.url.set(database="postgres"), poolclass=NullPool, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{store_settings.database_name}" WITH (FORCE)'))
        engine.dispose()


@pytest_asyncio.fixture
async def empty_store(store_settings: Settings, database: Database) -> AsyncIterator[Settings]:
    """Settings for a deal store of the test's own, its tenant registry empty (the shared one's
    holds other tests' tenants); on the embedded server only: an external one's owner creates no
    databases."""
    if store_settings.database_url is not None:
        pytest.skip("needs a database of its own, which only the embedded server gives")
    settings = store_settings.model_copy(update={"database_name": f"{store_settings.database_name}_{uuid4().hex[:8]}"})
    await (await Database.open(settings)).close()
    yield settings
    engine = create_engine(database.url.set(database="postgres"), poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{settings.database_name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture
def settings_of(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Settings], None]]:
    """Make the project settings (``get_settings``, as commands and resources read them) those of
    a store: its database name in the environment."""

    def use(settings: Settings) -> None:
        monkeypatch.setenv("CRM_PIPELINE_DATABASE_NAME", settings.database_name)
        get_settings.cache_clear()

    yield use
    get_settings.cache_clear()


@pytest.fixture
def repository(database: Database) -> DealRepository:
    return DealRepository(database)


@pytest_asyncio.fixture
async def tenant(repository: DealRepository) -> str:
    """A freshly registered tenant, unique to the test."""
    tenant_id = f"t-{uuid4().hex[:16]}"
    await repository.register_tenant(tenant_id, name="Test tenant")
    return tenant_id


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[RunningSandbox]:
    """The local Notion API over HTTP on a loopback port, unthrottled; tests reset it as they need."""
    with serve_in_thread(SandboxConfig(rate_limit=0)) as running:
        yield running


@pytest.fixture(scope="session")
def control(sandbox_server: RunningSandbox) -> Iterator[SandboxControl]:
    """The sandbox's control surface: reset, faults, clock, rate limit, statistics."""
    with SandboxControl(sandbox_server.base_url) as client:
        yield client


@pytest.fixture(scope="session")
def hubspot_server() -> Iterator[RunningHubSpot]:
    """The local HubSpot over HTTP on a loopback port, unthrottled; tests reset it as they need."""
    config = HubSpotSandboxConfig(ten_secondly_limit=0, daily_limit=0, search_per_second=0)
    with serve_hubspot_in_thread(config) as running:
        yield running


@pytest.fixture(scope="session")
def hubspot_control(hubspot_server: RunningHubSpot) -> Iterator[HubSpotControl]:
    """The local HubSpot's control surface: reset, limits, faults, clock, UI edits and restores."""
    with HubSpotControl(hubspot_server.base_url) as client:
        yield client


@pytest.fixture
def hubspot_sandbox(hubspot_server: RunningHubSpot, hubspot_control: HubSpotControl) -> RunningHubSpot:
    """The local HubSpot reset, its clock standing at HUBSPOT_CLOCK (tests advance it)."""
    hubspot_control.reset()
    hubspot_control.set_clock(HUBSPOT_CLOCK)
    return hubspot_server


@pytest.fixture(scope="session")
def salesforce_server() -> Iterator[RunningSalesforce]:
    """The local Salesforce over HTTP on a loopback port, with an allowance of a million requests a day."""
    with serve_salesforce_in_thread(SalesforceSandboxConfig(daily_api_max=1_000_000)) as running:
        yield running


@pytest.fixture(scope="session")
def salesforce_control(salesforce_server: RunningSalesforce) -> Iterator[SalesforceControl]:
    """The local Salesforce's control surface: reset, setup, tokens, faults, clock, a person's edits."""
    with SalesforceControl(salesforce_server.base_url) as client:
        yield client


@pytest.fixture
def salesforce_org(salesforce_server: RunningSalesforce, salesforce_control: SalesforceControl) -> RunningSalesforce:
    """The local Salesforce reset, set up with the adapter's custom fields, its clock standing at
    SALESFORCE_CLOCK (tests advance it)."""
    salesforce_control.reset()
    salesforce_control.setup(custom_fields=SALESFORCE_CUSTOM_FIELDS)
    salesforce_control.set_clock(SALESFORCE_CLOCK)
    return salesforce_server


@pytest.fixture
def served_by_command(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What an emulator's command serves (``app``) and on which ``port``, recorded instead of served."""
    served: dict[str, Any] = {}
    monkeypatch.setattr(
        "crm_pipeline.emulation.server.serve_forever",
        lambda app, sock: served.update(app=app, port=sock.getsockname()[1]),
    )
    return served


async def requests_reserved(database: Database) -> int:
    """Requests reserved in the deal store's shared request budgets today, over every key (read as
    the owner: the application role may only reserve)."""
    async with database.owner_engine.connect() as connection:
        return int(await connection.scalar(text("SELECT coalesce(sum(used_today), 0) FROM crm.request_budgets")))
