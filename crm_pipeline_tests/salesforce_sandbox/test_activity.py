"""Who changed an opportunity and how it shows: field history per writer, a person's edits in the
UI, a Task logged on it (SystemModstamp and LastActivityDate move, LastModified* stay), automation
after the API's writes, system touches, and Amount held by line items."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from simple_salesforce.api import Salesforce

from crm_pipeline.salesforce_sandbox import AUTOMATED_PROCESS, HUMAN_USER, INTEGRATION_USER, SalesforceControl

from .helpers import MISSING_ID, opportunity, refused

HISTORY = "SELECT OpportunityId, Field, OldValue, NewValue, CreatedById, CreatedDate FROM OpportunityFieldHistory ORDER BY CreatedDate"
STAMPS = ("LastModifiedDate", "LastModifiedById", "SystemModstamp", "LastActivityDate")


def stamps(sf: Salesforce, record_id: str) -> tuple[Any, ...]:
    record = sf.Opportunity.get(record_id)
    return tuple(record[name] for name in STAMPS)


def history(sf: Salesforce) -> list[tuple[Any, ...]]:
    return [(r["Field"], r["OldValue"], r["NewValue"], r["CreatedById"]) for r in sf.query_all(HISTORY)["records"]]


def test_history_rows_name_the_writer_of_each_tracked_change(
    sf: Salesforce, salesforce_control: SalesforceControl
) -> None:
    record_id = sf.Opportunity.create(opportunity(Amount=100, NextStep="call"))["id"]
    salesforce_control.advance_clock(60)
    sf.Opportunity.update(record_id, {"StageName": "Needs Analysis", "NextStep": "email"})  # NextStep is not tracked
    salesforce_control.advance_clock(60)
    salesforce_control.person_edit("Opportunity", record_id, {"Amount": 250})
    assert history(sf) == [
        ("created", None, None, INTEGRATION_USER),
        ("StageName", "Prospecting", "Needs Analysis", INTEGRATION_USER),
        ("Probability", 10, 20, INTEGRATION_USER),
        ("Amount", 100, 250, HUMAN_USER),
    ]
    rows = sf.query_all(HISTORY)["records"]
    assert rows[-1]["attributes"]["url"].startswith("/services/data/v62.0/sobjects/OpportunityFieldHistory/017")
    assert "Id" not in rows[-1]  # named by the url, not selected
    assert rows[-1]["OpportunityId"] == record_id and rows[-1]["CreatedDate"] == "2026-03-02T09:32:00.000+0000"
    record = sf.Opportunity.get(record_id)
    assert (record["LastModifiedById"], record["LastModifiedDate"]) == (HUMAN_USER, "2026-03-02T09:32:00.000+0000")
    salesforce_control.setup(tracked_fields=["NextStep"])
    sf.Opportunity.update(record_id, {"NextStep": "meet", "Amount": 1})
    assert history(sf)[-1] == ("NextStep", "email", "meet", INTEGRATION_USER)


def test_a_person_edit_can_be_stamped_behind_a_readers_watermark(
    sf: Salesforce, salesforce_control: SalesforceControl
) -> None:
    record_id = sf.Opportunity.create(opportunity())["id"]
    salesforce_control.advance_clock(600)
    late = datetime(2026, 3, 2, 9, 35, tzinfo=UTC)  # committed now, stamped five minutes ago
    salesforce_control.person_edit("Opportunity", record_id, {"Name": "lagging"}, at=late)
    assert stamps(sf, record_id)[2] == "2026-03-02T09:35:00.000+0000"


def test_a_task_moves_system_modstamp_and_last_activity_but_not_last_modified(
    sf: Salesforce, salesforce_control: SalesforceControl
) -> None:
    record_id = sf.Opportunity.create(opportunity())["id"]
    before = stamps(sf, record_id)
    salesforce_control.advance_clock(120)
    task = {
        "WhatId": record_id,
        "Subject": "Agent: follow-up sent",
        "Status": "Completed",
        "ActivityDate": "2026-03-01",
    }
    task_id = sf.Task.create(task)["id"]
    assert task_id.startswith("00T")
    after = stamps(sf, record_id)
    assert after[:2] == before[:2]
    assert (after[2], after[3]) == ("2026-03-02T09:32:00.000+0000", "2026-03-01")
    tasks = sf.query(f"SELECT Id, Subject, Status, Priority, IsClosed, OwnerId FROM Task WHERE WhatId = '{record_id}'")
    assert [(t["Id"], t["Priority"], t["IsClosed"], t["OwnerId"]) for t in tasks["records"]] == [
        (task_id, "Normal", True, INTEGRATION_USER)
    ]
    salesforce_control.advance_clock(60)
    sf.Task.create({"WhatId": record_id, "Subject": "open"})  # not done: only the stamp moves
    assert stamps(sf, record_id)[2:] == ("2026-03-02T09:33:00.000+0000", "2026-03-01")
    _, errors = refused(lambda: sf.Task.create({"WhatId": MISSING_ID, "Subject": "x"}))
    assert errors[0]["errorCode"] == "INVALID_CROSS_REFERENCE_KEY"


def test_automation_after_an_api_write_touches_or_rewrites_as_another_user(
    sf: Salesforce, salesforce_control: SalesforceControl
) -> None:
    salesforce_control.setup(automations=[{"delay_seconds": 2}])
    record_id = sf.Opportunity.create(opportunity())["id"]
    record = sf.Opportunity.get(record_id)
    assert (record["LastModifiedDate"], record["SystemModstamp"]) == (
        "2026-03-02T09:30:00.000+0000",
        "2026-03-02T09:30:02.000+0000",
    )
    salesforce_control.setup(automations=[{"fields": {"NextStep": "Flow: qualify"}, "delay_seconds": 5}])
    sf.Opportunity.update(record_id, {"Name": "renamed"})
    record = sf.Opportunity.get(record_id)
    assert (record["NextStep"], record["LastModifiedById"]) == ("Flow: qualify", AUTOMATED_PROCESS)
    assert record["SystemModstamp"] == record["LastModifiedDate"] == "2026-03-02T09:30:05.000+0000"
    with pytest.raises(httpx.HTTPStatusError):  # an automation that could not write is refused whole
        salesforce_control.setup(automations=[{"fields": {"IsWon": True}}])
    assert salesforce_control.setup()["automations"][0]["fields"] == {"NextStep": "Flow: qualify"}


def test_a_system_touch_moves_only_system_modstamp(sf: Salesforce, salesforce_control: SalesforceControl) -> None:
    record_id = sf.Opportunity.create(opportunity())["id"]
    salesforce_control.advance_clock(30)
    salesforce_control.system_touch("Opportunity", record_id)
    record = sf.Opportunity.get(record_id)
    assert (record["LastModifiedDate"], record["SystemModstamp"]) == (
        "2026-03-02T09:30:00.000+0000",
        "2026-03-02T09:30:30.000+0000",
    )


def test_amount_writes_are_ignored_while_the_opportunity_has_products(
    sf: Salesforce, salesforce_control: SalesforceControl
) -> None:
    record_id = sf.Opportunity.create(opportunity(Amount=100))["id"]
    salesforce_control.set_products(record_id, 240)
    assert sf.Opportunity.update(record_id, {"Amount": 999, "Name": "with products"}) == 204
    record = sf.Opportunity.get(record_id)
    assert (record["Amount"], record["Name"], record["HasOpportunityLineItem"]) == (240, "with products", True)


def test_a_validation_rule_refuses_writes_with_the_admins_message(
    sf: Salesforce, salesforce_control: SalesforceControl
) -> None:
    salesforce_control.setup(
        validation_rules=[{"field": "Amount", "minimum": 0, "message": "Amount cannot be negative."}]
    )
    record_id = sf.Opportunity.create(opportunity(Amount=10))["id"]
    status, errors = refused(lambda: sf.Opportunity.update(record_id, {"Amount": -1}))
    assert (status, errors) == (
        400,
        [{"message": "Amount cannot be negative.", "errorCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION", "fields": []}],
    )
    salesforce_control.setup(validation_rules=[])
    assert sf.Opportunity.update(record_id, {"Amount": -1}) == 204


def test_opportunity_history_logs_stage_amount_probability_and_close_date(sf: Salesforce) -> None:
    record_id = sf.Opportunity.create(opportunity(Amount=100))["id"]
    sf.Opportunity.update(record_id, {"NextStep": "not logged"})
    sf.Opportunity.update(record_id, {"Amount": 150, "StageName": "Value Proposition"})
    soql = "SELECT OpportunityId, StageName, Amount, PrevAmount, Probability, ExpectedRevenue, ForecastCategory FROM OpportunityHistory"
    rows = [{k: v for k, v in r.items() if k != "attributes"} for r in sf.query(soql)["records"]]
    base = {"OpportunityId": record_id, "ForecastCategory": "Pipeline"}
    assert rows == [
        {
            **base,
            "StageName": "Prospecting",
            "Amount": 100,
            "PrevAmount": None,
            "Probability": 10,
            "ExpectedRevenue": 10,
        },
        {
            **base,
            "StageName": "Value Proposition",
            "Amount": 150,
            "PrevAmount": 100,
            "Probability": 50,
            "ExpectedRevenue": 75,
        },
    ]


def test_contacts_need_a_last_name_and_get_a_full_name(sf: Salesforce) -> None:
    contact_id = sf.Contact.create({"FirstName": "Ann", "LastName": "Lee", "Email": "ann@example.com"})["id"]
    assert contact_id.startswith("003")
    sf.Contact.update(contact_id, {"FirstName": "Anne"})
    assert sf.Contact.get(contact_id)["Name"] == "Anne Lee"
    _, errors = refused(lambda: sf.Contact.create({"FirstName": "Solo"}))
    assert errors[0]["errorCode"] == "REQUIRED_FIELD_MISSING" and errors[0]["fields"] == ["LastName"]
    task_id = sf.Task.create({"WhoId": contact_id, "Subject": "intro"})["id"]
    assert sf.query(f"SELECT Id FROM Task WHERE WhoId = '{contact_id}'")["records"][0]["Id"] == task_id
