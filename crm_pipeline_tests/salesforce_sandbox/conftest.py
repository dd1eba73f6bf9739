"""The local Salesforce over HTTP for these tests (the session's server and control are the
top-level conftest's): reset and its clock set before each test (``salesforce_sandbox``), and
``simple-salesforce`` on it (``sf``)."""

from __future__ import annotations

import pytest
from simple_salesforce.api import Salesforce

from crm_pipeline.salesforce_sandbox import (
    RunningSalesforce,
    SalesforceControl,
    sandbox_salesforce,
)
from crm_pipeline_tests.conftest import SALESFORCE_CLOCK

__all__ = ["SALESFORCE_CLOCK"]


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
