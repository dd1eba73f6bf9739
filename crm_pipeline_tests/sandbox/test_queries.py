"""Data source queries through the real SDK: every filter operator, sorts, cursors, trash, the cap."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from notion_client import APIResponseError, AsyncClient
from notion_client.helpers import async_collect_paginated_api

from crm_pipeline.sandbox import SandboxControl

from .conftest import rows, title

ROWS = [
    {"Deal Name": "Acme renewal", "Stage": "Lead", "Value": 100, "Close Date": "2026-12-01",
     "Contact": "Jane Doe", "Email": "jane@acme.example"},
    {"Deal Name": "Globex pilot", "Stage": "Closed Won", "Value": 250.5, "Close Date": "2026-12-01T15:30:00Z",
     "Contact": "", "Email": "hank@globex.example"},
    {"Deal Name": "Initech", "Stage": "Negotiation", "Value": 400, "Close Date": "2027-01-10"},
    {"Deal Name": "acme subsidiary", "Value": None},
]  # fmt: skip

# (filter, names expected) — each operator the sandbox implements, per property family.
FILTERS: list[tuple[dict[str, Any], set[str]]] = [
    ({"property": "Deal Name", "title": {"equals": "Initech"}}, {"Initech"}),
    ({"property": "Deal Name", "title": {"does_not_equal": "Initech"}}, {"Acme renewal", "Globex pilot", "acme subsidiary"}),
    ({"property": "Deal Name", "title": {"contains": "ACME"}}, {"Acme renewal", "acme subsidiary"}),
    ({"property": "Deal Name", "title": {"does_not_contain": "acme"}}, {"Globex pilot", "Initech"}),
    ({"property": "Deal Name", "rich_text": {"starts_with": "acme"}}, {"Acme renewal", "acme subsidiary"}),
    ({"property": "Deal Name", "title": {"ends_with": "pilot"}}, {"Globex pilot"}),
    ({"property": "Contact", "rich_text": {"is_empty": True}}, {"Globex pilot", "Initech", "acme subsidiary"}),
    ({"property": "Contact", "rich_text": {"is_not_empty": True}}, {"Acme renewal"}),
    ({"property": "Contact", "rich_text": {"contains": "doe"}}, {"Acme renewal"}),
    ({"property": "Email", "email": {"ends_with": "@globex.example"}}, {"Globex pilot"}),
    ({"property": "Email", "email": {"equals": "jane@acme.example"}}, {"Acme renewal"}),
    ({"property": "Email", "email": {"is_empty": True}}, {"Initech", "acme subsidiary"}),
    ({"property": "Value", "number": {"equals": 250.5}}, {"Globex pilot"}),
    ({"property": "Value", "number": {"does_not_equal": 100}}, {"Globex pilot", "Initech", "acme subsidiary"}),
    ({"property": "Value", "number": {"greater_than": 250.5}}, {"Initech"}),
    ({"property": "Value", "number": {"less_than": 250.5}}, {"Acme renewal"}),
    ({"property": "Value", "number": {"greater_than_or_equal_to": 250.5}}, {"Globex pilot", "Initech"}),
    ({"property": "Value", "number": {"less_than_or_equal_to": 250.5}}, {"Acme renewal", "Globex pilot"}),
    ({"property": "Value", "number": {"is_empty": True}}, {"acme subsidiary"}),
    ({"property": "Value", "number": {"is_not_empty": True}}, {"Acme renewal", "Globex pilot", "Initech"}),
    ({"property": "Stage", "select": {"equals": "Lead"}}, {"Acme renewal"}),
    ({"property": "Stage", "select": {"does_not_equal": "Lead"}}, {"Globex pilot", "Initech", "acme subsidiary"}),
    ({"property": "Stage", "select": {"is_empty": True}}, {"acme subsidiary"}),
    ({"property": "Stage", "select": {"is_not_empty": True}}, {"Acme renewal", "Globex pilot", "Initech"}),
    ({"property": "Stage", "select": {"equals": "No such stage"}}, set()),
    ({"property": "Close Date", "date": {"equals": "2026-12-01"}}, {"Acme renewal", "Globex pilot"}),  # whole UTC day
    ({"property": "Close Date", "date": {"equals": "2026-12-01T15:30:00.000Z"}}, {"Globex pilot"}),
    ({"property": "Close Date", "date": {"before": "2026-12-01T15:30:00Z"}}, {"Acme renewal"}),
    ({"property": "Close Date", "date": {"after": "2026-12-01"}}, {"Initech"}),
    ({"property": "Close Date", "date": {"on_or_before": "2026-12-01"}}, {"Acme renewal", "Globex pilot"}),
    ({"property": "Close Date", "date": {"on_or_after": "2026-12-01T12:00:00+00:00"}}, {"Globex pilot", "Initech"}),
    ({"property": "Close Date", "date": {"is_empty": True}}, {"acme subsidiary"}),
    ({"property": "Close Date", "date": {"is_not_empty": True}}, {"Acme renewal", "Globex pilot", "Initech"}),
    ({"or": [{"property": "Stage", "select": {"equals": "Lead"}},
             {"and": [{"property": "Value", "number": {"greater_than": 300}},
                      {"property": "Deal Name", "title": {"starts_with": "Ini"}}]}]}, {"Acme renewal", "Initech"}),
    ({"and": [{"property": "Deal Name", "title": {"contains": "acme"}},
              {"property": "Value", "number": {"is_not_empty": True}}]}, {"Acme renewal"}),
]  # fmt: skip


SEEDED_AT = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


@pytest.fixture
def ds_id(control: SandboxControl, sandbox: Any) -> str:
    """The rows above, created at SEEDED_AT on the sandbox clock (which stays frozen there)."""
    control.set_clock(SEEDED_AT)
    return control.seed(rows(*ROWS))[0]["data_source_id"]


async def names(notion: AsyncClient, ds_id: str, **query: Any) -> list[str]:
    pages = await async_collect_paginated_api(notion.data_sources.query, data_source_id=ds_id, **query)
    return [title(page) for page in pages]


@pytest.mark.parametrize(("query_filter", "expected"), FILTERS, ids=[str(i) for i in range(len(FILTERS))])
async def test_filter_operators(
    notion: AsyncClient, ds_id: str, query_filter: dict[str, Any], expected: set[str]
) -> None:
    assert set(await names(notion, ds_id, filter=query_filter)) == expected


async def test_checkbox_filters_and_filters_by_property_id(notion: AsyncClient, ds_id: str) -> None:
    source = await notion.data_sources.update(ds_id, properties={"Hot": {"checkbox": {}}})
    hot_id = source["properties"]["Hot"]["id"]
    pages = (await notion.data_sources.query(ds_id))["results"]
    await notion.pages.update(pages[0]["id"], properties={hot_id: {"checkbox": True}})
    assert await names(notion, ds_id, filter={"property": hot_id, "checkbox": {"equals": True}}) == ["Acme renewal"]
    assert len(await names(notion, ds_id, filter={"property": "Hot", "checkbox": {"does_not_equal": True}})) == 3


async def test_timestamp_filters_use_minute_rounded_times(
    notion: AsyncClient, ds_id: str, control: SandboxControl
) -> None:
    control.set_clock(datetime(2026, 11, 28, 10, 0, 59, tzinfo=UTC))
    page = (await notion.data_sources.query(ds_id))["results"][0]
    edited = await notion.pages.update(page["id"], properties={"Value": {"number": 1}})
    assert edited["last_edited_time"] == "2026-11-28T10:00:00.000Z"
    since = {"timestamp": "last_edited_time", "last_edited_time": {"on_or_after": "2026-11-28T10:00:00Z"}}
    assert await names(notion, ds_id, filter=since) == ["Acme renewal"]
    after = {"timestamp": "last_edited_time", "last_edited_time": {"after": "2026-11-28T10:00:30Z"}}
    assert await names(notion, ds_id, filter=after) == []  # stored at 10:00:00, not 10:00:59
    before = {"timestamp": "last_edited_time", "last_edited_time": {"before": "2026-11-28T10:00:00Z"}}
    assert set(await names(notion, ds_id, filter=before)) == {"Globex pilot", "Initech", "acme subsidiary"}
    new = await notion.pages.create(
        parent={"data_source_id": ds_id}, properties={"Deal Name": {"title": [{"text": {"content": "New"}}]}}
    )
    created = {"timestamp": "created_time", "created_time": {"equals": "2026-11-28T10:00:00Z"}}
    assert await names(notion, ds_id, filter=created) == ["New"] and new["created_time"] == "2026-11-28T10:00:00.000Z"
    seeded = {"timestamp": "created_time", "created_time": {"equals": "2026-11-28T09:00:00Z"}}
    assert len(await names(notion, ds_id, filter=seeded)) == len(ROWS)


async def test_sorts_by_property_timestamp_and_select_option_order(
    notion: AsyncClient, ds_id: str, control: SandboxControl
) -> None:
    by_value = await names(notion, ds_id, sorts=[{"property": "Value", "direction": "descending"}])
    assert by_value == ["Initech", "Globex pilot", "Acme renewal", "acme subsidiary"]  # empty last
    by_stage = await names(notion, ds_id, sorts=[{"property": "Stage", "direction": "ascending"}])
    assert by_stage == ["Acme renewal", "Initech", "Globex pilot", "acme subsidiary"]  # schema option order
    control.advance_clock(120)
    pages = (await notion.data_sources.query(ds_id))["results"]
    await notion.pages.update(pages[1]["id"], properties={"Value": {"number": 7}})
    latest_first = await names(
        notion,
        ds_id,
        sorts=[
            {"timestamp": "last_edited_time", "direction": "descending"},
            {"property": "Deal Name", "direction": "ascending"},
        ],
    )
    assert latest_first[0] == "Globex pilot"
    assert latest_first[1:] == [
        "Acme renewal",
        "acme subsidiary",
        "Initech",
    ]  # ties broken by the name, case-insensitive


async def test_pagination_across_250_pages(notion: AsyncClient, control: SandboxControl, sandbox: Any) -> None:
    ds_id = control.seed(rows(*({"Deal Name": f"Deal {i:03}", "Value": i} for i in range(250))))[0]["data_source_id"]
    first = await notion.data_sources.query(ds_id, page_size=100)
    assert len(first["results"]) == 100 and first["has_more"] and first["next_cursor"]
    assert "request_status" not in first
    collected = await names(notion, ds_id, page_size=100, sorts=[{"property": "Value", "direction": "ascending"}])
    assert collected == [f"Deal {i:03}" for i in range(250)]
    requests = control.stats()["by_route"]["POST /v1/data_sources/{data_source_id}/query"]["200"]
    assert requests == 1 + 3


async def test_a_key_lookup_finds_the_pages_holding_its_keys_and_follows_edits(
    notion: AsyncClient, control: SandboxControl, sandbox: Any
) -> None:
    """The sync's lookup of keys (text `equals` under an `or`), alone and within an `and`."""
    specs = ({"Deal Name": f"Deal {i:03}", "Contact": f"key-{i % 150}", "Value": i} for i in range(300))
    ds_id = control.seed(rows(*specs))[0]["data_source_id"]
    keys = [f"key-{i}" for i in range(0, 150, 15)] + ["no such key", ""]
    lookup = {"or": [{"property": "Contact", "rich_text": {"equals": key}} for key in keys]}
    expected = [f"Deal {i:03}" for i in range(300) if i % 15 == 0]
    assert await names(notion, ds_id, filter=lookup) == expected  # in creation order, each once
    small = {"and": [lookup, {"property": "Value", "number": {"less_than": 10}}]}
    assert await names(notion, ds_id, filter=small) == ["Deal 000"]

    first = (await notion.data_sources.query(ds_id, filter={"property": "Contact", "rich_text": {"equals": "key-1"}}))[
        "results"
    ]
    await notion.pages.update(first[0]["id"], properties={"Contact": {"rich_text": [{"text": {"content": "key-0"}}]}})
    assert await names(notion, ds_id, filter=lookup) == sorted([*expected, "Deal 001"])
    assert await names(notion, ds_id, filter={"property": "Contact", "rich_text": {"equals": "key-1"}}) == ["Deal 151"]


async def test_a_key_lookup_follows_creates_trash_restores_and_schema_changes(
    notion: AsyncClient, control: SandboxControl, sandbox: Any
) -> None:
    """The index a text `equals` reads is rebuilt whenever the data source changes: a page created,
    trashed or restored, a property renamed, another one given its old name."""
    ds_id = control.seed(rows(*({"Deal Name": f"Deal {i}", "Contact": f"key-{i % 5}"} for i in range(20))))[0][
        "data_source_id"
    ]

    def lookup(prop: str = "Contact", key: str = "key-1") -> dict[str, Any]:
        return {
            "or": [{"property": prop, "rich_text": {"equals": key}}, {"property": prop, "rich_text": {"equals": "-"}}]
        }

    assert await names(notion, ds_id, filter=lookup()) == ["Deal 1", "Deal 6", "Deal 11", "Deal 16"]
    created = await notion.pages.create(
        parent={"data_source_id": ds_id},
        properties={
            "Deal Name": {"title": [{"text": {"content": "New"}}]},
            "Contact": {"rich_text": [{"text": {"content": "key-1"}}]},
        },
    )
    assert await names(notion, ds_id, filter=lookup()) == ["Deal 1", "Deal 6", "Deal 11", "Deal 16", "New"]
    trashed = (await notion.data_sources.query(ds_id, filter=lookup(key="key-2")))["results"][0]
    await notion.pages.update(trashed["id"], in_trash=True)
    await notion.pages.update(created["id"], in_trash=True)
    assert await names(notion, ds_id, filter=lookup(key="key-2")) == ["Deal 7", "Deal 12", "Deal 17"]
    assert await names(notion, ds_id, filter=lookup(key="key-2"), in_trash=True) == ["Deal 2"]
    await notion.pages.update(trashed["id"], in_trash=False)
    assert await names(notion, ds_id, filter=lookup(key="key-2")) == ["Deal 2", "Deal 7", "Deal 12", "Deal 17"]
    assert await names(notion, ds_id, filter=lookup(), in_trash=True) == ["New"]

    await notion.data_sources.update(ds_id, properties={"Contact": {"name": "Key"}})
    assert await names(notion, ds_id, filter=lookup("Key")) == ["Deal 1", "Deal 6", "Deal 11", "Deal 16"]
    await notion.data_sources.update(ds_id, properties={"Contact": {"rich_text": {}}})  # a new, empty column
    assert await names(notion, ds_id, filter=lookup()) == []
    assert await names(notion, ds_id, filter=lookup(key="")) == [f"Deal {i}" for i in range(20)]


async def test_cursor_survives_an_edit_that_moves_rows(
    notion: AsyncClient, control: SandboxControl, sandbox: Any
) -> None:
    ds_id = control.seed(rows(*({"Deal Name": f"Deal {i}", "Value": i} for i in range(10))))[0]["data_source_id"]
    first = await notion.data_sources.query(ds_id, page_size=5)
    await notion.pages.update(first["results"][0]["id"], properties={"Value": {"number": 99}})  # invalidates the result
    second = await notion.data_sources.query(ds_id, page_size=5, start_cursor=first["next_cursor"])
    assert [title(p) for p in second["results"]] == [f"Deal {i}" for i in range(5, 10)]
    assert second["has_more"] is False and second["next_cursor"] is None


async def test_result_cap_ends_the_query_incomplete(notion: AsyncClient, control: SandboxControl, sandbox: Any) -> None:
    ds_id = control.seed(rows(*({"Deal Name": f"Deal {i}"} for i in range(60))))[0]["data_source_id"]
    control.configure(result_cap=50)
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        response = await notion.data_sources.query(ds_id, page_size=20, start_cursor=cursor)
        seen.extend(response["results"])
        if not response["has_more"]:
            break
        assert "request_status" not in response
        cursor = response["next_cursor"]
    assert len(seen) == 50
    assert response["next_cursor"] is None
    assert response["request_status"] == {"type": "incomplete", "incomplete_reason": "query_result_limit_reached"}
    # Exactly at the cap is complete; a narrower query (e.g. a created_time window) is its own query.
    control.configure(result_cap=60)
    assert "request_status" not in await notion.data_sources.query(ds_id, page_size=100)


async def test_trashed_pages_are_only_in_in_trash_queries(
    notion: AsyncClient, ds_id: str, control: SandboxControl
) -> None:
    pages = (await notion.data_sources.query(ds_id))["results"]
    await notion.pages.update(pages[0]["id"], in_trash=True)
    await notion.pages.update(pages[1]["id"], archived=True)
    assert set(await names(notion, ds_id)) == {"Initech", "acme subsidiary"}
    assert set(await names(notion, ds_id, in_trash=True)) == {"Acme renewal", "Globex pilot"}
    assert len(control.all_pages(ds_id)) == 4


async def test_filter_properties_limits_the_returned_properties(notion: AsyncClient, ds_id: str) -> None:
    source = await notion.data_sources.retrieve(ds_id)
    stage_id = source["properties"]["Stage"]["id"]
    result = await notion.data_sources.query(ds_id, filter_properties=[stage_id, "title"])
    assert all(set(page["properties"]) == {"Stage", "Deal Name"} for page in result["results"])
    page = await notion.pages.retrieve(result["results"][0]["id"], filter_properties=[stage_id])
    assert set(page["properties"]) == {"Stage"}


async def test_filters_nested_three_deep_are_rejected(notion: AsyncClient, ds_id: str) -> None:
    leaf = {"property": "Value", "number": {"is_empty": True}}
    with pytest.raises(APIResponseError) as caught:
        await notion.data_sources.query(ds_id, filter={"and": [{"or": [{"and": [leaf]}]}]})
    assert caught.value.code == "validation_error" and "body.filter.and[0].or[0].and" in str(caught.value)


async def test_a_sorted_filtered_query_follows_edits_and_renames(notion: AsyncClient, ds_id: str) -> None:
    """Sort orders are cached per data source version: an edit or a rename must never reuse one."""
    query = {
        "filter": {"property": "Value", "number": {"is_not_empty": True}},
        "sorts": [{"property": "Value", "direction": "ascending"}],
    }
    assert await names(notion, ds_id, **query) == ["Acme renewal", "Globex pilot", "Initech"]
    pages = {title(page): page["id"] for page in (await notion.data_sources.query(ds_id))["results"]}
    await notion.pages.update(pages["Initech"], properties={"Value": {"number": 1}})
    assert await names(notion, ds_id, **query) == ["Initech", "Acme renewal", "Globex pilot"]

    # "Value" now names another number property, one no page has a value in, and nothing else
    # changed: the same query text must match by the new property, not replay a cached result.
    await notion.data_sources.update(
        ds_id, properties={"Value": {"name": "Old value"}, "Probability": {"name": "Value"}}
    )
    assert await names(notion, ds_id, **query) == []
