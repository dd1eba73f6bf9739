"""The session's local HubSpot (from the top-level conftest), reset and its clock frozen before each
test, and the official client pointed at it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hubspot import HubSpot

from crm_pipeline.hubspot_sandbox import DEFAULT_TOKEN, HubSpotControl, RunningHubSpot

CLOCK = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


@pytest.fixture
def hubspot_sandbox(hubspot_server: RunningHubSpot, hubspot_control: HubSpotControl) -> RunningHubSpot:
    hubspot_control.reset()
    hubspot_control.set_clock(CLOCK)
    return hubspot_server


@pytest.fixture
def hubspot(hubspot_sandbox: RunningHubSpot) -> HubSpot:
    return HubSpot(access_token=DEFAULT_TOKEN, host=hubspot_sandbox.base_url)
