"""The official client pointed at the local HubSpot, reset and its clock frozen before each test
(``hubspot_sandbox``, from the top-level conftest)."""

from __future__ import annotations

import pytest
from hubspot import HubSpot

from crm_pipeline.hubspot_sandbox import DEFAULT_TOKEN, RunningHubSpot


@pytest.fixture
def hubspot(hubspot_sandbox: RunningHubSpot) -> HubSpot:
    return HubSpot(access_token=DEFAULT_TOKEN, host=hubspot_sandbox.base_url)
