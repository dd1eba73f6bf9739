"""NotionAdapter against the sandbox over HTTP with the real notion-client: every method, paging past
the query cap, the overlap window, each fault kind, pacing, and request bodies checked against
Notion's JSON Schemas."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from uuid import uuid4

import pytest

from crm_pipeline.crm.errors import FieldMappingError
from crm_pipeline.crm.notion import (
    NotionAdapter,
    OpportunityPageNotFoundError,
    PageTrashedError,
    RateLimit,
)
from crm_pipeline.crm.notion.adapter import activity_ref
from crm_pipeline.crm.notion.properties import notion_properties_schema
from crm_pipeline.models import (
    ActivityCreate,
    Actor,
    ContactCreate,
    ContactUpdate,
    ExternalOpportunityRead,
    OpportunityCreate,
    OpportunityFilter,
    OpportunityUpdate,
    RecordType,
)
from crm_pipeline.sandbox import DEFAULT_TOKEN
from crm_pipeline_tests.crm.conftest import HANG_SECONDS, HANG_TIMEOUT_S, UNPACED, Workspace
from crm_pipeline_tests.notion_schemas import validate

pytestmark = pytest.mark.integration

NOON = datetime(2026, 11, 2, 12, 0, 10, tzinfo=UTC)


def deal(name: str = "Acme renewal", **fields: object) -> OpportunityCreate:
    return OpportunityCreate(
        id=uuid4(),
        name=name,
        deal_stage=fields.pop("deal_stage", "Qualified"),
        **fields,
    )


def pages_with_key(workspace: Workspace, key: object) -> list[dict]:
    """Pages whose Sync Key is ``key`` in any letter case."""
    pages = workspace.control.all_pages(workspace.data_source_id)
    return [
        p
        for p in pages
        if "".join(t["plain_text"] for t in p["properties"]["Sync Key"]["rich_text"]).lower() == str(key).lower()
    ]


def paragraph_texts(children: list[dict]) -> list[str]:
    return ["".join(i["plain_text"] for i in child["paragraph"]["rich_text"]) for child in children]


# --- every method ---------------------------------------------------------------------------------


async def test_create_and_get_round_trip_every_mapped_field(
    notion: NotionAdapter,
) -> None:
    data = deal(
        estimated_value=Decimal("12000.5"),
        close_date=date(2027, 3, 31),
        product_line="Enterprise",
        probability=Decimal("0.35"),
        source="Referral",
        contact_name="Ada Lovelace",
        contact_email="ada@acme.example",
    )
    page_id = await notion.create_opportunity(data)
    fetched = await notion.get_opportunity(page_id)

    assert isinstance(fetched, ExternalOpportunityRead)
    assert fetched.external_id == page_id == str(fetched.id)
    assert fetched.sync_key == data.id
    assert fetched.tenant_id == "tenant-a"
    assert fetched.last_edited_by is Actor.SYNC
    assert not fetched.in_trash
    mapped = [
        "name",
        "deal_stage",
        "estimated_value",
        "close_date",
        "product_line",
        "probability",
        "source",
        "contact_name",
        "contact_email",
    ]
    assert fetched.model_dump(include=set(mapped)) == data.model_dump(include=set(mapped))


async def test_get_unknown_page_is_none(notion: NotionAdapter) -> None:
    assert await notion.get_opportunity(str(uuid4())) is None


async def test_update_writes_only_the_fields_set_and_a_human_edit_reads_as_human(
    notion: NotionAdapter, workspace: Workspace
) -> None:
    page_id = await notion.create_opportunity(deal(estimated_value=Decimal(100)))
    await notion.update_opportunity(page_id, OpportunityUpdate(deal_stage="Negotiation", contact_name=None))
    updated = await notion.get_opportunity(page_id)
    assert updated is not None
    assert (updated.deal_stage, updated.contact_name, updated.estimated_value) == (
        "Negotiation",
        None,
        Decimal(100),
    )

    workspace.control.human_update_page(page_id, {"properties": {"Value": {"number": 250}}})
    edited = await notion.get_opportunity(page_id)
    assert edited is not None
    assert edited.estimated_value == Decimal(250)
    assert edited.last_edited_by is Actor.HUMAN


async def test_an_upsert_of_an_existing_deal_writes_only_the_fields_set_on_the_record(
    notion: NotionAdapter, workspace: Workspace
) -> None:
    key = uuid4()
    full = OpportunityCreate(
        id=key,
        name="Acme",
        deal_stage="Negotiation",
        estimated_value=Decimal(50000),
        close_date=date(2027, 1, 31),
        source="Referral",
    )
    assert [o.action for o in await notion.upsert_opportunities([full])] == ["created"]
    workspace.sent.clear()

    renamed = OpportunityCreate(id=key, name="Acme (renamed)")  # deal_stage left at its default, not set
    cleared = OpportunityCreate(id=key, name="Acme (renamed)", source=None)  # an explicit None clears
    assert [o.action for o in await notion.upsert_opportunities([renamed])] == ["updated"]
    [page] = pages_with_key(workspace, key)
    props = page["properties"]
    assert props["Deal Name"]["title"][0]["plain_text"] == "Acme (renamed)"
    assert props["Stage"]["select"]["name"] == "Negotiation"
    assert props["Value"]["number"] == 50000
    assert props["Close Date"]["date"]["start"] == "2027-01-31"
    assert props["Source"]["select"]["name"] == "Referral"
    [(_, _, body)] = [(m, p, b) for m, p, b in workspace.sent if m == "PATCH"]
    assert list(body["properties"]) == [notion.bindings["name"]]  # only the title was sent

    assert [o.action for o in await notion.upsert_opportunities([cleared])] == ["updated"]
    fetched = await notion.get_opportunity(page["id"])
    assert fetched is not None
    assert (fetched.source, fetched.deal_stage, fetched.estimated_value) == (None, "Negotiation", Decimal(50000))

    fresh = workspace.adapter()  # a new record in another batch still takes every field, defaults included
    try:
        new = OpportunityCreate(id=uuid4(), name="Globex")
        [created] = await fresh.upsert_opportunities([new])
        assert (await fresh.get_opportunity(created.external_id or "")).deal_stage == "Lead"  # type: ignore[union-attr]
    finally:
        await fresh.aclose()


async def test_the_same_id_twice_in_one_upsert_batch_is_refused(notion: NotionAdapter, workspace: Workspace) -> None:
    key = uuid4()
    with pytest.raises(ValueError, match=f"same id more than once.*{key}"):
        await notion.upsert_opportunities([OpportunityCreate(id=key, name="a"), OpportunityCreate(id=key, name="b")])
    assert pages_with_key(workspace, key) == []


async def test_a_keyed_create_returns_the_page_already_holding_the_key(
    notion: NotionAdapter, workspace: Workspace
) -> None:
    data = deal()
    page_id = await notion.create_opportunity(data)
    assert await notion.create_opportunity(data) == page_id  # same adapter: from its cache
    fresh = workspace.adapter()  # a later run whose first create's answer was lost
    try:
        workspace.control.reset_stats()
        assert await fresh.create_opportunity(data) == page_id
    finally:
        await fresh.aclose()
    assert [p["id"] for p in pages_with_key(workspace, data.id)] == [page_id]
    assert workspace.requests_to("POST", "/v1/pages") == {}
    assert workspace.requests_to("POST", "/v1/data_sources/{data_source_id}/query") == {"200": 1}


async def test_a_sync_key_stamped_upper_case_is_found_rather_than_duplicated(workspace: Workspace) -> None:
    key, other = uuid4(), uuid4()
    for stamped in (key, other):  # pages another tool (a CSV re-import) stamped with upper-case keys
        workspace.control.human_create_page(
            {
                "parent": {"data_source_id": workspace.data_source_id},
                "properties": {
                    "Deal Name": {"title": [{"text": {"content": "Acme"}}]},
                    "Stage": {"select": {"name": "Lead"}},
                    "Sync Key": {"rich_text": [{"text": {"content": str(stamped).upper()}}]},
                },
            }
        )
    [page] = pages_with_key(workspace, key)
    [other_page] = pages_with_key(workspace, other)
    for run in range(3):
        adapter = workspace.adapter()  # a cold cache each time: every path queries the key
        try:
            if run == 0:
                [outcome] = await adapter.upsert_opportunities([OpportunityCreate(id=key, name="Acme 2")])
                assert (outcome.action, outcome.external_id) == ("updated", page["id"])
            elif run == 1:
                assert await adapter.create_opportunity(OpportunityCreate(id=other, name="Acme")) == other_page["id"]
            else:
                block_id = await adapter.create_activity(ActivityCreate(opportunity_id=key, subject="Call back"))
                children = (await adapter.client.blocks.children.list(page["id"]))["results"]
                assert [child["id"] for child in children] == [block_id]
        finally:
            await adapter.aclose()
    assert len(pages_with_key(workspace, key)) == len(pages_with_key(workspace, other)) == 1


async def test_list_filters_by_stage_trash_and_paging_options(
    notion: NotionAdapter,
) -> None:
    names = {}
    for name, stage in [
        ("a", "Lead"),
        ("b", "Qualified"),
        ("c", "Qualified"),
        ("d", "Lead"),
    ]:
        names[name] = await notion.create_opportunity(deal(name, deal_stage=stage))
    await notion.archive_opportunity(names["d"])

    async def names_of(**criteria: object) -> list[str]:
        return [r.name for r in await notion.list_opportunities(OpportunityFilter(**criteria))]

    assert sorted(await names_of()) == ["a", "b", "c"]
    assert sorted(await names_of(deal_stage="Qualified")) == ["b", "c"]
    assert sorted(await names_of(deal_stage=["Lead", "Qualified"], archived=None)) == [
        "a",
        "b",
        "c",
        "d",
    ]
    assert await names_of(archived=True) == ["d"]
    assert await names_of(order_by="name", descending=True, offset=1, limit=1) == ["b"]
    trashed = (await notion.list_opportunities(OpportunityFilter(archived=True)))[0]
    assert trashed.in_trash and trashed.archived_at is not None


async def test_list_updated_since_uses_last_edited_time(notion: NotionAdapter, workspace: Workspace) -> None:
    workspace.control.set_clock(NOON)
    old = await notion.create_opportunity(deal("old"))
    workspace.control.advance_clock(600)
    new = await notion.create_opportunity(deal("new"))
    recent = await notion.list_opportunities(OpportunityFilter(updated_since=NOON + timedelta(minutes=5)))
    assert [r.external_id for r in recent] == [new]
    assert old != new


async def test_archive_then_update_is_a_page_trashed_error(
    notion: NotionAdapter,
) -> None:
    page_id = await notion.create_opportunity(deal())
    archived = await notion.archive_opportunity(page_id)
    assert archived.in_trash
    with pytest.raises(PageTrashedError) as raised:
        await notion.update_opportunity(page_id, OpportunityUpdate(name="too late"))
    assert raised.value.page_id == page_id


async def test_contacts_are_created_and_updated_in_the_contacts_data_source(
    notion: NotionAdapter, workspace: Workspace
) -> None:
    contact_id = uuid4()
    page_id = await notion.create_contact(ContactCreate(id=contact_id, name="Grace Hopper", email="grace@navy.example"))
    await notion.update_contact(page_id, ContactUpdate(company="US Navy", phone="+1 555 0100"))
    [page] = workspace.control.all_pages(workspace.contacts_data_source_id)
    props = page["properties"]
    assert page["id"] == page_id
    assert props["Email"]["email"] == "grace@navy.example"
    assert props["Company"]["rich_text"][0]["plain_text"] == "US Navy"
    assert props["Sync Key"]["rich_text"][0]["plain_text"] == str(contact_id)


async def test_activity_is_one_paragraph_split_at_2000_chars_on_the_deal_page(
    notion: NotionAdapter, workspace: Workspace
) -> None:
    data = deal()
    page_id = await notion.create_opportunity(data)
    cold = workspace.adapter()  # empty sync-key cache: finds the page by querying the key
    try:
        body = "x" * 4500
        block_id = await cold.create_activity(
            ActivityCreate(opportunity_id=data.id, kind="call", subject="Discovery call", body=body)
        )
        children = (await cold.client.blocks.children.list(page_id))["results"]
    finally:
        await cold.aclose()
    [paragraph] = children
    assert paragraph["id"] == block_id and paragraph["type"] == "paragraph"
    items = paragraph["paragraph"]["rich_text"]
    assert all(len(item["plain_text"]) <= 2000 for item in items) and len(items) == 3
    header, text = "".join(i["plain_text"] for i in items).split("\n", 1)
    assert re.fullmatch(r"Call: Discovery call · ref [0-9a-f]{12}", header) and text == body


async def test_activity_for_an_unknown_deal_names_the_key(
    notion: NotionAdapter,
) -> None:
    key = uuid4()
    with pytest.raises(OpportunityPageNotFoundError, match=str(key)):
        await notion.create_activity(ActivityCreate(opportunity_id=key, subject="Lost"))


# --- paging past the cap, changes and the overlap window ------------------------------------------


async def test_list_and_changes_read_past_the_query_result_cap(notion: NotionAdapter, workspace: Workspace) -> None:
    workspace.control.configure(result_cap=30)
    workspace.control.set_clock(NOON)
    records = [deal(f"deal {i:02}") for i in range(75)]
    for start in range(0, 75, 15):  # 15 pages per created_time minute, five minutes
        outcomes = await notion.upsert_opportunities(records[start : start + 15])
        assert all(o.action == "created" for o in outcomes)
        workspace.control.advance_clock(60)

    listed = await notion.list_opportunities(OpportunityFilter(limit=1000))
    changes = await notion.get_changes_since(NOON - timedelta(hours=1))

    assert sorted(r.name for r in listed) == [f"deal {i:02}" for i in range(75)]
    assert len({c.record_id for c in changes}) == len(changes) == 75
    assert {c.sync_key for c in changes} == {str(r.id) for r in records}
    queries = [body for method, path, body in workspace.sent if path.endswith("/query")]
    assert any("created_time" in str(body.get("filter")) for body in queries)  # a second window was opened


async def test_changes_overlap_sees_a_human_edit_in_the_same_minute_as_our_write(
    notion: NotionAdapter, workspace: Workspace
) -> None:
    workspace.control.set_clock(NOON)  # 12:00:10
    page_id = await notion.create_opportunity(deal())
    workspace.control.advance_clock(20)  # 12:00:30: our write, then a human edit in the same minute
    await notion.update_opportunity(page_id, OpportunityUpdate(estimated_value=Decimal(10)))
    watermark = NOON + timedelta(seconds=25)
    workspace.control.advance_clock(10)  # 12:00:40
    workspace.control.human_update_page(page_id, {"properties": {"Value": {"number": 99}}})

    changes = await notion.get_changes_since(watermark)

    [change] = changes  # one record per page despite several edits in the window
    assert change.record_type is RecordType.OPPORTUNITY and change.record_id == page_id
    assert change.actor is Actor.HUMAN
    assert change.changes["estimated_value"].new == "99" and change.changes["estimated_value"].old is None
    assert change.changed_at == NOON.replace(second=0)
    workspace.control.advance_clock(600)
    assert await notion.get_changes_since(NOON + timedelta(minutes=10)) == []


# --- faults ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["500", "502", "503", "504", "529", "409"])
async def test_transient_faults_on_update_are_retried(notion: NotionAdapter, workspace: Workspace, kind: str) -> None:
    page_id = await notion.create_opportunity(deal())
    workspace.control.add_fault(kind, method="PATCH", path="/v1/pages/*", count=2)
    await notion.update_opportunity(page_id, OpportunityUpdate(name="after faults"))
    assert (await notion.get_opportunity(page_id)).name == "after faults"  # type: ignore[union-attr]
    assert workspace.requests_to("PATCH", "/v1/pages/{page_id}") == {kind: 2, "200": 1}


@pytest.mark.parametrize("kind", ["500", "503", "529"])
async def test_transient_faults_on_a_query_are_retried(notion: NotionAdapter, workspace: Workspace, kind: str) -> None:
    await notion.create_opportunity(deal())
    workspace.control.add_fault(kind, method="POST", path="/v1/data_sources/*/query")
    assert len(await notion.list_opportunities(OpportunityFilter())) == 1


async def test_a_timeout_is_retried(workspace: Workspace) -> None:
    adapter = workspace.adapter(timeout_s=HANG_TIMEOUT_S)
    try:
        page_id = await adapter.create_opportunity(deal())
        workspace.control.add_fault("hang", method="PATCH", path="/v1/pages/*", hang_seconds=HANG_SECONDS)
        await adapter.update_opportunity(page_id, OpportunityUpdate(name="after a timeout"))
        assert (await adapter.get_opportunity(page_id)).name == "after a timeout"  # type: ignore[union-attr]
    finally:
        await adapter.aclose()
    # the hung attempt and the retry that succeeded
    assert await workspace.hung_requests_answered("PATCH", "/v1/pages/{page_id}") == {"499": 1, "200": 1}


@pytest.mark.parametrize("kind", ["500", "502", "504", "529", "409", "hang"])
async def test_a_create_applied_then_lost_leaves_exactly_one_page(workspace: Workspace, kind: str) -> None:
    adapter = workspace.adapter(timeout_s=HANG_TIMEOUT_S)
    data = deal()
    try:
        workspace.control.add_fault(kind, method="POST", path="/v1/pages", applied=True, hang_seconds=HANG_SECONDS)
        page_id = await adapter.create_opportunity(data)
    finally:
        await adapter.aclose()
    [page] = pages_with_key(workspace, data.id)
    assert page["id"] == page_id
    # sent once: the retry found the page by its sync key (a hung request's client had left: 499)
    if kind == "hang":
        assert await workspace.hung_requests_answered("POST", "/v1/pages") == {"499": 1}
    else:
        assert workspace.requests_to("POST", "/v1/pages") == {kind: 1}


@pytest.mark.parametrize("body", ["", "y" * 4500], ids=["one line", "split at 2000 chars"])
@pytest.mark.parametrize("activity_id", [None, uuid4()], ids=["no id", "with id"])
async def test_an_activity_applied_then_lost_lands_once(
    notion: NotionAdapter, workspace: Workspace, body: str, activity_id: object
) -> None:
    data = deal()
    page_id = await notion.create_opportunity(data)
    workspace.control.add_fault("500", method="PATCH", path="/v1/blocks/*/children", applied=True)
    block_id = await notion.create_activity(
        ActivityCreate(id=activity_id, opportunity_id=data.id, subject="Sent proposal", body=body)
    )
    children = (await notion.client.blocks.children.list(page_id))["results"]
    assert [child["id"] for child in children] == [block_id]
    assert workspace.requests_to("PATCH", "/v1/blocks/{block_id}/children") == {"500": 1}  # not appended again
    if activity_id is not None:
        [text] = paragraph_texts(children)
        assert text.startswith(f"Note: Sent proposal · ref {activity_ref(activity_id)}")  # type: ignore[arg-type]


async def test_two_activities_with_the_same_text_both_land(notion: NotionAdapter, workspace: Workspace) -> None:
    data = deal()
    page_id = await notion.create_opportunity(data)
    when = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
    voicemail = ActivityCreate(opportunity_id=data.id, kind="call", subject="Left voicemail", occurred_at=when)
    first = await notion.create_activity(voicemail.model_copy(update={"id": uuid4()}))
    # a second call a minute later reads the same; its append fails with a 503 that was not applied
    workspace.control.add_fault("503", method="PATCH", path="/v1/blocks/*/children", applied=False)
    second = await notion.create_activity(
        voicemail.model_copy(update={"id": uuid4(), "occurred_at": when.replace(second=40)})
    )
    children = (await notion.client.blocks.children.list(page_id))["results"]
    assert [child["id"] for child in children] == [first, second] and first != second
    texts = paragraph_texts(children)
    assert [text.split(" · ref ")[0] for text in texts] == ["Call: Left voicemail (2026-11-02 12:00 UTC)"] * 2


async def test_a_validation_error_is_not_retried(notion: NotionAdapter, workspace: Workspace) -> None:
    page_id = await notion.create_opportunity(deal(estimated_value=Decimal(5)))
    # A human turns Value into a text column; the adapter's bound schema still says number.
    await notion.client.data_sources.update(workspace.data_source_id, properties={"Value": {"rich_text": {}}})
    workspace.control.reset_stats()
    with pytest.raises(Exception, match="Value") as raised:
        await notion.update_opportunity(page_id, OpportunityUpdate(estimated_value=Decimal(6)))
    assert getattr(raised.value, "code", None) == "validation_error"
    assert workspace.requests_to("PATCH", "/v1/pages/{page_id}") == {"400": 1}


async def test_a_page_trashed_by_a_human_fails_only_its_record_in_a_batch(
    notion: NotionAdapter, workspace: Workspace
) -> None:
    good, gone = deal("good"), deal("gone")
    created = await notion.upsert_opportunities([good, gone])
    workspace.control.human_update_page(created[1].external_id or "", {"in_trash": True})
    workspace.control.reset_stats()

    outcomes = await notion.upsert_opportunities([good.model_copy(update={"name": "good 2"}), gone])

    assert [o.action for o in outcomes] == ["updated", "failed"]
    assert outcomes[1].record_id == str(gone.id) and "trash" in (outcomes[1].reason or "")
    assert workspace.requests_to("PATCH", "/v1/pages/{page_id}") == {
        "200": 1,
        "400": 1,
    }  # not retried

    cold = workspace.adapter()  # finds the trashed page by its key instead of creating a duplicate
    try:
        assert [o.action for o in await cold.upsert_opportunities([gone])] == ["failed"]
    finally:
        await cold.aclose()
    assert len(pages_with_key(workspace, gone.id)) == 1


# --- bad input: per record, never the whole batch -------------------------------------------------


async def test_bad_values_on_the_way_out_fail_only_their_record(
    notion: NotionAdapter,
) -> None:
    long_email = f"{'a' * 60}@{'b' * 60}.{'c' * 60}.{'d' * 60}.example"
    batch = [
        deal("ok"),
        # The model refuses such a stage; one copied past validation is still caught on the way out.
        deal("bad stage").model_copy(update={"deal_stage": "Won-ish"}),
        deal("long email", contact_email=long_email),
    ]

    outcomes = await notion.upsert_opportunities(batch)

    assert [o.action for o in outcomes] == ["created", "failed", "failed"]
    assert (outcomes[1].property_name, outcomes[2].property_name) == ("Stage", "Email")
    assert str(batch[1].id) in (outcomes[1].reason or "") and "Won-ish" in (outcomes[1].reason or "")
    assert long_email[:40] in (outcomes[2].reason or "")
    with pytest.raises(FieldMappingError, match="Won-ish"):
        await notion.create_opportunity(batch[1])


async def test_text_in_a_number_column_is_reported_per_page_on_the_way_in(
    notion: NotionAdapter, workspace: Workspace
) -> None:
    kept = await notion.create_opportunity(deal("kept"))
    broken = await notion.create_opportunity(deal("broken"))
    await notion.client.data_sources.update(workspace.data_source_id, properties={"Value": {"rich_text": {}}})
    workspace.control.human_update_page(
        broken,
        {"properties": {"Value": {"rich_text": [{"text": {"content": "ten k"}}]}}},
    )

    listed = await notion.list_opportunities(OpportunityFilter())

    # The re-typed column breaks every page, each reported on its own; nothing is raised.
    assert listed == []
    errors = {error.record_id: error for error in notion.read_errors}
    assert set(errors) == {kept, broken}
    assert (errors[broken].property_name, errors[broken].field) == (
        "Value",
        "estimated_value",
    )
    assert "ten k" in str(errors[broken].value) and "expected a 'number' property" in str(errors[broken])


async def test_a_renamed_column_keeps_mapping(notion: NotionAdapter, workspace: Workspace) -> None:
    page_id = await notion.create_opportunity(deal())
    await notion.client.data_sources.update(workspace.data_source_id, properties={"Stage": {"name": "Phase"}})
    await notion.update_opportunity(page_id, OpportunityUpdate(deal_stage="Closed Won"))
    assert (await notion.get_opportunity(page_id)).deal_stage == "Closed Won"  # type: ignore[union-attr]
    renamed = workspace.adapter(bindings=notion.bindings)  # a new adapter given the persisted bindings
    try:
        assert [r.deal_stage for r in await renamed.list_opportunities(OpportunityFilter())] == ["Closed Won"]
    finally:
        await renamed.aclose()


async def test_a_plan_shaped_custom_property_map_drives_the_adapter(workspace: Workspace) -> None:
    custom = {
        "name": {"notion_name": "Opportunity", "type": "title"},
        "deal_stage": {"notion_name": "Pipeline", "type": "select"},
        "estimated_value": {"notion_name": "Amount", "type": "number"},
    }
    [source] = workspace.control.seed(
        {"databases": [{"title": "Custom deals", "properties": notion_properties_schema(custom)}]}
    )
    adapter = NotionAdapter(
        DEFAULT_TOKEN, source["database_id"], base_url=workspace.base_url, property_map=custom, rate_limit=UNPACED
    )
    try:
        page_id = await adapter.create_opportunity(deal("Globex", deal_stage="Proposal", estimated_value=Decimal(750)))
        fetched = await adapter.get_opportunity(page_id)
        [bad] = await adapter.upsert_opportunities([deal("Initech").model_copy(update={"deal_stage": "Won-ish"})])
    finally:
        await adapter.aclose()
    assert fetched is not None and (fetched.name, fetched.deal_stage, fetched.estimated_value) == (
        "Globex",
        "Proposal",
        Decimal(750),
    )
    [page] = workspace.control.all_pages(source["data_source_id"])
    assert page["properties"]["Amount"]["number"] == 750
    assert bad.action == "failed" and bad.property_name == "Pipeline"  # the stage select stays closed


# --- pacing and request bodies --------------------------------------------------------------------


async def test_the_limiter_keeps_a_burst_under_the_sandbox_rate_limit(
    notion: NotionAdapter, workspace: Workspace
) -> None:
    """The sandbox refuses what exceeds 10 requests/s (429; the adapter would retry it), so a burst
    of 34 requests answered 200 each with no 429 anywhere was paced by the client's budget."""
    records = [deal(f"deal {i}") for i in range(30)]
    assert all(o.ok for o in await notion.upsert_opportunities(records))  # unpaced set-up
    workspace.control.configure(rate_limit=10, burst=2)
    workspace.control.reset_stats()
    paced = workspace.adapter(rate_limit=RateLimit(requests_per_second=10, burst=1, max_in_flight=3))
    try:
        outcomes = await paced.upsert_opportunities([r.model_copy(update={"name": r.name + "!"}) for r in records])
    finally:
        await paced.aclose()
        workspace.control.configure(rate_limit=0)
    assert [o.action for o in outcomes] == ["updated"] * 30
    assert "429" not in workspace.control.stats()["by_status"]
    # every request of the run, each answered at the first attempt: the database, the data source,
    # the key lookups (live pages and trash) and the 30 updates
    assert workspace.requests_to("GET", "/v1/databases/{database_id}") == {"200": 1}
    assert workspace.requests_to("GET", "/v1/data_sources/{data_source_id}") == {"200": 1}
    assert workspace.requests_to("POST", "/v1/data_sources/{data_source_id}/query") == {"200": 2}
    assert workspace.requests_to("PATCH", "/v1/pages/{page_id}") == {"200": 30}


async def test_request_bodies_match_notions_schemas(notion: NotionAdapter, workspace: Workspace) -> None:
    data = deal(
        estimated_value=Decimal("1.5"),
        close_date=date(2027, 1, 1),
        contact_email="a@b.example",
    )
    page_id = await notion.create_opportunity(data)
    await notion.update_opportunity(page_id, OpportunityUpdate(probability=Decimal("0.5"), contact_name="Ann"))
    await notion.list_opportunities(OpportunityFilter(deal_stage=["Lead", "Qualified"], updated_since=NOON))
    await notion.get_changes_since(NOON)
    await notion.create_activity(ActivityCreate(opportunity_id=data.id, subject="Hello", body="y" * 2500))
    await notion.archive_opportunity(page_id)

    schemas = {
        ("POST", "/v1/pages"): "CreatePageBodyParameters",
        ("PATCH", "page"): "UpdatePageBodyParameters",
        ("POST", "query"): "QueryDataSourceBodyParameters",
        ("PATCH", "children"): "AppendBlockChildrenBodyParameters",
    }
    checked = set()
    for method, path, body in workspace.sent:
        kind = path if path == "/v1/pages" else path.rsplit("/", 1)[-1]
        kind = "page" if path.startswith("/v1/pages/") else kind
        schema = schemas.get((method, kind))
        if schema is not None:
            validate(schema, body)
            checked.add(schema)
    assert checked == set(schemas.values())
