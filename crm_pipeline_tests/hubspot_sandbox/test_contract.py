"""The local HubSpot, driven by the official ``hubspot-api-client``: what the connector relies on
behaves as HubSpot documents it (string values, history, idProperty upserts, 207s, search caps and
lag, archive and restore, merges, associations, limits, faults and the error envelope)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hubspot import HubSpot
from hubspot.crm.associations.v4 import AssociationSpec
from hubspot.crm.deals import (
    BatchInputSimplePublicObjectBatchInputUpsert,
    BatchInputSimplePublicObjectId,
    BatchReadInputSimplePublicObjectId,
    PublicMergeInput,
    PublicObjectSearchRequest,
    SimplePublicObjectBatchInputUpsert,
    SimplePublicObjectId,
    SimplePublicObjectInput,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.objects.notes import SimplePublicObjectInputForCreate as NoteCreate
from hubspot.crm.properties import PropertyCreate

from crm_pipeline.emulation.control import RollingWindowLimiter
from crm_pipeline.emulation.errors import RateLimited
from crm_pipeline.hubspot_sandbox import READ_ONLY_TOKEN, HubSpotControl, RunningHubSpot
from crm_pipeline_tests.conftest import HUBSPOT_CLOCK

SYNC_KEY = "crm_pipeline_id"


def error_of(call: Any) -> tuple[int, dict[str, Any]]:
    """The status and JSON error body of a refused call (each SDK module has its own ApiException)."""
    with pytest.raises(Exception) as raised:
        call()
    error = raised.value
    assert isinstance(getattr(error, "status", None), int), error
    body = error.body if "json" in error.headers.get("content-type", "") else "{}"  # type: ignore[attr-defined]
    return error.status, json.loads(body)  # type: ignore[attr-defined]


def add_sync_key(hubspot: HubSpot) -> None:
    hubspot.crm.properties.core_api.create(
        "deals",
        PropertyCreate(
            name=SYNC_KEY,
            label="Sync key",
            type="string",
            field_type="text",
            group_name="dealinformation",
            has_unique_value=True,
        ),
    )


def create_deal(hubspot: HubSpot, **properties: str) -> str:
    body = {"dealname": "Acme", "dealstage": "appointmentscheduled", **properties}
    return str(hubspot.crm.deals.basic_api.create(SimplePublicObjectInputForCreate(properties=body)).id)


def upsert(hubspot: HubSpot, *items: tuple[str, dict[str, str]]) -> Any:
    inputs = [
        SimplePublicObjectBatchInputUpsert(id=key, id_property=SYNC_KEY, properties=props) for key, props in items
    ]
    return hubspot.crm.deals.batch_api.upsert(BatchInputSimplePublicObjectBatchInputUpsert(inputs=inputs))


def search_modified(hubspot: HubSpot, since_ms: int, **options: Any) -> Any:
    request = PublicObjectSearchRequest(
        filter_groups=[
            {"filters": [{"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": str(since_ms)}]}
        ],
        sorts=[{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
        **options,
    )
    return hubspot.crm.deals.search_api.do_search(request)


def test_values_are_strings_in_and_out_and_empty_string_clears(hubspot: HubSpot) -> None:
    deal_id = create_deal(hubspot, amount="1500.50", closedate="1772409600000", description="first")
    deal = hubspot.crm.deals.basic_api.get_by_id(deal_id, properties=["amount", "closedate", "description"])
    assert deal.id == deal_id and deal_id.isdigit()
    assert deal.properties["amount"] == "1500.50"
    assert deal.properties["closedate"] == "2026-03-02T00:00:00.000Z"  # epoch ms in, ISO-ms out
    assert deal.properties["hs_object_id"] == deal_id
    assert deal.properties["hs_lastmodifieddate"] == "2026-03-02T09:30:00.000Z"
    hubspot.crm.deals.basic_api.update(deal_id, SimplePublicObjectInput(properties={"description": ""}))
    assert hubspot.crm.deals.basic_api.get_by_id(deal_id, properties=["description"]).properties["description"] is None


def test_unknown_and_read_only_properties_are_refused_with_property_doesnt_exist(hubspot: HubSpot) -> None:
    deal_id = create_deal(hubspot)
    for name in ("no_such_property", "hs_lastmodifieddate"):
        status, body = error_of(
            lambda name=name: hubspot.crm.deals.basic_api.update(
                deal_id, SimplePublicObjectInput(properties={name: "x"})
            )
        )
        assert status == 400 and body["category"] == "VALIDATION_ERROR"
        assert body["errors"][0]["code"] == "PROPERTY_DOESNT_EXIST"
        assert body["errors"][0]["context"] == {"propertyName": [name]}
        assert body["status"] == "error" and body["correlationId"]


def test_unknown_stage_or_pipeline_is_refused_and_stages_are_read_by_id(hubspot: HubSpot) -> None:
    stages = hubspot.crm.pipelines.pipelines_api.get_all("deals").results[0].stages
    assert [s.id for s in stages][-2:] == ["closedwon", "closedlost"]
    assert stages[-2].label == "Closed Won"
    status, body = error_of(lambda: create_deal(hubspot, dealstage="Closed Won"))  # a label, not an id
    assert status == 400 and body["errors"][0]["context"] == {"propertyName": ["dealstage"]}
    status, _ = error_of(lambda: create_deal(hubspot, pipeline="nope"))
    assert status == 400


def test_history_tells_ui_edits_from_api_writes(hubspot: HubSpot, hubspot_control: HubSpotControl) -> None:
    deal_id = create_deal(hubspot, amount="10")
    hubspot_control.advance_clock(5)
    hubspot_control.ui_edit("deals", deal_id, {"amount": "20"}, user_id=77)
    deal = hubspot.crm.deals.basic_api.get_by_id(deal_id, properties_with_history=["amount"])
    history = deal.properties_with_history["amount"]
    assert [(v.value, v.source_type, v.updated_by_user_id) for v in history] == [
        ("20", "CRM_UI", 77),
        ("10", "API", None),
    ]
    assert history[0].source_id == "userId:77"
    assert history[0].timestamp > history[1].timestamp


def test_upsert_by_unique_property_creates_once_then_updates(hubspot: HubSpot) -> None:
    add_sync_key(hubspot)
    first = upsert(hubspot, ("k-1", {"dealname": "One", "dealstage": "appointmentscheduled"}))
    again = upsert(hubspot, ("k-1", {"dealname": "One, renamed"}))
    assert [r.new for r in first.results] == [True] and [r.new for r in again.results] == [False]
    assert first.results[0].id == again.results[0].id
    assert len(hubspot.crm.deals.basic_api.get_page(limit=100).results) == 1
    by_key = hubspot.crm.deals.basic_api.get_by_id("k-1", id_property=SYNC_KEY, properties=["dealname"])
    assert by_key.properties["dealname"] == "One, renamed"


def test_a_unique_value_cannot_be_held_twice(hubspot: HubSpot) -> None:
    add_sync_key(hubspot)
    create_deal(hubspot, **{SYNC_KEY: "k-1"})
    status, body = error_of(lambda: create_deal(hubspot, **{SYNC_KEY: "k-1"}))
    assert status == 409 and body["category"] == "CONFLICT"
    inputs = [SimplePublicObjectBatchInputUpsert(id="k-3", id_property="dealname", properties={"dealname": "x"})]
    status, body = error_of(
        lambda: hubspot.crm.deals.batch_api.upsert(BatchInputSimplePublicObjectBatchInputUpsert(inputs=inputs))
    )
    assert status == 400 and "not a unique identifier" in body["message"]  # upserts key on unique properties only


def test_batch_upsert_reports_each_failure_in_a_207_and_writes_the_rest(hubspot: HubSpot) -> None:
    add_sync_key(hubspot)
    answer = upsert(
        hubspot,
        ("good", {"dealname": "Good", "dealstage": "appointmentscheduled"}),
        ("bad", {"dealname": "Bad", "dealstage": "not-a-stage"}),
    )
    assert type(answer).__name__ == "BatchResponseSimplePublicUpsertObjectWithErrors"
    assert [r.properties["dealname"] for r in answer.results] == ["Good"]
    assert answer.num_errors == 1 and answer.errors[0].context["ids"] == ["bad"]
    assert answer.errors[0].errors[0].context == {"propertyName": ["dealstage"]}


def test_batches_take_at_most_100_inputs_and_50_with_history(hubspot: HubSpot) -> None:
    add_sync_key(hubspot)
    items = [(f"k-{i}", {"dealname": f"D{i}", "dealstage": "appointmentscheduled"}) for i in range(101)]
    status, body = error_of(lambda: upsert(hubspot, *items))
    assert status == 400 and "100" in body["message"]
    assert len(upsert(hubspot, *items[:100]).results) == 100
    ids = [SimplePublicObjectId(id=f"k-{i}") for i in range(51)]
    status, _ = error_of(
        lambda: hubspot.crm.deals.batch_api.read(
            BatchReadInputSimplePublicObjectId(
                inputs=ids, id_property=SYNC_KEY, properties_with_history=["dealname"], properties=[]
            )
        )
    )
    assert status == 400
    read = hubspot.crm.deals.batch_api.read(
        BatchReadInputSimplePublicObjectId(
            inputs=ids[:50], id_property=SYNC_KEY, properties_with_history=["dealname"], properties=[]
        )
    )
    assert len(read.results) == 50


def test_batch_read_reports_missing_ids_as_object_not_found(hubspot: HubSpot) -> None:
    deal_id = create_deal(hubspot)
    read = hubspot.crm.deals.batch_api.read(
        BatchReadInputSimplePublicObjectId(
            inputs=[SimplePublicObjectId(id=deal_id), SimplePublicObjectId(id="404")], properties=[]
        )
    )
    assert [r.id for r in read.results] == [deal_id]
    assert read.errors[0].category == "OBJECT_NOT_FOUND" and read.errors[0].context == {"ids": ["404"]}


def test_list_pages_with_an_after_cursor_and_caps_the_page(hubspot: HubSpot) -> None:
    ids = [create_deal(hubspot, dealname=f"D{i}") for i in range(5)]
    seen, after = [], None
    while True:
        page = hubspot.crm.deals.basic_api.get_page(limit=2, after=after)
        seen += [r.id for r in page.results]
        if page.paging is None:
            break
        after = page.paging.next.after
    assert seen == ids
    assert error_of(lambda: hubspot.crm.deals.basic_api.get_page(limit=101))[0] == 400
    assert (
        error_of(lambda: hubspot.crm.deals.basic_api.get_page(limit=51, properties_with_history=["dealname"]))[0] == 400
    )


def test_archived_records_leave_lists_and_search_and_are_listed_only_with_archived_true(
    hubspot: HubSpot, hubspot_control: HubSpotControl
) -> None:
    kept, gone = create_deal(hubspot), create_deal(hubspot)
    hubspot_control.advance_clock(60)
    hubspot.crm.deals.basic_api.archive(gone)
    assert [r.id for r in hubspot.crm.deals.basic_api.get_page().results] == [kept]
    archived = hubspot.crm.deals.basic_api.get_page(archived=True).results
    assert [r.id for r in archived] == [gone] and archived[0].archived
    assert [r.id for r in search_modified(hubspot, 0).results] == [kept]
    status, body = error_of(lambda: hubspot.crm.deals.basic_api.get_by_id(gone))
    assert (status, body["category"]) == (404, "OBJECT_NOT_FOUND")
    assert hubspot.crm.deals.basic_api.get_by_id(gone, archived=True).id == gone


def test_a_ui_restore_brings_the_record_back_with_a_bumped_modified_date(
    hubspot: HubSpot, hubspot_control: HubSpotControl
) -> None:
    deal_id = create_deal(hubspot)
    hubspot.crm.deals.basic_api.archive(deal_id)
    hubspot_control.advance_clock(3600)
    hubspot_control.ui_restore("deals", deal_id)
    deal = hubspot.crm.deals.basic_api.get_by_id(deal_id)
    assert not deal.archived and deal.properties["hs_lastmodifieddate"] == "2026-03-02T10:30:00.000Z"
    assert [r.id for r in search_modified(hubspot, int(HUBSPOT_CLOCK.timestamp() * 1000) + 1).results] == [deal_id]


def test_search_lags_writes_by_the_configured_index_delay(hubspot: HubSpot, hubspot_control: HubSpotControl) -> None:
    hubspot_control.configure(search_lag_ms=5_000)
    deal_id = create_deal(hubspot, amount="1")
    assert search_modified(hubspot, 0).total == 0  # not indexed yet
    hubspot_control.advance_clock(5)
    hubspot.crm.deals.basic_api.update(deal_id, SimplePublicObjectInput(properties={"amount": "2"}))
    found = search_modified(hubspot, 0, properties=["amount"])
    assert found.results[0].properties["amount"] == "1"  # the index still holds the older value
    hubspot_control.advance_clock(5)
    assert search_modified(hubspot, 0, properties=["amount"]).results[0].properties["amount"] == "2"


def test_search_caps(hubspot: HubSpot) -> None:
    create_deal(hubspot)
    filters = [{"propertyName": "amount", "operator": "HAS_PROPERTY"}] * 7
    too_many = [
        {"filter_groups": [{"filters": filters}]},
        {"filter_groups": [{"filters": filters[:1]}] * 6},
        {"filter_groups": [{"filters": filters[:6]}] * 4},  # 24 filters in all
        {"sorts": [{"propertyName": "amount"}, {"propertyName": "dealname"}]},
        {"limit": 201},
        {"after": "9900", "limit": 200},  # past 10,000 results
    ]
    for options in too_many:
        status, body = error_of(
            lambda o=options: hubspot.crm.deals.search_api.do_search(PublicObjectSearchRequest(**o))
        )
        assert (status, body["category"]) == (400, "VALIDATION_ERROR"), options


def test_search_pages_by_integer_offset(hubspot: HubSpot) -> None:
    ids = [create_deal(hubspot) for _ in range(3)]
    first = search_modified(hubspot, 0, limit=2)
    assert first.total == 3 and first.paging.next.after == "2"
    rest = search_modified(hubspot, 0, limit=2, after=first.paging.next.after)
    assert [r.id for r in first.results + rest.results] == ids


def test_merge_gives_a_new_id_and_old_ids_answer_as_the_survivor(
    hubspot: HubSpot, hubspot_control: HubSpotControl
) -> None:
    primary, other = create_deal(hubspot, dealname="Primary"), create_deal(hubspot, dealname="Other", amount="5")
    survivor = hubspot.crm.deals.basic_api.merge(PublicMergeInput(primary_object_id=primary, object_id_to_merge=other))
    assert survivor.id not in (primary, other)
    read = hubspot.crm.deals.basic_api.get_by_id(other, properties=["dealname", "amount", "hs_merged_object_ids"])
    assert read.id == survivor.id
    assert read.properties["dealname"] == "Primary" and read.properties["amount"] == "5"
    assert set(read.properties["hs_merged_object_ids"].split(";")) == {primary, other}
    hubspot_control.configure(preserve_merged_ids=True)
    third = create_deal(hubspot)
    assert (
        hubspot.crm.deals.basic_api.merge(PublicMergeInput(primary_object_id=survivor.id, object_id_to_merge=third)).id
        == survivor.id
    )


def test_notes_need_a_timestamp_and_associate_at_creation_by_type_id(hubspot: HubSpot) -> None:
    deal_id = create_deal(hubspot)
    status, _ = error_of(
        lambda: hubspot.crm.objects.notes.basic_api.create(NoteCreate(properties={"hs_note_body": "x"}))
    )
    assert status == 400
    note = hubspot.crm.objects.notes.basic_api.create(
        NoteCreate(
            properties={"hs_note_body": "Call went well", "hs_timestamp": "1772443800000"},
            associations=[
                {"to": {"id": deal_id}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 214}]}
            ],
        )
    )
    linked = hubspot.crm.associations.v4.basic_api.get_page("deals", deal_id, "notes")
    assert [(str(r.to_object_id), r.association_types[0].type_id) for r in linked.results] == [(note.id, 213)]


def test_v4_associations_by_type_id_and_default(hubspot: HubSpot) -> None:
    deal_id = create_deal(hubspot)
    contact = hubspot.crm.contacts.basic_api.create({"properties": {"email": "a@example.com", "firstname": "A"}})
    hubspot.crm.associations.v4.basic_api.create(
        "contacts",
        contact.id,
        "deals",
        deal_id,
        [AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=4)],
    )
    assert [
        r.association_types[0].type_id
        for r in hubspot.crm.associations.v4.basic_api.get_page("deals", deal_id, "contacts").results
    ] == [3]
    status, _ = error_of(
        lambda: hubspot.crm.associations.v4.basic_api.create(
            "contacts",
            contact.id,
            "deals",
            deal_id,
            [AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=214)],
        )
    )
    assert status == 400


def test_contacts_email_is_unique_regardless_of_case(hubspot: HubSpot) -> None:
    hubspot.crm.contacts.basic_api.create({"properties": {"email": "Ann@Example.com"}})
    status, body = error_of(lambda: hubspot.crm.contacts.basic_api.create({"properties": {"email": "ann@example.com"}}))
    assert (status, body["category"]) == (409, "CONFLICT")


def test_bad_token_is_401_and_a_read_only_token_cannot_write(hubspot_sandbox: RunningHubSpot) -> None:
    bad = HubSpot(access_token="nope", host=hubspot_sandbox.base_url)
    status, body = error_of(lambda: bad.crm.deals.basic_api.get_page())
    assert (status, body["category"]) == (401, "INVALID_AUTHENTICATION")
    reader = HubSpot(access_token=READ_ONLY_TOKEN, host=hubspot_sandbox.base_url)
    assert reader.crm.deals.basic_api.get_page().results == []
    status, body = error_of(lambda: create_deal(reader))
    assert (status, body["category"]) == (403, "MISSING_SCOPES")


def test_ten_secondly_limit_refuses_with_policy_name_and_headers(
    hubspot: HubSpot, hubspot_control: HubSpotControl
) -> None:
    hubspot_control.configure(ten_secondly_limit=3)
    answers = [hubspot.crm.deals.basic_api.get_page_with_http_info() for _ in range(3)]
    assert [a[2]["X-HubSpot-RateLimit-Remaining"] for a in answers] == ["2", "1", "0"]
    assert answers[0][2]["X-HubSpot-RateLimit-Max"] == "3"
    assert answers[0][2]["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    status, body = error_of(lambda: hubspot.crm.deals.basic_api.get_page())
    assert status == 429 and body["policyName"] == "TEN_SECONDLY_ROLLING" and body["errorType"] == "RATE_LIMIT"
    assert search_modified(hubspot, 0).total == 0  # search has its own limit
    hubspot_control.advance_clock(10)
    assert hubspot.crm.deals.basic_api.get_page().results == []


def test_search_has_its_own_per_second_limit_and_no_headers(
    hubspot_sandbox: RunningHubSpot, hubspot_control: HubSpotControl
) -> None:
    hubspot_control.configure(search_per_second=2)
    with httpx.Client(
        base_url=hubspot_sandbox.base_url, headers={"authorization": "Bearer pat-sandbox-private-app"}
    ) as http:
        answers = [http.post("/crm/v3/objects/deals/search", json={}) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert not any(k.lower().startswith("x-hubspot-ratelimit") for k in answers[0].headers)
    assert answers[2].json()["policyName"] == "SECONDLY" and "retry-after" not in answers[2].headers


def test_daily_limit(hubspot: HubSpot, hubspot_control: HubSpotControl) -> None:
    hubspot_control.configure(daily_limit=2)
    hubspot.crm.deals.basic_api.get_page()
    assert hubspot.crm.deals.basic_api.get_page_with_http_info()[2]["X-HubSpot-RateLimit-Daily-Remaining"] == "0"
    status, body = error_of(lambda: hubspot.crm.deals.basic_api.get_page())
    assert (status, body["policyName"], body["message"]) == (429, "DAILY", "You have reached your daily limit.")
    hubspot_control.advance_clock(86_400)
    assert hubspot.crm.deals.basic_api.get_page().results == []


@pytest.mark.parametrize("kind", ["423", "502", "503"])
def test_scripted_faults(hubspot: HubSpot, hubspot_control: HubSpotControl, kind: str) -> None:
    hubspot_control.add_fault(kind, path="/crm/v3/objects/deals")
    status, _ = error_of(lambda: hubspot.crm.deals.basic_api.get_page())
    assert status == int(kind)
    assert hubspot.crm.deals.basic_api.get_page().results == []


def test_an_applied_fault_writes_and_loses_the_answer(hubspot: HubSpot, hubspot_control: HubSpotControl) -> None:
    add_sync_key(hubspot)
    hubspot_control.add_fault("503", path="/crm/v3/objects/deals/batch/upsert", applied=True)
    status, _ = error_of(lambda: upsert(hubspot, ("k-1", {"dealname": "A", "dealstage": "appointmentscheduled"})))
    assert status == 503
    assert upsert(hubspot, ("k-1", {"dealname": "A"})).results[0].new is False  # the resend finds it


def test_rolling_window_limiter_counts_the_last_window_only() -> None:
    now = [100.0]
    limiter = RollingWindowLimiter("TEN_SECONDLY_ROLLING", 2, 10.0, lambda: now[0])
    limiter.check("app")
    now[0] = 105.0
    limiter.check("app")
    with pytest.raises(RateLimited):
        limiter.check("app")
    now[0] = 110.0  # the first request left the window
    limiter.check("app")
    assert limiter.remaining("app") == 0 and limiter.remaining("other") == 2


def test_batch_archive_answers_204(hubspot: HubSpot) -> None:
    ids = [create_deal(hubspot) for _ in range(2)]
    answer = hubspot.crm.deals.batch_api.archive_with_http_info(
        BatchInputSimplePublicObjectId(inputs=[SimplePublicObjectId(id=i) for i in ids])
    )
    assert answer[1] == 204
    assert hubspot.crm.deals.basic_api.get_page().results == []
