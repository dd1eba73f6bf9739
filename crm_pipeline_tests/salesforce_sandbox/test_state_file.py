"""The local Salesforce's state file: a restart keeps the org as it was (records, history, the
Recycle Bin, the setup, the key index and the id serials)."""

from __future__ import annotations

from pathlib import Path

from simple_salesforce.exceptions import SalesforceMalformedRequest

from crm_pipeline.salesforce_sandbox import (
    SalesforceControl,
    SalesforceSandboxConfig,
    sandbox_salesforce,
    serve_salesforce_in_thread,
)

from .helpers import opportunity, refused


def test_a_restart_keeps_the_org_and_a_reset_is_saved_too(tmp_path: Path) -> None:
    config = SalesforceSandboxConfig(state_file=tmp_path / "salesforce.json")
    with serve_salesforce_in_thread(config) as running, SalesforceControl(running.base_url) as control:
        sf = sandbox_salesforce(running.base_url)
        control.setup(custom_fields=[{"name": "Score__c", "type": "double"}], tracked_fields=["Amount"])
        kept = sf.Opportunity.create(opportunity(Amount=12.5, Sync_Key__c="k-1", Score__c=0.5))["id"]
        gone = sf.Opportunity.create(opportunity())["id"]
        sf.Opportunity.delete(gone)
        sf.Task.create({"WhatId": kept, "Subject": "called", "Status": "Completed", "ActivityDate": "2026-02-01"})
        control.person_edit("Opportunity", kept, {"Amount": 20})
        before = {name: control.all_records(name) for name in ("Opportunity", "Task", "OpportunityFieldHistory")}

    with serve_salesforce_in_thread(config) as running, SalesforceControl(running.base_url) as control:
        sf = sandbox_salesforce(running.base_url)
        assert {name: control.all_records(name) for name in before} == before
        assert sf.Opportunity.get_by_custom_id("Sync_Key__c", "k-1")["Score__c"] == 0.5
        _, errors = refused(lambda: sf.Opportunity.create(opportunity(Sync_Key__c="k-1")), SalesforceMalformedRequest)
        assert errors[0]["errorCode"] == "DUPLICATE_VALUE"
        assert sf.Opportunity.create(opportunity())["id"][:15] > gone[:15]  # ids go on
        assert sf.query_all("SELECT Id FROM Opportunity WHERE IsDeleted = true", include_deleted=True)["totalSize"] == 1
        control.reset()

    with serve_salesforce_in_thread(config) as running, SalesforceControl(running.base_url) as control:
        assert control.all_records("Opportunity") == []
