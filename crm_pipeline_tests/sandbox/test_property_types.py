"""Every property type through the real SDK against a realistic CRM (see `realistic.py`): write and
read formats as the official schemas give them, read-only types refused as Notion refuses them,
two-way relations, status groups, unique ids, formula and rollup results set through the control
surface, and each type's filters and sorts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from notion_client import APIResponseError, AsyncClient
from notion_client.helpers import async_collect_paginated_api

from crm_pipeline.sandbox import RunningSandbox, SandboxControl
from crm_pipeline.sandbox.properties import READ_ONLY_TYPES, WRITABLE_TYPES
from crm_pipeline_tests.notion_schemas import official, validate

from .conftest import title
from .realistic import ANA, ARCHIVE_DS, BEN, COMPANIES_DS, CRM_DB, DEALS_DS, SEED

SEEDED_AT = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


@pytest.fixture
def crm(control: SandboxControl, sandbox: RunningSandbox) -> dict[str, Any]:
    """The realistic CRM, seeded at SEEDED_AT (the clock stays there); the ids of its people."""
    control.set_clock(SEEDED_AT)
    control.seed(SEED)
    people = {user["name"]: user["id"] for user in control.users()}
    return {"ana": people[ANA["name"]], "ben": people[BEN["name"]]}


async def deals_by_name(notion: AsyncClient, data_source_id: str = DEALS_DS, **query: Any) -> dict[str, Any]:
    pages = await async_collect_paginated_api(notion.data_sources.query, data_source_id=data_source_id, **query)
    return {title(page, "Deal" if data_source_id != COMPANIES_DS else "Name"): page for page in pages}


async def names(notion: AsyncClient, **query: Any) -> list[str]:
    return list(await deals_by_name(notion, **query))


def validate_page(page: dict[str, Any]) -> None:
    validate("PageObjectResponse", official(page))
    for value in official(page)["properties"].values():
        validate("PagePropertyValueWithIdResponse", value)


async def test_every_type_reads_in_its_official_shape(notion: AsyncClient, crm: dict[str, str]) -> None:
    source = await notion.data_sources.retrieve(DEALS_DS)
    validate("DataSourceObjectResponse", official(source))
    assert {p["type"] for p in source["properties"].values()} == {*WRITABLE_TYPES, *READ_ONLY_TYPES} - {"select"}
    deals = await deals_by_name(notion)
    for page in deals.values():
        validate_page(page)
    acme = deals["Acme renewal"]["properties"]
    assert acme["Stage"]["status"]["name"] == "Proposal"
    assert [tag["name"] for tag in acme["Tags"]["multi_select"]] == ["VIP", "Renewal"]
    assert acme["Owner"]["people"] == [
        {"object": "user", "id": crm["ana"], "name": "Ana Ruiz", "avatar_url": None, "type": "person",
         "person": {"email": "ana@sales.example"}}
    ]  # fmt: skip
    assert acme["Hot"]["checkbox"] is True and acme["Phone"]["phone_number"] == "+44 20 7946 0000"
    assert acme["Contract"]["files"] == [
        {"name": "acme-msa.pdf", "type": "external", "external": {"url": "https://files.example/acme-msa.pdf"}}
    ]
    companies = await deals_by_name(notion, COMPANIES_DS)
    assert acme["Company"]["relation"] == [{"id": companies["Acme"]["id"]}]
    assert acme["Company"]["has_more"] is False  # real Notion sends it; the SDK's types do not
    assert acme["Weighted"]["formula"] == {"type": "number", "number": 6000}
    assert acme["Company tiers"]["rollup"]["function"] == "show_original"
    assert acme["Deal ID"]["unique_id"] == {"prefix": "DEAL", "number": 1}
    assert [deals[n]["properties"]["Deal ID"]["unique_id"]["number"] for n in deals] == [1, 2, 3, 4]
    page = deals["Umbrella"]
    assert page["properties"]["Created"]["created_time"] == page["created_time"] == "2026-11-30T09:00:00.000Z"
    assert page["properties"]["Edited"]["last_edited_time"] == page["last_edited_time"]
    assert page["properties"]["Created by"]["created_by"]["id"] == page["created_by"]["id"]
    assert page["properties"]["Edited by"]["last_edited_by"]["type"] == "person"
    assert page["properties"]["Weighted"]["formula"] == {"type": "string", "string": None}  # never set
    assert page["properties"]["Company tiers"]["rollup"] == {"type": "array", "array": [], "function": "show_original"}


async def test_every_writable_type_round_trips_in_its_write_format(
    notion: AsyncClient, crm: dict[str, str], control: SandboxControl
) -> None:
    me = await notion.users.me()
    companies = await deals_by_name(notion, COMPANIES_DS)
    properties = {
        "Deal": {"title": [{"text": {"content": "Wayne Enterprises"}}]},
        "Stage": {"status": {"name": "Lead"}},
        "Tags": {"multi_select": [{"name": "VIP"}, {"name": "Upsell"}]},  # a new option is created
        "Owner": {"people": [{"object": "user", "id": crm["ben"]}, {"id": me["id"]}]},
        "Hot": {"checkbox": True},
        "Value": {"number": 250000},
        "Close": {"date": {"start": "2027-03-01"}},
        "Website": {"url": "https://wayne.example"},
        "Phone": {"phone_number": "+1 555 0100"},
        "Email": {"email": "bruce@wayne.example"},
        "Notes": {"rich_text": [{"text": {"content": "Board sponsor"}}]},
        "Contract": {"files": [{"name": "NDA", "external": {"url": "https://files.example/nda.pdf"}}]},
        "Company": {"relation": [{"id": companies["Globex"]["id"]}]},
    }
    body = {"parent": {"data_source_id": DEALS_DS}, "properties": properties}
    validate("CreatePageBodyParameters", body)
    created = await notion.pages.create(**body)
    validate_page(created)
    read = created["properties"]
    assert read["Stage"]["status"]["name"] == "Lead"
    assert [tag["name"] for tag in read["Tags"]["multi_select"]] == ["VIP", "Upsell"]
    assert [person["id"] for person in read["Owner"]["people"]] == [crm["ben"], me["id"]]
    assert read["Owner"]["people"][1]["type"] == "bot"
    assert read["Contract"]["files"][0]["external"]["url"] == "https://files.example/nda.pdf"
    assert read["Deal ID"]["unique_id"] == {"prefix": "DEAL", "number": 5}
    assert read["Created by"]["created_by"]["id"] == read["Edited by"]["last_edited_by"]["id"] == me["id"]

    stage_id = read["Stage"]["status"]["id"]
    cleared = {
        "Stage": {"status": {"id": stage_id}},
        "Tags": {"multi_select": []},
        "Owner": {"people": []},
        "Hot": {"checkbox": False},
        "Website": {"url": None},
        "Phone": {"phone_number": None},
        "Contract": {"files": []},
        "Company": {"relation": []},
    }
    validate("UpdatePageBodyParameters", {"properties": cleared})
    updated = await notion.pages.update(created["id"], properties=cleared)
    validate_page(updated)
    values = {name: value[value["type"]] for name, value in updated["properties"].items()}
    assert values["Stage"]["name"] == "Lead"
    assert [values[name] for name in ("Tags", "Owner", "Hot", "Website", "Phone", "Contract", "Company")] == [
        [], [], False, None, None, [], []
    ]  # fmt: skip
    source = await notion.data_sources.retrieve(DEALS_DS)
    assert "Upsell" in {option["name"] for option in source["properties"]["Tags"]["multi_select"]["options"]}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Weighted", {"formula": {"number": 1}}),
        ("Company tiers", {"rollup": {"number": 1}}),
        ("Deal ID", {"unique_id": {"number": 9}}),
        ("Created", {"created_time": "2026-01-01T00:00:00.000Z"}),
        ("Created by", {"created_by": {"id": "6f1c3e0a-5b7d-4c2e-9a8f-1d2b3c4d5e6f"}}),
        ("Edited", {"last_edited_time": "2026-01-01T00:00:00.000Z"}),
        ("Edited by", {"last_edited_by": {"id": "6f1c3e0a-5b7d-4c2e-9a8f-1d2b3c4d5e6f"}}),
        ("Weighted", {"number": 1}),  # a writable shape does not make a formula writable
    ],
)
async def test_read_only_types_are_refused_as_notion_refuses_them(
    notion: AsyncClient, crm: dict[str, str], name: str, value: dict[str, Any]
) -> None:
    page = (await deals_by_name(notion))["Umbrella"]
    with pytest.raises(APIResponseError) as caught:
        await notion.pages.update(page["id"], properties={name: value, "Hot": {"checkbox": True}})
    assert caught.value.status == 400 and caught.value.code == "validation_error"
    lines = str(caught.value).splitlines()
    assert lines[0] == "body failed validation. Fix one:"
    assert lines[1:] == [
        f"body.properties.{name}.{kind} should be defined, instead was `undefined`." for kind in WRITABLE_TYPES
    ]
    assert (await notion.pages.retrieve(page["id"]))["properties"]["Hot"]["checkbox"] is False


async def test_status_options_come_with_groups_and_are_never_created_by_a_write(
    notion: AsyncClient, crm: dict[str, str]
) -> None:
    status = (await notion.data_sources.retrieve(DEALS_DS))["properties"]["Stage"]["status"]
    ids = {option["name"]: option["id"] for option in status["options"]}
    assert [(g["name"], g["option_ids"]) for g in status["groups"]] == [
        ("To-do", [ids["Lead"]]), ("In progress", [ids["Proposal"]]), ("Complete", [ids["Won"], ids["Lost"]]),
    ]  # fmt: skip
    page = (await deals_by_name(notion))["Umbrella"]
    with pytest.raises(APIResponseError, match="Invalid status option 'Negotiating'"):
        await notion.pages.update(page["id"], properties={"Stage": {"status": {"name": "Negotiating"}}})
    with pytest.raises(APIResponseError, match="status options and groups can't be set through the API"):
        await notion.data_sources.update(DEALS_DS, properties={"Stage": {"status": {"options": [{"name": "X"}]}}})
    fresh = await notion.data_sources.update(DEALS_DS, properties={"Progress": {"status": {}}})
    defaults = fresh["properties"]["Progress"]["status"]
    assert [o["name"] for o in defaults["options"]] == ["Not started", "In progress", "Done"]
    assert [g["name"] for g in defaults["groups"]] == ["To-do", "In progress", "Complete"]
    validate("DataSourceObjectResponse", official(fresh))


async def test_a_two_way_relation_is_kept_on_both_sides(notion: AsyncClient, crm: dict[str, str]) -> None:
    deals, companies = await deals_by_name(notion), await deals_by_name(notion, COMPANIES_DS)
    companies_schema = (await notion.data_sources.retrieve(COMPANIES_DS))["properties"]
    deals_schema = (await notion.data_sources.retrieve(DEALS_DS))["properties"]
    back = companies_schema["Related to Deals (Company)"]
    assert back["relation"] == {
        "data_source_id": DEALS_DS, "database_id": CRM_DB, "type": "dual_property",
        "dual_property": {"synced_property_id": deals_schema["Company"]["id"], "synced_property_name": "Company"},
    }  # fmt: skip
    assert deals_schema["Company"]["relation"]["dual_property"]["synced_property_id"] == back["id"]
    assert companies["Acme"]["properties"]["Related to Deals (Company)"]["relation"] == [
        {"id": deals["Acme renewal"]["id"]}
    ]

    await notion.pages.update(
        deals["Umbrella"]["id"], properties={"Company": {"relation": [{"id": companies["Acme"]["id"]}]}}
    )
    await notion.pages.update(deals["Acme renewal"]["id"], properties={"Company": {"relation": []}})
    acme = await notion.pages.retrieve(companies["Acme"]["id"])
    assert acme["properties"]["Related to Deals (Company)"]["relation"] == [{"id": deals["Umbrella"]["id"]}]
    assert acme["last_edited_time"] == companies["Acme"]["last_edited_time"]

    # Writing the other side moves this one; renaming or deleting one side carries the other along.
    await notion.pages.update(companies["Globex"]["id"], properties={"Related to Deals (Company)": {"relation": []}})
    assert (await notion.pages.retrieve(deals["Globex pilot"]["id"]))["properties"]["Company"]["relation"] == []
    renamed = await notion.data_sources.update(DEALS_DS, properties={"Company": {"name": "Account"}})
    assert renamed["properties"]["Account"]["id"] == deals_schema["Company"]["id"]
    back_side = (await notion.data_sources.retrieve(COMPANIES_DS))["properties"]["Related to Deals (Company)"]
    assert back_side["relation"]["dual_property"]["synced_property_name"] == "Account"
    await notion.data_sources.update(DEALS_DS, properties={"Account": None, "Company tiers": None})
    assert "Related to Deals (Company)" not in (await notion.data_sources.retrieve(COMPANIES_DS))["properties"]


async def test_a_relation_names_pages_of_its_data_source(notion: AsyncClient, crm: dict[str, str]) -> None:
    deals = await deals_by_name(notion)
    with pytest.raises(APIResponseError, match="Could not find page with ID"):
        await notion.pages.update(
            deals["Umbrella"]["id"], properties={"Company": {"relation": [{"id": deals["Initech"]["id"]}]}}
        )
    with pytest.raises(APIResponseError, match="Could not find user with ID"):
        await notion.pages.update(
            deals["Umbrella"]["id"], properties={"Owner": {"people": [{"id": deals["Initech"]["id"]}]}}
        )


async def test_unique_ids_number_pages_in_creation_order(notion: AsyncClient, crm: dict[str, str]) -> None:
    archive = await notion.data_sources.update(ARCHIVE_DS, properties={"Ref": {"unique_id": {"prefix": None}}})
    assert archive["properties"]["Ref"]["unique_id"] == {"prefix": None}
    hooli = (await deals_by_name(notion, ARCHIVE_DS))["Hooli"]
    assert hooli["properties"]["Ref"]["unique_id"] == {"prefix": None, "number": 1}  # existing pages are numbered
    created = await notion.pages.create(parent={"data_source_id": ARCHIVE_DS}, properties={})
    assert created["properties"]["Ref"]["unique_id"]["number"] == 2


async def test_formula_and_rollup_results_are_set_through_the_control_surface(
    notion: AsyncClient, crm: dict[str, str], control: SandboxControl
) -> None:
    page = (await deals_by_name(notion))["Umbrella"]
    control.advance_clock(3600)
    answer = control.set_computed(
        page["id"],
        {
            "Weighted": {"type": "date", "date": {"start": "2027-01-01"}},
            "Company tiers": {"type": "number", "number": 2},
        },
    )
    assert answer["properties"]["Weighted"]["formula"] == {
        "type": "date", "date": {"start": "2027-01-01", "end": None, "time_zone": None}
    }  # fmt: skip
    assert answer["properties"]["Company tiers"]["rollup"] == {
        "type": "number",
        "number": 2,
        "function": "show_original",
    }
    read = await notion.pages.retrieve(page["id"])
    validate_page(read)
    assert read["last_edited_time"] == page["last_edited_time"]  # nobody edited the page
    assert read["properties"]["Weighted"] == answer["properties"]["Weighted"]
    control.set_computed(page["id"], {"Weighted": None})
    assert (await notion.pages.retrieve(page["id"]))["properties"]["Weighted"]["formula"]["type"] == "string"
    for bad in (
        {"Weighted": {"type": "array", "array": []}},
        {"Weighted": {"type": "number", "number": "1"}},
        {"Hot": {"type": "boolean", "boolean": True}},
        {"Company tiers": {"type": "array", "array": [{"type": "select", "select": {"color": "red"}}]}},
    ):
        with pytest.raises(httpx.HTTPStatusError, match="400"):
            control.set_computed(page["id"], bad)


ALL = {"Acme renewal", "Globex pilot", "Initech", "Umbrella"}
# (filter, deals expected); "<acme>", "<ana>", "<ben>" and "<human>" stand for ids known at run time.
FILTERS: list[tuple[dict[str, Any], set[str]]] = [
    ({"property": "Stage", "status": {"equals": "Lead"}}, {"Globex pilot"}),
    ({"property": "Stage", "status": {"equals": ["Lead", "Won"]}}, {"Globex pilot", "Initech"}),
    ({"property": "Stage", "status": {"does_not_equal": "Lead"}}, ALL - {"Globex pilot"}),
    ({"property": "Stage", "status": {"is_empty": True}}, {"Umbrella"}),
    ({"property": "Stage", "status": {"is_not_empty": True}}, ALL - {"Umbrella"}),
    ({"property": "Tags", "multi_select": {"contains": "VIP"}}, {"Acme renewal"}),
    ({"property": "Tags", "multi_select": {"contains": ["EMEA", "Renewal"]}}, {"Acme renewal", "Globex pilot"}),
    ({"property": "Tags", "multi_select": {"does_not_contain": "VIP"}}, ALL - {"Acme renewal"}),
    ({"property": "Tags", "multi_select": {"contains": "No such tag"}}, set()),
    ({"property": "Tags", "multi_select": {"is_empty": True}}, {"Initech", "Umbrella"}),
    ({"property": "Owner", "people": {"contains": "<ana>"}}, {"Acme renewal", "Globex pilot"}),
    ({"property": "Owner", "people": {"contains": "<ben>"}}, {"Globex pilot"}),
    ({"property": "Owner", "people": {"does_not_contain": "<ana>"}}, {"Initech", "Umbrella"}),
    ({"property": "Owner", "people": {"is_not_empty": True}}, {"Acme renewal", "Globex pilot"}),
    ({"property": "Owner", "people": {"contains": "me"}}, set()),
    ({"property": "Created by", "created_by": {"contains": "<human>"}}, ALL),
    ({"property": "Edited by", "last_edited_by": {"does_not_contain": "<human>"}}, set()),
    ({"property": "Hot", "checkbox": {"equals": True}}, {"Acme renewal"}),
    ({"property": "Hot", "checkbox": {"does_not_equal": True}}, ALL - {"Acme renewal"}),
    ({"property": "Company", "relation": {"contains": "<acme>"}}, {"Acme renewal"}),
    ({"property": "Company", "relation": {"does_not_contain": "<acme>"}}, ALL - {"Acme renewal"}),
    ({"property": "Company", "relation": {"is_empty": True}}, {"Initech", "Umbrella"}),
    ({"property": "Contract", "files": {"is_not_empty": True}}, {"Acme renewal"}),
    ({"property": "Contract", "files": {"is_empty": True}}, ALL - {"Acme renewal"}),
    ({"property": "Website", "url": {"contains": "ACME"}}, {"Acme renewal"}),
    ({"property": "Phone", "phone_number": {"starts_with": "+44"}}, {"Acme renewal"}),
    ({"property": "Email", "email": {"is_empty": True}}, ALL - {"Acme renewal"}),
    ({"property": "Deal ID", "unique_id": {"equals": 2}}, {"Globex pilot"}),
    ({"property": "Deal ID", "unique_id": {"greater_than": 2}}, {"Initech", "Umbrella"}),
    ({"property": "Deal ID", "unique_id": {"less_than_or_equal_to": 1}}, {"Acme renewal"}),
    ({"property": "Weighted", "formula": {"number": {"greater_than": 3000}}}, {"Acme renewal"}),
    ({"property": "Weighted", "formula": {"number": {"is_not_empty": True}}}, {"Acme renewal", "Globex pilot"}),
    ({"property": "Weighted", "formula": {"string": {"equals": "n/a"}}}, {"Initech"}),
    ({"property": "Weighted", "formula": {"string": {"is_empty": True}}}, {"Umbrella"}),  # numbers are not strings
    ({"property": "Weighted", "formula": {"checkbox": {"equals": False}}}, set()),
    ({"property": "Weighted", "formula": {"date": {"is_empty": True}}}, set()),
    ({"property": "Company tiers", "rollup": {"any": {"multi_select": {"contains": "Enterprise"}}}}, {"Acme renewal"}),
    ({"property": "Company tiers", "rollup": {"none": {"multi_select": {"contains": "Enterprise"}}}},
     ALL - {"Acme renewal"}),
    ({"property": "Company tiers", "rollup": {"every": {"multi_select": {"contains": "SMB"}}}}, ALL - {"Acme renewal"}),
    ({"property": "Company tiers", "rollup": {"number": {"is_empty": True}}}, set()),  # arrays are not numbers
    ({"property": "Created", "created_time": {"on_or_after": "2026-11-30"}}, ALL),
    ({"property": "Edited", "last_edited_time": {"before": "2026-11-30T09:00:00Z"}}, set()),
    ({"and": [{"property": "Owner", "people": {"contains": "<ana>"}},
              {"property": "Stage", "status": {"equals": "Lead"}}]}, {"Globex pilot"}),
]  # fmt: skip


def with_ids(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {key: with_ids(item, ids) for key, item in value.items()}
    if isinstance(value, list):
        return [with_ids(item, ids) for item in value]
    return ids.get(value, value) if isinstance(value, str) else value


@pytest.mark.parametrize(("query_filter", "expected"), FILTERS, ids=[str(i) for i in range(len(FILTERS))])
async def test_filters_per_type(
    notion: AsyncClient,
    crm: dict[str, str],
    control: SandboxControl,
    query_filter: dict[str, Any],
    expected: set[str],
) -> None:
    companies = await deals_by_name(notion, COMPANIES_DS)
    human = next(user["id"] for user in control.users() if user["name"] == "Sandbox Human")
    ids = {"<acme>": companies["Acme"]["id"], "<ana>": crm["ana"], "<ben>": crm["ben"], "<human>": human}
    query = {"filter": with_ids(query_filter, ids)}
    validate("QueryDataSourceBodyParameters", query)
    assert set(await names(notion, **query)) == expected


async def test_me_is_the_asking_integration(notion: AsyncClient, crm: dict[str, str]) -> None:
    me = await notion.users.me()
    umbrella = (await deals_by_name(notion))["Umbrella"]
    await notion.pages.update(umbrella["id"], properties={"Owner": {"people": [{"id": me["id"]}]}})
    assert await names(notion, filter={"property": "Owner", "people": {"contains": "me"}}) == ["Umbrella"]
    assert await names(notion, filter={"property": "Edited by", "last_edited_by": {"contains": "me"}}) == ["Umbrella"]


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ({"property": "Stage", "direction": "ascending"}, ["Globex pilot", "Acme renewal", "Initech", "Umbrella"]),
        ({"property": "Deal ID", "direction": "descending"}, ["Umbrella", "Initech", "Globex pilot", "Acme renewal"]),
        ({"property": "Owner", "direction": "ascending"}, ["Acme renewal", "Globex pilot", "Initech", "Umbrella"]),
        ({"property": "Owner", "direction": "descending"}, ["Globex pilot", "Acme renewal", "Initech", "Umbrella"]),
        ({"property": "Tags", "direction": "descending"}, ["Globex pilot", "Acme renewal", "Initech", "Umbrella"]),
        ({"property": "Hot", "direction": "descending"}, ["Acme renewal", "Globex pilot", "Initech", "Umbrella"]),
        ({"property": "Weighted", "direction": "ascending"}, ["Globex pilot", "Acme renewal", "Initech", "Umbrella"]),
        ({"property": "Company", "direction": "descending"}, ["Acme renewal", "Globex pilot", "Initech", "Umbrella"]),
        ({"property": "Created", "direction": "ascending"}, ["Acme renewal", "Globex pilot", "Initech", "Umbrella"]),
    ],
)
async def test_sorts_per_type(
    notion: AsyncClient, crm: dict[str, str], sort: dict[str, Any], expected: list[str]
) -> None:
    assert await names(notion, sorts=[sort]) == expected


async def test_timestamp_properties_follow_the_page(
    notion: AsyncClient, crm: dict[str, str], control: SandboxControl
) -> None:
    control.set_clock(SEEDED_AT + timedelta(minutes=5, seconds=30))
    edited = await notion.pages.update(
        (await deals_by_name(notion))["Initech"]["id"], properties={"Hot": {"checkbox": True}}
    )
    assert edited["properties"]["Edited"]["last_edited_time"] == "2026-11-30T09:05:00.000Z"
    assert edited["properties"]["Created"]["created_time"] == "2026-11-30T09:00:00.000Z"
    since = {"property": "Edited", "last_edited_time": {"on_or_after": "2026-11-30T09:05:00Z"}}
    assert await names(notion, filter=since) == ["Initech"]
    latest = await names(notion, sorts=[{"property": "Edited", "direction": "descending"}])
    assert latest[0] == "Initech"
