"""The local Salesforce over HTTP for these tests: one server for the session
(``salesforce_server``, ``salesforce_control``: fit to move to the top-level conftest), reset and
its clock set before each test (``salesforce_sandbox``), and ``simple-salesforce`` on it (``sf``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from simple_salesforce.api import Salesforce

from crm_pipeline.salesforce_sandbox import (
    RunningSalesforce,
    SalesforceControl,
    SalesforceSandboxConfig,
    sandbox_salesforce,
    serve_salesforce_in_thread,
)

SALESFORCE_CLOCK = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
"""Where the local Salesforce's clock stands when ``salesforce_sandbox`` hands it out."""
DAILY_ALLOWANCE = 1_000_000  # the most the shared limiter counts; a full sandbox has 5,000,000


@pytest.fixture(scope="session")
def salesforce_server() -> Iterator[RunningSalesforce]:
    """The local Salesforce on a loopback port, with an allowance no test exhausts by accident."""
    with serve_salesforce_in_thread(SalesforceSandboxConfig(daily_api_max=DAILY_ALLOWANCE)) as running:
        yield running


@pytest.fixture(scope="session")
def salesforce_control(salesforce_server: RunningSalesforce) -> Iterator[SalesforceControl]:
    """Its control surface: reset, setup, tokens, faults, clock, a person's edits."""
    with SalesforceControl(salesforce_server.base_url) as client:
        yield client


@pytest.fixture
def salesforce_sandbox(
    salesforce_server: RunningSalesforce, salesforce_control: SalesforceControl
) -> RunningSalesforce:
    """The local Salesforce reset, its clock standing at SALESFORCE_CLOCK (tests advance it)."""
    salesforce_control.reset()
    salesforce_control.set_clock(SALESFORCE_CLOCK)
    return salesforce_server


@pytest.fixture
def sf(salesforce_sandbox: RunningSalesforce) -> Salesforce:
    """``simple_salesforce.Salesforce`` in direct mode on the reset sandbox, API 62.0."""
    return sandbox_salesforce(salesforce_sandbox.base_url)
