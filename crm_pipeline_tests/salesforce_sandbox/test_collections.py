"""sObject Collections through ``sf.restful``: one request for up to 200 records, per-record
results in request order with ``statusCode`` errors, ``allOrNone`` rolling everything back, upsert
by Sync_Key__c with ``created``, delete by ids and retrieve by ids."""

from __future__ import annotations

from typing import Any

from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from crm_pipeline.salesforce_sandbox import SalesforceControl

from .helpers import MISSING_ID, opportunity, refused

ROLLED_BACK = "ALL_OR_NONE_OPERATION_ROLLED_BACK"


def typed(**fields: Any) -> dict[str, Any]:
    return {"attributes": {"type": "Opportunity"}, **fields}


def codes(results: list[dict[str, Any]]) -> list[str | None]:
    return [None if r["success"] else r["errors"][0]["statusCode"] for r in results]


def test_create_answers_each_record_in_order_and_keeps_the_good_ones(
    sf: Salesforce, salesforce_control: SalesforceControl
) -> None:
    records = [typed(**opportunity(Name="one")), typed(Name="no stage"), typed(**opportunity(Name="three"))]
    results = sf.restful("composite/sobjects", method="POST", json={"allOrNone": False, "records": records})
    assert codes(results) == [None, "REQUIRED_FIELD_MISSING", None]
    assert results[1] == {
        "success": False,
        "errors": [
            {
                "statusCode": "REQUIRED_FIELD_MISSING",
                "message": "Required fields are missing: [StageName, CloseDate]",
                "fields": ["StageName", "CloseDate"],
            }
        ],
    }
    names = {r["Id"]: r["Name"] for r in salesforce_control.all_records("Opportunity")}
    assert names == {results[0]["id"]: "one", results[2]["id"]: "three"}
    assert salesforce_control.stats()["by_route"] == {"POST /composite/sobjects": {"200": 1}}  # one API call


def test_all_or_none_rolls_back_every_record_and_names_the_culprit(
    sf: Salesforce, salesforce_control: SalesforceControl
) -> None:
    kept = sf.Opportunity.create(opportunity(Name="before"))["id"]
    records = [typed(**opportunity(Name="one")), typed(**opportunity(StageName="Nope")), typed(**opportunity())]
    results = sf.restful("composite/sobjects", method="POST", json={"allOrNone": True, "records": records})
    assert codes(results) == [ROLLED_BACK, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", ROLLED_BACK]
    assert all("id" not in r for r in results)
    assert [r["Id"] for r in salesforce_control.all_records("Opportunity")] == [kept]
    history = sf.query("SELECT OpportunityId FROM OpportunityFieldHistory")["records"]
    assert [r["OpportunityId"] for r in history] == [kept]  # rolled-back rows leave no history either


def test_update_and_delete_collections(sf: Salesforce) -> None:
    first, second = (sf.Opportunity.create(opportunity(Name=n))["id"] for n in ("a", "b"))
    records = [typed(id=first, Amount=5), typed(id=second, CloseDate=None), typed(id=MISSING_ID, Amount=1)]
    results = sf.restful("composite/sobjects", method="PATCH", json={"records": records})
    assert codes(results) == [None, "REQUIRED_FIELD_MISSING", "NOT_FOUND"]
    assert [r.get("id") for r in results] == [first, second, MISSING_ID]
    assert sf.Opportunity.get(first)["Amount"] == 5
    results = sf.restful("composite/sobjects", method="DELETE", params={"ids": f"{first},{first},bogus"})
    assert codes(results) == [None, "ENTITY_IS_DELETED", "MALFORMED_ID"]
    results = sf.restful("composite/sobjects", method="DELETE", params={"ids": f"{second}", "allOrNone": "true"})
    assert codes(results) == [None]


def test_upsert_collection_reports_created_per_record(sf: Salesforce) -> None:
    sf.Opportunity.upsert("Sync_Key__c/k-1", opportunity(Name="old"))
    records = [typed(Sync_Key__c="k-1", Name="new"), typed(**opportunity(Sync_Key__c="k-2")), typed(Name="no key")]
    results = sf.restful("composite/sobjects/Opportunity/Sync_Key__c", method="PATCH", json={"records": records})
    assert [r.get("created") for r in results] == [False, True, None]
    assert codes(results) == [None, None, "MISSING_ARGUMENT"]
    assert sf.Opportunity.get_by_custom_id("Sync_Key__c", "k-1")["Name"] == "new"
    retrieved = sf.restful(
        "composite/sobjects/Opportunity",
        params={"ids": f"{results[0]['id']},{MISSING_ID}", "fields": "Name,Sync_Key__c"},
    )
    assert [r and (r["Name"], r["Sync_Key__c"]) for r in retrieved] == [("new", "k-1"), None]


def test_a_malformed_or_oversized_request_is_refused_whole(
    sf: Salesforce, salesforce_control: SalesforceControl
) -> None:
    records = [typed(**opportunity(Name=str(i))) for i in range(201)]
    status, errors = refused(
        lambda: sf.restful("composite/sobjects", method="POST", json={"records": records}), SalesforceMalformedRequest
    )
    assert (status, errors[0]["errorCode"]) == (400, "EXCEEDED_ID_LIMIT")
    results = sf.restful(
        "composite/sobjects", method="POST", json={"records": [opportunity(), {**typed(**opportunity()), "Id": "x"}]}
    )
    assert codes(results) == ["INVALID_TYPE", "INVALID_FIELD"]
    assert salesforce_control.all_records("Opportunity") == []


def test_an_injected_lock_fails_one_record_and_then_clears(
    sf: Salesforce, salesforce_control: SalesforceControl
) -> None:
    salesforce_control.fail_record("k-2")
    records = [typed(**opportunity(Sync_Key__c=f"k-{i}")) for i in (1, 2, 3)]
    results = sf.restful(
        "composite/sobjects/Opportunity/Sync_Key__c",
        method="PATCH",
        json={"records": records},
    )
    assert codes(results) == [None, "UNABLE_TO_LOCK_ROW", None]
    retry = sf.restful("composite/sobjects/Opportunity/Sync_Key__c", method="PATCH", json={"records": [records[1]]})
    assert codes(retry) == [None] and retry[0]["created"] is True


def test_a_key_twice_in_one_upsert_or_held_twice_is_a_duplicate_external_id(
    sf: Salesforce, salesforce_control: SalesforceControl
) -> None:
    records = [
        typed(**opportunity(Sync_Key__c="k-1")),
        typed(**opportunity(Sync_Key__c="K-1")),
        typed(**opportunity(Sync_Key__c="k-2")),
    ]
    results = sf.restful("composite/sobjects/Opportunity/Sync_Key__c", method="PATCH", json={"records": records})
    assert codes(results) == ["DUPLICATE_EXTERNAL_ID", "DUPLICATE_EXTERNAL_ID", None]
    salesforce_control.setup(sync_key_unique=False)
    sf.Opportunity.create(opportunity(Sync_Key__c="k-2"))
    results = sf.restful("composite/sobjects/Opportunity/Sync_Key__c", method="PATCH", json={"records": records[2:]})
    assert codes(results) == ["DUPLICATE_EXTERNAL_ID"]
