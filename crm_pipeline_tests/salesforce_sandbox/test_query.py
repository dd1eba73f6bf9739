"""SOQL over ``query/`` and ``queryAll/``: pages of the ``Sforce-Query-Options`` batch size (or the
sandbox's shorter ones), a ``nextRecordsUrl`` path that ``query_more`` and ``query_all_iter``
follow, deleted rows only in queryAll, ``COUNT()``, and SOQL's errors as 400s."""

from __future__ import annotations

from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from crm_pipeline.salesforce_sandbox import SalesforceControl

from .helpers import opportunity, refused

ALL = "SELECT Id, Name FROM Opportunity ORDER BY Name"


def create_many(sf: Salesforce, count: int) -> list[str]:
    records = [{"attributes": {"type": "Opportunity"}, **opportunity(Name=f"deal {i:04}")} for i in range(count)]
    ids: list[str] = []
    for start in range(0, count, 200):
        results = sf.restful("composite/sobjects", method="POST", json={"records": records[start : start + 200]})
        ids += [r["id"] for r in results]
    return ids


def test_pages_follow_the_batch_size_and_the_locator_is_a_path(sf: Salesforce) -> None:
    create_many(sf, 450)
    first = sf.query(ALL, headers={"Sforce-Query-Options": "batchSize=200"})
    assert (first["totalSize"], first["done"], len(first["records"])) == (450, False, 200)
    locator = first["nextRecordsUrl"]
    assert locator.startswith("/services/data/v62.0/query/0r8") and locator.endswith("-200")
    second = sf.query_more(locator, identifier_is_url=True, headers={"Sforce-Query-Options": "batchSize=200"})
    third = sf.query_more(second["nextRecordsUrl"], identifier_is_url=True)  # no header: up to 2,000
    assert (len(second["records"]), second["done"], len(third["records"]), third["done"]) == (200, False, 50, True)
    assert "nextRecordsUrl" not in third
    names = [r["Name"] for r in first["records"] + second["records"] + third["records"]]
    assert names == [f"deal {i:04}" for i in range(450)]
    assert sf.query(ALL, headers={"Sforce-Query-Options": "batchSize=5"})["records"].__len__() == 200  # the minimum


def test_short_pages_are_followed_by_done_not_by_counting(
    sf: Salesforce, salesforce_control: SalesforceControl
) -> None:
    ids = create_many(sf, 25)
    salesforce_control.configure(query_page_cap=7)
    page = sf.query(ALL)
    assert (page["totalSize"], len(page["records"]), page["done"]) == (25, 7, False)
    assert sorted(r["Id"] for r in sf.query_all_iter(ALL)) == sorted(ids)
    assert sf.query_all(ALL)["totalSize"] == 25


def test_query_all_sees_the_recycle_bin_and_query_does_not(sf: Salesforce) -> None:
    kept, gone = create_many(sf, 2)
    sf.Opportunity.delete(gone)
    soql = "SELECT Id, IsDeleted FROM Opportunity ORDER BY Id"
    assert [(r["Id"], r["IsDeleted"]) for r in sf.query(soql)["records"]] == [(kept, False)]
    assert [(r["Id"], r["IsDeleted"]) for r in sf.query_all(soql, include_deleted=True)["records"]] == [
        (kept, False),
        (gone, True),
    ]
    assert sf.query("SELECT COUNT() FROM Opportunity") == {"totalSize": 1, "done": True, "records": []}


def test_filters_on_second_grained_stamps_and_orders_by_stamp_then_id(
    sf: Salesforce, salesforce_control: SalesforceControl
) -> None:
    first = create_many(sf, 1)[0]
    salesforce_control.advance_clock(30.9)
    second = create_many(sf, 1)[0]
    soql = "SELECT Id, SystemModstamp FROM Opportunity WHERE SystemModstamp >= 2026-03-02T09:30:30.500Z ORDER BY SystemModstamp, Id"
    assert [(r["Id"], r["SystemModstamp"]) for r in sf.query_all(soql)["records"]] == [
        (second, "2026-03-02T09:30:30.000+0000")
    ]
    assert sf.query(f"SELECT Name FROM Opportunity WHERE Id = '{first}'")["records"][0]["Name"] == "deal 0000"


def test_soql_errors_are_400s_with_salesforces_codes(sf: Salesforce) -> None:
    cases = {
        "SELECT Id FROM Opportunity GROUP BY Name": "MALFORMED_QUERY",
        "SELECT Nope__c FROM Opportunity": "INVALID_FIELD",
        "SELECT Id FROM Account": "INVALID_TYPE",
        "SELECT Id FROM Opportunity LIMIT 10 OFFSET 2001": "NUMBER_OUTSIDE_VALID_RANGE",
    }
    for soql, code in cases.items():
        status, errors = refused(lambda soql=soql: sf.query(soql), SalesforceMalformedRequest)
        assert (status, errors[0]["errorCode"]) == (400, code), soql
        assert set(errors[0]) == {"message", "errorCode"}


def test_an_unknown_locator_is_invalid_query_locator(sf: Salesforce) -> None:
    status, errors = refused(
        lambda: sf.query_more("/services/data/v62.0/query/0r8Sb0000000999AAA-200", identifier_is_url=True)
    )
    assert (status, errors[0]["errorCode"]) == (400, "INVALID_QUERY_LOCATOR")
