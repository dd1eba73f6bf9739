"""Single-record sObject calls through ``simple-salesforce``: ids, the record's JSON, audit fields,
required fields, the restricted stage picklist and its cascade, read-only and unknown fields, and
upsert by Sync_Key__c with its 201/200/300/404 statuses."""

from __future__ import annotations

from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import (
    SalesforceMalformedRequest,
    SalesforceMoreThanOneRecord,
    SalesforceResourceNotFound,
)

from crm_pipeline.salesforce_sandbox import INTEGRATION_USER, SalesforceControl
from crm_pipeline.salesforce_sandbox.ids import checksum, normal_id

from .helpers import MISSING_ID, opportunity, refused


def test_ids_are_eighteen_characters_with_the_case_checksum_and_fifteen_are_accepted(sf: Salesforce) -> None:
    created = sf.Opportunity.create(opportunity())
    record_id = created["id"]
    assert created == {"id": record_id, "success": True, "errors": []}
    assert len(record_id) == 18 and record_id.startswith("006") and record_id[15:] == checksum(record_id[:15])
    assert sf.Opportunity.get(record_id[:15])["Id"] == record_id
    assert normal_id(record_id.lower()) == record_id  # the suffix restores the case
    assert INTEGRATION_USER.startswith("005") and len(INTEGRATION_USER) == 18


def test_a_record_reads_back_with_attributes_nulls_and_second_grained_audit_fields(sf: Salesforce) -> None:
    record_id = sf.Opportunity.create(opportunity(Amount=1500.5, Description="first"))["id"]
    record = sf.Opportunity.get(record_id)
    assert record["attributes"] == {
        "type": "Opportunity",
        "url": f"/services/data/v62.0/sobjects/Opportunity/{record_id}",
    }
    assert (record["Amount"], record["CloseDate"], record["NextStep"]) == (1500.5, "2026-03-31", None)
    assert record["CreatedDate"] == record["SystemModstamp"] == "2026-03-02T09:30:00.000+0000"
    assert record["CreatedById"] == record["LastModifiedById"] == record["OwnerId"] == INTEGRATION_USER
    assert record["IsDeleted"] is False and record["Sync_Key__c"] is None
    assert sf.Opportunity.get(record_id, params={"fields": "Name,amount"}) == {
        "attributes": record["attributes"],
        "Name": "Acme renewal",
        "Amount": 1500.5,
    }


def test_update_is_partial_and_null_clears_a_nillable_field(
    sf: Salesforce, salesforce_control: SalesforceControl
) -> None:
    record_id = sf.Opportunity.create(opportunity(NextStep="call", Amount=10))["id"]
    salesforce_control.advance_clock(61.7)
    assert sf.Opportunity.update(record_id, {"NextStep": None}) == 204
    record = sf.Opportunity.get(record_id)
    assert (record["NextStep"], record["Amount"], record["Name"]) == (None, 10.0, "Acme renewal")
    assert record["LastModifiedDate"] == record["SystemModstamp"] == "2026-03-02T09:31:01.000+0000"
    assert record["CreatedDate"] == "2026-03-02T09:30:00.000+0000"


def test_required_fields_are_named_on_create_and_cannot_be_cleared(sf: Salesforce) -> None:
    status, errors = refused(lambda: sf.Opportunity.create({"Name": "No stage"}), SalesforceMalformedRequest)
    assert status == 400
    assert errors == [
        {
            "message": "Required fields are missing: [StageName, CloseDate]",
            "errorCode": "REQUIRED_FIELD_MISSING",
            "fields": ["StageName", "CloseDate"],
        }
    ]
    record_id = sf.Opportunity.create(opportunity())["id"]
    _, errors = refused(lambda: sf.Opportunity.update(record_id, {"CloseDate": None}))
    assert errors[0]["errorCode"] == "REQUIRED_FIELD_MISSING" and errors[0]["fields"] == ["CloseDate"]


def test_unknown_read_only_and_badly_typed_fields_are_refused(sf: Salesforce) -> None:
    record_id = sf.Opportunity.create(opportunity())["id"]
    cases = [
        ({"No_Such__c": "x"}, "INVALID_FIELD", ["No_Such__c"]),
        (
            {"IsWon": True, "SystemModstamp": "2026-01-01T00:00:00Z"},
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            ["IsWon", "SystemModstamp"],
        ),
        ({"StageName": "Closed Sideways"}, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", ["StageName"]),
        ({"Probability": 150}, "NUMBER_OUTSIDE_VALID_RANGE", ["Probability"]),
        ({"Name": "x" * 121}, "STRING_TOO_LONG", ["Name"]),
        ({"OwnerId": "not-an-id"}, "MALFORMED_ID", ["OwnerId"]),
    ]
    for body, code, fields in cases:
        status, errors = refused(lambda body=body: sf.Opportunity.update(record_id, body), SalesforceMalformedRequest)
        assert (status, errors[0]["errorCode"], errors[0]["fields"]) == (400, code, fields), body
    _, errors = refused(lambda: sf.Opportunity.update(record_id, {"CloseDate": "31/03/2026"}))
    assert errors[0]["errorCode"] == "JSON_PARSER_ERROR"
    assert sf.Opportunity.get(record_id)["StageName"] == "Prospecting"  # nothing of a refused write stays


def test_the_stage_sets_probability_forecast_closed_and_won_unless_the_request_sets_them(sf: Salesforce) -> None:
    record_id = sf.Opportunity.create(opportunity(StageName="Negotiation/Review", Amount=1000))["id"]
    record = sf.Opportunity.get(record_id)
    assert (record["Probability"], record["ForecastCategoryName"], record["IsClosed"]) == (90, "Pipeline", False)
    assert record["ExpectedRevenue"] == 900
    sf.Opportunity.update(record_id, {"Probability": 35})  # a person's override, kept...
    assert sf.Opportunity.get(record_id)["Probability"] == 35
    sf.Opportunity.update(record_id, {"Name": "renamed", "StageName": "Negotiation/Review"})  # the same stage
    assert sf.Opportunity.get(record_id)["Probability"] == 35
    sf.Opportunity.update(record_id, {"StageName": "Proposal/Price Quote"})  # ...until the stage moves
    assert sf.Opportunity.get(record_id)["Probability"] == 75
    sf.Opportunity.update(record_id, {"StageName": "Closed Won", "Probability": 80.4, "ForecastCategoryName": "Commit"})
    record = sf.Opportunity.get(record_id)
    assert (record["Probability"], record["ForecastCategoryName"]) == (80, "Commit")  # whole percent
    assert (record["IsClosed"], record["IsWon"]) == (True, True)
    sf.Opportunity.update(record_id, {"StageName": "Closed Lost"})
    record = sf.Opportunity.get(record_id)
    assert (record["Probability"], record["ForecastCategoryName"], record["IsWon"]) == (0, "Omitted", False)


def test_the_stage_table_is_the_orgs_own(sf: Salesforce, salesforce_control: SalesforceControl) -> None:
    stages = [
        {"api_name": "Discovery", "probability": 15, "forecast_category": "Pipeline"},
        {"api_name": "Signed", "probability": 100, "forecast_category": "Closed", "closed": True, "won": True},
    ]
    salesforce_control.setup(stages=stages)
    rows = sf.query("SELECT ApiName, DefaultProbability, IsWon FROM OpportunityStage ORDER BY SortOrder")["records"]
    assert [(r["ApiName"], r["DefaultProbability"], r["IsWon"]) for r in rows] == [
        ("Discovery", 15, False),
        ("Signed", 100, True),
    ]
    described = {f["name"]: f for f in sf.Opportunity.describe()["fields"]}
    assert [v["value"] for v in described["StageName"]["picklistValues"]] == ["Discovery", "Signed"]
    assert described["StageName"]["restrictedPicklist"] is True
    status, _ = refused(lambda: sf.Opportunity.create(opportunity()))  # Prospecting is gone
    assert status == 400
    record_id = sf.Opportunity.create(opportunity(StageName="Signed"))["id"]
    assert sf.Opportunity.get(record_id)["IsWon"] is True


def test_describe_tells_types_flags_the_external_id_and_custom_fields(
    sf: Salesforce, salesforce_control: SalesforceControl
) -> None:
    salesforce_control.setup(
        custom_fields=[
            {"name": "Agent_Notes__c", "type": "textarea"},
            {"name": "Health__c", "type": "picklist", "picklist": ["Green", "Red"]},
        ]
    )
    fields = {f["name"]: f for f in sf.Opportunity.describe()["fields"]}
    key = fields["Sync_Key__c"]
    assert (key["type"], key["externalId"], key["unique"], key["custom"]) == ("string", True, True, True)
    assert (fields["IsWon"]["createable"], fields["IsWon"]["updateable"]) == (False, False)
    assert (fields["Name"]["nillable"], fields["Amount"]["type"], fields["Probability"]["type"]) == (
        False,
        "currency",
        "percent",
    )
    assert [v["value"] for v in fields["Health__c"]["picklistValues"]] == ["Green", "Red"]
    assert "Next_Call_Date__c" not in fields
    record_id = sf.Opportunity.create(opportunity(Health__c="Amber", Agent_Notes__c="x"))["id"]  # unrestricted
    assert sf.Opportunity.get(record_id)["Health__c"] == "Amber"


def test_hidden_fields_are_unknown_to_the_integration_user(
    sf: Salesforce, salesforce_control: SalesforceControl
) -> None:
    salesforce_control.setup(hidden_fields=["Type"])
    assert "Type" not in {f["name"] for f in sf.Opportunity.describe()["fields"]}
    _, errors = refused(lambda: sf.query("SELECT Id, Type FROM Opportunity"), SalesforceMalformedRequest)
    assert errors[0]["errorCode"] == "INVALID_FIELD"
    _, errors = refused(lambda: sf.Opportunity.create(opportunity(Type="New Customer")))
    assert errors[0]["errorCode"] == "INVALID_FIELD"


def test_delete_then_read_is_not_found_and_a_write_is_entity_is_deleted(sf: Salesforce) -> None:
    record_id = sf.Opportunity.create(opportunity())["id"]
    assert sf.Opportunity.delete(record_id) == 204
    status, errors = refused(lambda: sf.Opportunity.get(record_id), SalesforceResourceNotFound)
    assert (status, errors[0]["errorCode"]) == (404, "NOT_FOUND")
    for call in (lambda: sf.Opportunity.update(record_id, {"Name": "x"}), lambda: sf.Opportunity.delete(record_id)):
        status, errors = refused(call, SalesforceResourceNotFound)
        assert (status, errors[0]["errorCode"]) == (404, "ENTITY_IS_DELETED")
    status, _ = refused(lambda: sf.Opportunity.get(MISSING_ID), SalesforceResourceNotFound)


def test_upsert_by_sync_key_creates_201_then_updates_200(sf: Salesforce) -> None:
    assert sf.Opportunity.upsert("Sync_Key__c/k-1", opportunity()) == 201
    assert sf.Opportunity.upsert("Sync_Key__c/K-1", {"Name": "renamed"}) == 200  # keys compare case-blind
    response = sf.Opportunity.upsert("Sync_Key__c/k-1", {"Amount": 5}, raw_response=True)
    body = response.json()
    assert (response.status_code, body["created"], body["success"], body["errors"]) == (200, False, True, [])
    record = sf.Opportunity.get_by_custom_id("Sync_Key__c", "k-1")
    assert (record["Id"], record["Name"], record["Amount"]) == (body["id"], "renamed", 5)
    response = sf.Opportunity.upsert("Sync_Key__c/k-2", opportunity(), raw_response=True)
    assert response.status_code == 201 and response.json()["created"] is True


def test_upsert_refuses_the_key_or_id_in_the_body_and_unknown_key_fields(sf: Salesforce) -> None:
    for body in ({**opportunity(), "Sync_Key__c": "k-1"}, {**opportunity(), "Id": "006Sb0000000001IAA"}):
        status, errors = refused(
            lambda body=body: sf.Opportunity.upsert("Sync_Key__c/k-1", body), SalesforceMalformedRequest
        )
        assert status == 400 and errors[0]["errorCode"] == "INVALID_FIELD"
    for field in ("Name", "No_Such__c"):
        status, errors = refused(
            lambda field=field: sf.Opportunity.upsert(f"{field}/k-1", opportunity()), SalesforceResourceNotFound
        )
        assert (status, errors[0]["errorCode"]) == (404, "NOT_FOUND")
    status, _ = refused(lambda: sf.Opportunity.get_by_custom_id("Sync_Key__c", "nobody"), SalesforceResourceNotFound)
    assert status == 404


def test_a_unique_key_refuses_duplicates_and_a_non_unique_one_gives_300(
    sf: Salesforce, salesforce_control: SalesforceControl
) -> None:
    first = sf.Opportunity.create(opportunity(Sync_Key__c="k-1"))["id"]
    status, errors = refused(lambda: sf.Opportunity.create(opportunity(Sync_Key__c="K-1")), SalesforceMalformedRequest)
    assert (status, errors[0]["errorCode"]) == (400, "DUPLICATE_VALUE") and first in errors[0]["message"]
    salesforce_control.setup(sync_key_unique=False)
    second = sf.Opportunity.create(opportunity(Sync_Key__c="k-1"))["id"]
    status, urls = refused(lambda: sf.Opportunity.upsert("Sync_Key__c/k-1", {"Name": "x"}), SalesforceMoreThanOneRecord)
    assert status == 300
    assert urls == [f"/services/data/v62.0/sobjects/Opportunity/{i}" for i in sorted([first, second])]
    refused(lambda: sf.Opportunity.get_by_custom_id("Sync_Key__c", "k-1"), SalesforceMoreThanOneRecord)
    assert {r["Name"] for r in salesforce_control.all_records("Opportunity")} == {"Acme renewal"}  # nothing written
