"""The local HubSpot's state file: a restart keeps the portal as it was, ids going on from there."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hubspot import HubSpot
from hubspot.crm.deals import ApiException, PublicMergeInput, SimplePublicObjectInputForCreate

from crm_pipeline.demo import seed_demo_hubspot
from crm_pipeline.hubspot_sandbox import DEFAULT_TOKEN, HubSpotControl, HubSpotSandboxConfig, serve_hubspot_in_thread


def test_a_restart_keeps_records_history_merges_unique_values_and_the_id_sequence(tmp_path: Path) -> None:
    config = HubSpotSandboxConfig(state_file=tmp_path / "hubspot.json")
    with serve_hubspot_in_thread(config) as running, HubSpotControl(running.base_url) as control:
        asyncio.run(seed_demo_hubspot(running.base_url))  # custom properties, API and UI writes, a unique key
        sdk = HubSpot(access_token=DEFAULT_TOKEN, host=running.base_url)
        first, second, third = (record["id"] for record in control.all_records("deals")[3:])
        sdk.crm.deals.basic_api.merge(PublicMergeInput(primary_object_id=first, object_id_to_merge=second))
        sdk.crm.deals.basic_api.archive(third)
        before = control.all_records("deals")

    with serve_hubspot_in_thread(config) as running, HubSpotControl(running.base_url) as control:
        assert control.all_records("deals") == before
        sdk = HubSpot(access_token=DEFAULT_TOKEN, host=running.base_url)
        assert sdk.crm.deals.basic_api.get_by_id(second).id == before[-1]["id"]  # merged away: the survivor answers
        new = sdk.crm.deals.basic_api.create(
            SimplePublicObjectInputForCreate(properties={"dealname": "Next", "dealstage": "appointmentscheduled"})
        )
        assert int(new.id) == max(int(record["id"]) for record in before) + 1
        key = before[0]["properties"]["crm_pipeline_id"]
        with pytest.raises(ApiException) as clash:  # the unique key is still held
            sdk.crm.deals.basic_api.create(
                SimplePublicObjectInputForCreate(
                    properties={"dealname": "Copy", "dealstage": "appointmentscheduled", "crm_pipeline_id": key}
                )
            )
        assert clash.value.status == 409
        control.reset()

    with serve_hubspot_in_thread(config) as running, HubSpotControl(running.base_url) as control:
        assert control.all_records("deals") == []  # the reset was saved too
