"""The transport around the records: the token check and its expiry, OAuth user info, the rolling daily allowance
and ``Sforce-Limit-Info``, ``limits/``, the versions list, Salesforce's 404 and 405, and faults
(with and without the write carried out)."""

from __future__ import annotations

import requests
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from crm_pipeline.salesforce_sandbox import (
    DEFAULT_TOKEN,
    HUMAN_USER,
    INTEGRATION_USER,
    INTEGRATION_USERNAME,
    RunningSalesforce,
    SalesforceControl,
    sandbox_salesforce,
    sandbox_session,
)

from .helpers import MISSING_ID, opportunity, refused


def test_an_expired_token_is_invalid_session_id_and_a_new_one_works(
    sf: Salesforce, salesforce_sandbox: RunningSalesforce, salesforce_control: SalesforceControl
) -> None:
    salesforce_control.expire_token(DEFAULT_TOKEN)
    status, errors = refused(lambda: sf.query("SELECT Id FROM Opportunity"), SalesforceExpiredSession)
    assert (status, errors) == (401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
    salesforce_control.grant_token("00DSb0000000001!refreshed")
    fresh = sandbox_salesforce(salesforce_sandbox.base_url, session_id="00DSb0000000001!refreshed")
    assert fresh.query("SELECT Id FROM Opportunity")["totalSize"] == 0
    salesforce_control.grant_token("00DSb0000000001!a-person", user_id=HUMAN_USER)
    as_person = sandbox_salesforce(salesforce_sandbox.base_url, session_id="00DSb0000000001!a-person")
    record_id = as_person.Opportunity.create(opportunity())["id"]
    assert fresh.Opportunity.get(record_id)["CreatedById"] == HUMAN_USER


def test_oauth_user_info_names_the_tokens_user_and_refuses_an_expired_token(
    sf: Salesforce, salesforce_sandbox: RunningSalesforce, salesforce_control: SalesforceControl
) -> None:
    info = sf.oauth2("userinfo")
    assert (info["user_id"], info["preferred_username"]) == (INTEGRATION_USER, INTEGRATION_USERNAME)
    assert info["organization_id"][:15] == DEFAULT_TOKEN.split("!")[0]
    allowance = sf.limits()["DailyApiRequests"]
    assert allowance["Remaining"] == allowance["Max"] - 1  # only limits/ counted: user info is outside it
    salesforce_control.grant_token("00DSb0000000001!a-person", user_id=HUMAN_USER)
    as_person = sandbox_salesforce(salesforce_sandbox.base_url, session_id="00DSb0000000001!a-person")
    assert as_person.oauth2("userinfo")["user_id"] == HUMAN_USER
    salesforce_control.expire_token(DEFAULT_TOKEN)
    assert refused(lambda: sf.oauth2("userinfo"), SalesforceRefusedRequest) == (403, "Bad_OAuth_Token")


def test_the_daily_allowance_counts_every_request_and_then_refuses(
    sf: Salesforce, salesforce_control: SalesforceControl
) -> None:
    salesforce_control.configure(daily_api_max=5, used=1)
    sf.query("SELECT Id FROM Opportunity")
    assert (sf.api_usage["api-usage"].used, sf.api_usage["api-usage"].total) == (2, 5)
    body = {"records": [{"attributes": {"type": "Opportunity"}, **opportunity()}] * 3}
    sf.restful("composite/sobjects", method="POST", json=body)  # one request for three records
    assert sf.limits()["DailyApiRequests"] == {"Max": 5, "Remaining": 1}
    sf.restful("limits/")
    status, errors = refused(lambda: sf.query("SELECT Id FROM Opportunity"), SalesforceRefusedRequest)
    assert (status, errors) == (
        403,
        [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}],
    )
    salesforce_control.advance_clock(86_400)  # a rolling 24 hours
    assert sf.query("SELECT COUNT() FROM Opportunity")["totalSize"] == 3


def test_every_answer_carries_the_usage_header_and_errors_are_salesforces(
    salesforce_sandbox: RunningSalesforce,
) -> None:
    session = sandbox_session(salesforce_sandbox.base_url)
    base = salesforce_sandbox.base_url.replace("http://", "https://")  # as simple-salesforce sends it
    versions = session.get(f"{base}/services/data/")
    assert versions.status_code == 200 and versions.json()[-1] == {
        "label": "Winter '25",
        "url": "/services/data/v62.0",
        "version": "62.0",
    }
    headers = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}
    unknown = session.get(f"{base}/services/data/v62.0/sobjects/Account/001Sb0000000001AAA", headers=headers)
    assert unknown.status_code == 404 and unknown.json()[0]["errorCode"] == "NOT_FOUND"
    assert unknown.headers["Sforce-Limit-Info"] == "api-usage=1/1000000"
    wrong = session.put(f"{base}/services/data/v62.0/sobjects/Opportunity/", headers=headers, json={})
    assert wrong.status_code == 405 and wrong.json()[0]["errorCode"] == "METHOD_NOT_ALLOWED"
    old = session.get(f"{base}/services/data/v40.0/limits/", headers=headers)
    assert old.status_code == 404
    nowhere = session.get(f"{base}/services/apexrest/anything", headers=headers)
    assert nowhere.status_code == 404 and "api-usage=" in nowhere.headers["Sforce-Limit-Info"]
    assert "api-usage=" in versions.headers["Sforce-Limit-Info"]
    assert requests.get(
        f"{salesforce_sandbox.base_url}/services/data/v62.0/limits/", headers=headers
    ).ok  # plain http too


def test_a_fault_answers_instead_of_the_api_and_an_applied_one_loses_the_answer(
    sf: Salesforce, salesforce_control: SalesforceControl
) -> None:
    salesforce_control.add_fault("503", method="POST", path="*/sobjects/Opportunity*")
    status, errors = refused(lambda: sf.Opportunity.create(opportunity()), SalesforceGeneralError)
    assert (status, errors[0]["errorCode"]) == (503, "SERVER_UNAVAILABLE")
    assert salesforce_control.all_records("Opportunity") == []
    salesforce_control.add_fault("503-html", method="POST", applied=True)
    status, content = refused(lambda: sf.Opportunity.create(opportunity(Name="written")), SalesforceGeneralError)
    assert status == 503 and "Server Unavailable" in str(content)
    assert [r["Name"] for r in salesforce_control.all_records("Opportunity")] == ["written"]
    status, _ = refused(lambda: sf.Opportunity.get(MISSING_ID), SalesforceResourceNotFound)
    stats = salesforce_control.stats()
    assert stats["by_route"]["POST /sobjects/{object}"] == {"503": 2}
    assert stats["by_route"]["GET /sobjects/{object}/{record_id}"] == {"404": 1}


def test_long_running_requests_elsewhere_close_the_concurrency_gate(
    sf: Salesforce, salesforce_control: SalesforceControl
) -> None:
    salesforce_control.configure(concurrent_long_running_limit=2, long_running_elsewhere=2)
    status, errors = refused(lambda: sf.query("SELECT Id FROM Opportunity"), SalesforceRefusedRequest)
    assert (status, errors) == (
        403,
        [{"message": "ConcurrentPerOrgLongTxn Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}],
    )
    salesforce_control.configure(long_running_elsewhere=1)
    assert sf.query("SELECT COUNT() FROM Opportunity")["totalSize"] == 0
