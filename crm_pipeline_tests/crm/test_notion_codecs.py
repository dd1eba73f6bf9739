"""Tests of the Notion codecs and property map: every property type both ways, errors, id binding."""

from __future__ import annotations

import dataclasses
import json
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm_pipeline.crm.errors import FieldMappingError, PropertySchemaError
from crm_pipeline.crm.notion.codecs import (
    from_notion_properties,
    read_sync_key,
    sync_key_property,
    to_notion_properties,
)
from crm_pipeline.crm.notion.properties import (
    NOTION_PROPERTY_MAP,
    SYNC_KEY,
    SYNC_KEY_PROPERTY,
    SYNCED_PROPERTY_MAP,
    NotionProperty,
    PropertyMap,
    as_property_map,
    notion_properties_schema,
    property_bindings,
    resolve_property_ids,
)
from crm_pipeline.models import DEAL_STAGES, OPPORTUNITY_FIELDS, OpportunityCreate, OpportunityUpdate
from crm_pipeline.sync.ownership import DEFAULT_FIELD_OWNERSHIP

# --- a stand-in for what Notion does between a write and the next read ---------------------------


def _echo_payload(kind: str, payload: Any) -> Any:
    """The read shape Notion returns for a written payload (plain_text, select id/color, …)."""
    if kind in ("title", "rich_text"):
        return [
            {
                **item,
                "annotations": {"bold": False, "italic": False, "code": False, "color": "default"},
                "plain_text": item["text"]["content"],
                "href": None,
            }
            for item in payload
        ]
    if kind == "select" and payload is not None:
        return {"id": "opt-" + payload["name"][:4], "name": payload["name"], "color": "default"}
    return payload


def notion_echo(body: dict[str, Any], property_map: PropertyMap) -> dict[str, Any]:
    """Page ``properties`` as Notion would return them after the write ``body``.

    The body goes through JSON (as on the wire); pages are keyed by name with the id inside, even
    when the write was keyed by id.
    """
    wire = json.loads(json.dumps(body))
    by_key = {prop.key: prop for prop in as_property_map(property_map).values()}
    page: dict[str, Any] = {}
    for key, value in wire.items():
        prop = by_key[key]
        ((kind, payload),) = value.items()
        page[prop.name] = {"id": prop.id or f"id-{prop.name}", "type": kind, kind: _echo_payload(kind, payload)}
    return page


def round_trip(field: str, value: Any, property_map: PropertyMap = NOTION_PROPERTY_MAP) -> Any:
    body = to_notion_properties({field: value}, property_map)
    return from_notion_properties(notion_echo(body, property_map), property_map)[field]


# --- a data source schema and a page as Notion returns them --------------------------------------

SCHEMA: dict[str, Any] = {
    "Deal Name": {"id": "title", "name": "Deal Name", "type": "title", "title": {}},
    "Stage": {
        "id": "%3AsTg",
        "name": "Stage",
        "type": "select",
        "select": {
            "options": [
                {"id": "a1", "name": "Prospecting", "color": "gray", "description": None},
                {"id": "a2", "name": "Negotiation", "color": "orange", "description": None},
            ]
        },
    },
    "Value": {"id": "vAl%3D", "name": "Value", "type": "number", "number": {"format": "dollar"}},
    "Close Date": {"id": "cLd%7C", "name": "Close Date", "type": "date", "date": {}},
    "Product": {"id": "pRd%5E", "name": "Product", "type": "select", "select": {"options": []}},
    "Probability": {"id": "pRb%40", "name": "Probability", "type": "number", "number": {"format": "percent"}},
    "Source": {"id": "sRc~", "name": "Source", "type": "select", "select": {"options": []}},
    "Contact": {"id": "cNt%3F", "name": "Contact", "type": "rich_text", "rich_text": {}},
    "Email": {"id": "eMl%5B", "name": "Email", "type": "email", "email": {}},
    "Sync Key": {"id": "sYk", "name": "Sync Key", "type": "rich_text", "rich_text": {}},
    "Owner": {"id": "oWn", "name": "Owner", "type": "people", "people": {}},
}


def _rich(text: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": {"content": text, "link": None}, "plain_text": text, "href": None}]


PAGE_PROPERTIES: dict[str, Any] = {
    "Deal Name": {"id": "title", "type": "title", "title": _rich("Acme Corp renewal")},
    "Stage": {"id": "%3AsTg", "type": "select", "select": {"id": "a2", "name": "Negotiation", "color": "orange"}},
    "Value": {"id": "vAl%3D", "type": "number", "number": 12000},
    "Close Date": {"id": "cLd%7C", "type": "date", "date": {"start": "2026-12-15", "end": None, "time_zone": None}},
    "Product": {"id": "pRd%5E", "type": "select", "select": {"id": "c3", "name": "Enterprise", "color": "blue"}},
    "Probability": {"id": "pRb%40", "type": "number", "number": 0.6},
    "Source": {"id": "sRc~", "type": "select", "select": None},
    "Contact": {"id": "cNt%3F", "type": "rich_text", "rich_text": _rich("Jane Doe")},
    "Email": {"id": "eMl%5B", "type": "email", "email": "jane.doe@acme.example"},
    "Owner": {"id": "oWn", "type": "people", "people": []},
    "Last edited": {"id": "lEd", "type": "last_edited_time", "last_edited_time": "2026-11-27T16:42:00.000Z"},
}

EXPECTED_FIELDS = {
    "name": "Acme Corp renewal",
    "deal_stage": "Negotiation",
    "estimated_value": Decimal("12000"),
    "close_date": date(2026, 12, 15),
    "product_line": "Enterprise",
    "probability": Decimal("0.6"),
    "source": None,
    "contact_name": "Jane Doe",
    "contact_email": "jane.doe@acme.example",
}


def test_property_map_is_the_plan_and_names_real_fields() -> None:
    assert NOTION_PROPERTY_MAP == {
        "name": {"notion_name": "Deal Name", "type": "title"},
        "deal_stage": {"notion_name": "Stage", "type": "select"},
        "estimated_value": {"notion_name": "Value", "type": "number"},
        "close_date": {"notion_name": "Close Date", "type": "date"},
        "product_line": {"notion_name": "Product", "type": "select"},
        "probability": {"notion_name": "Probability", "type": "number"},
        "source": {"notion_name": "Source", "type": "select"},
        "contact_name": {"notion_name": "Contact", "type": "rich_text"},
        "contact_email": {"notion_name": "Email", "type": "email"},
    }
    assert set(NOTION_PROPERTY_MAP) <= set(OPPORTUNITY_FIELDS)
    assert as_property_map(NOTION_PROPERTY_MAP)["deal_stage"] == NotionProperty("Stage", "select", closed=True)
    assert not as_property_map(NOTION_PROPERTY_MAP)["source"].closed


def test_code_written_against_the_plans_map_runs_unchanged() -> None:
    title = NOTION_PROPERTY_MAP["name"]["notion_name"]
    body = to_notion_properties({"name": "Acme", "estimated_value": 5000}, NOTION_PROPERTY_MAP)
    assert body == {title: {"title": [{"type": "text", "text": {"content": "Acme"}}]}, "Value": {"number": 5000}}
    properties = {
        spec["notion_name"]: PAGE_PROPERTIES[spec["notion_name"]]
        for spec in NOTION_PROPERTY_MAP.values()
        if spec["type"] != "date"
    }
    fields = from_notion_properties(properties, NOTION_PROPERTY_MAP)
    assert fields == {name: value for name, value in EXPECTED_FIELDS.items() if name != "close_date"}


def test_a_plan_shaped_custom_map_round_trips() -> None:
    custom = {
        "name": {"notion_name": "Opportunity", "type": "title"},
        "deal_stage": {"notion_name": "Pipeline", "type": "select"},
        "estimated_value": {"notion_name": "Amount", "type": "number"},
        "close_date": {"notion_name": "Expected close", "type": "date"},
        "contact_email": {"notion_name": "Buyer email", "type": "email"},
    }
    values = {
        "name": "Globex expansion",
        "deal_stage": "Proposal",
        "estimated_value": Decimal("7500.25"),
        "close_date": date(2027, 6, 30),
        "contact_email": "buyer@globex.example",
    }
    body = to_notion_properties(values, custom)
    assert set(body) == {"Opportunity", "Pipeline", "Amount", "Expected close", "Buyer email"}
    assert from_notion_properties(notion_echo(body, custom), custom) == values
    # the deal stage stays a closed select in a plan-shaped map once bound to a schema
    schema = notion_properties_schema(custom, sync_key=None)
    as_returned = {
        name: {"id": name, "name": name, "type": next(iter(config))} | config for name, config in schema.items()
    }
    with pytest.raises(FieldMappingError, match="not an option"):
        to_notion_properties({"deal_stage": "Won-ish"}, resolve_property_ids(custom, as_returned))


@pytest.mark.parametrize(
    "entry",
    [{"name": "Deal Name", "type": "title"}, {"notion_name": "Deal Name", "type": "people"}, ("Deal Name", "title")],
)
def test_a_map_entry_of_neither_shape_is_refused_by_field(entry: Any) -> None:
    with pytest.raises(TypeError, match="entry for 'name' must be a NotionProperty or"):
        to_notion_properties({"name": "Acme"}, {"name": entry})


# --- writing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("name", "Acme", {"Deal Name": {"title": [{"type": "text", "text": {"content": "Acme"}}]}}),
        ("contact_name", "Jane", {"Contact": {"rich_text": [{"type": "text", "text": {"content": "Jane"}}]}}),
        ("deal_stage", " Won ", {"Stage": {"select": {"name": "Won"}}}),
        ("estimated_value", Decimal("1234.56"), {"Value": {"number": 1234.56}}),
        ("probability", Decimal("0.1"), {"Probability": {"number": 0.1}}),
        (
            "close_date",
            date(2025, 10, 1),
            {"Close Date": {"date": {"start": "2025-10-01", "end": None, "time_zone": None}}},
        ),
        ("contact_email", "a@b.com", {"Email": {"email": "a@b.com"}}),
    ],
)
def test_write_shape_per_type(field: str, value: Any, expected: dict[str, Any]) -> None:
    assert to_notion_properties({field: value}) == expected


def test_integral_numbers_are_sent_as_ints() -> None:
    body = to_notion_properties({"estimated_value": Decimal("12000.00")})
    assert body == {"Value": {"number": 12000}}
    assert type(body["Value"]["number"]) is int


@pytest.mark.parametrize("empty", [None, ""])
def test_none_and_empty_string_clear(empty: str | None) -> None:
    fields = ["name", "contact_name", "deal_stage", "contact_email"]
    assert to_notion_properties(dict.fromkeys(fields, empty)) == {
        "Deal Name": {"title": []},
        "Contact": {"rich_text": []},
        "Stage": {"select": None},
        "Email": {"email": None},
    }


def test_none_clears_number_and_date() -> None:
    body = to_notion_properties({"estimated_value": None, "probability": None, "close_date": None})
    assert body == {"Value": {"number": None}, "Probability": {"number": None}, "Close Date": {"date": None}}


def test_only_present_mapped_fields_are_written() -> None:
    update = OpportunityUpdate(deal_stage="Closed Won", custom_notes="not in Notion")
    assert to_notion_properties(update.changes()) == {"Stage": {"select": {"name": "Closed Won"}}}


def test_a_model_writes_all_its_mapped_fields() -> None:
    body = to_notion_properties(OpportunityCreate(name="Acme"))
    assert set(body) == {spec["notion_name"] for spec in NOTION_PROPERTY_MAP.values()}
    assert body["Stage"] == {"select": {"name": "Lead"}}
    assert body["Value"] == {"number": None}


def test_text_is_split_at_2000_chars() -> None:
    assert len(to_notion_properties({"name": "x" * 2000})["Deal Name"]["title"]) == 1
    items = to_notion_properties({"name": "x" * 2001})["Deal Name"]["title"]
    assert [len(item["text"]["content"]) for item in items] == [2000, 1]


def test_text_is_split_by_utf16_length_without_breaking_a_surrogate_pair() -> None:
    items = to_notion_properties({"name": "x" + "😀" * 1000})["Deal Name"]["title"]
    contents = [item["text"]["content"] for item in items]
    assert contents == ["x" + "😀" * 999, "😀"]
    assert all(len(c.encode("utf-16-le")) // 2 <= 2000 for c in contents)


def test_text_over_100_items_is_a_mapping_error() -> None:
    assert len(to_notion_properties({"contact_name": "y" * 200_000})["Contact"]["rich_text"]) == 100
    with pytest.raises(FieldMappingError, match="101 items"):
        to_notion_properties({"contact_name": "y" * 200_001}, record_id="r1")


def test_comma_in_select_names_record_property_and_value() -> None:
    with pytest.raises(FieldMappingError) as caught:
        to_notion_properties({"product_line": "Hardware, Software"}, record_id="opp-7")
    error = caught.value
    assert (error.record_id, error.field, error.property_name) == ("opp-7", "product_line", "Product")
    assert "record opp-7" in str(error) and "'Product'" in str(error) and "'Hardware, Software'" in str(error)
    assert "comma" in str(error)


def test_select_over_100_chars_is_a_mapping_error() -> None:
    to_notion_properties({"source": "s" * 100})
    with pytest.raises(FieldMappingError, match="at most 100"):
        to_notion_properties({"source": "s" * 101})


def test_long_email_is_a_mapping_error_with_a_truncated_value() -> None:
    email = "a" * 190 + "@example.com"
    with pytest.raises(FieldMappingError, match="at most 200") as caught:
        to_notion_properties({"contact_email": email}, record_id="r1")
    assert email not in str(caught.value) and "(204 chars)" in str(caught.value)


@pytest.mark.parametrize("bad", [Decimal("NaN"), Decimal("Infinity"), float("nan"), float("-inf")])
def test_nan_and_infinity_are_refused(bad: Any) -> None:
    with pytest.raises(FieldMappingError, match="NaN and infinity"):
        to_notion_properties({"estimated_value": bad})


def test_a_number_a_double_cannot_hold_is_refused() -> None:
    with pytest.raises(FieldMappingError, match="significant digits"):
        to_notion_properties({"estimated_value": Decimal("1234567890123456.78")})


@pytest.mark.parametrize(
    ("field", "value"),
    [("estimated_value", "12"), ("estimated_value", True), ("close_date", "2025-10-01"), ("name", 5)],
)
def test_wrong_python_type_is_a_mapping_error(field: str, value: Any) -> None:
    with pytest.raises(FieldMappingError, match="expected"):
        to_notion_properties({field: value})


# --- reading -------------------------------------------------------------------------------------


def test_read_a_page() -> None:
    assert from_notion_properties(PAGE_PROPERTIES) == EXPECTED_FIELDS


def test_unmapped_properties_are_ignored_and_missing_ones_omitted() -> None:
    page = {"Stage": PAGE_PROPERTIES["Stage"], "Owner": PAGE_PROPERTIES["Owner"], "Extra": {"id": "x"}}
    assert from_notion_properties(page) == {"deal_stage": "Negotiation"}


def test_empty_values_read_as_none() -> None:
    page = {
        "Deal Name": {"id": "title", "type": "title", "title": []},
        "Contact": {"id": "c", "type": "rich_text", "rich_text": _rich("")},
        "Value": {"id": "v", "type": "number", "number": None},
        "Close Date": {"id": "d", "type": "date", "date": None},
        "Email": {"id": "e", "type": "email", "email": None},
    }
    assert from_notion_properties(page) == dict.fromkeys(
        ["name", "contact_name", "estimated_value", "close_date", "contact_email"]
    )


def test_split_text_is_joined_from_plain_text() -> None:
    page = {"Contact": {"id": "c", "type": "rich_text", "rich_text": _rich("Jane ") + _rich("Doe")}}
    assert from_notion_properties(page) == {"contact_name": "Jane Doe"}


def test_numbers_read_without_float_drift() -> None:
    page = {"Probability": {"id": "p", "type": "number", "number": 0.1}}
    assert from_notion_properties(page)["probability"] == Decimal("0.1")
    assert str(from_notion_properties(page)["probability"]) == "0.1"


@pytest.mark.parametrize(
    ("date_value", "expected"),
    [
        ({"start": "2025-10-01"}, date(2025, 10, 1)),
        ({"start": "2025-10-01T09:00:00.000+02:00"}, date(2025, 10, 1)),
        ({"start": "2025-10-01T23:30:00.000Z"}, date(2025, 10, 1)),
        ({"start": "2025-10-01T01:00:00.000+02:00", "time_zone": None}, date(2025, 10, 1)),
        # the date on the wall clock of time_zone when Notion gives one
        ({"start": "2025-10-01T23:30:00.000Z", "time_zone": "Europe/Berlin"}, date(2025, 10, 2)),
        ({"start": "2025-10-01T01:00:00.000+02:00", "time_zone": "America/Los_Angeles"}, date(2025, 9, 30)),
        ({"start": "2025-10-01T23:30:00.000", "time_zone": "America/New_York"}, date(2025, 10, 1)),
        ({"start": "2025-10-01", "end": "2025-10-31", "time_zone": None}, date(2025, 10, 1)),
    ],
)
def test_date_read_forms(date_value: dict[str, Any], expected: date) -> None:
    page = {"Close Date": {"id": "d", "type": "date", "date": date_value}}
    assert from_notion_properties(page) == {"close_date": expected}


@pytest.mark.parametrize(
    "date_value",
    [{"start": "next tuesday"}, {"start": "2025-10-01T09:00:00Z", "time_zone": "Mars/Olympus"}, "2025-10-01"],
)
def test_unreadable_dates_are_mapping_errors(date_value: Any) -> None:
    page = {"Close Date": {"id": "d", "type": "date", "date": date_value}}
    with pytest.raises(FieldMappingError, match="'Close Date'"):
        from_notion_properties(page, record_id="r1")


def test_type_mismatch_on_read_names_both_types() -> None:
    """After someone turns Value into a text column, its text is not read as a number."""
    page = {"Value": {"id": "vAl%3D", "type": "rich_text", "rich_text": _rich("about 12k")}}
    with pytest.raises(FieldMappingError, match="expected a 'number' property, found 'rich_text'") as caught:
        from_notion_properties(page, record_id="opp-1")
    assert caught.value.record_id == "opp-1" and caught.value.property_name == "Value"


@pytest.mark.parametrize(
    "value",
    [
        {"id": "s", "type": "select", "select": "Won"},
        {"id": "s", "type": "select"},
        "Won",
    ],
)
def test_wrong_shape_on_read_is_a_mapping_error(value: Any) -> None:
    with pytest.raises(FieldMappingError, match="'Stage'"):
        from_notion_properties({"Stage": value})


@pytest.mark.parametrize("number", ["12", True, float("nan")])
def test_non_numbers_on_read_are_mapping_errors(number: Any) -> None:
    with pytest.raises(FieldMappingError):
        from_notion_properties({"Value": {"id": "v", "type": "number", "number": number}})


def test_rich_text_without_plain_text_is_a_mapping_error() -> None:
    page = {"Contact": {"id": "c", "type": "rich_text", "rich_text": [{"text": {"content": "x"}}]}}
    with pytest.raises(FieldMappingError, match="plain_text"):
        from_notion_properties(page)


# --- binding to property ids ---------------------------------------------------------------------


def test_first_bind_is_by_name_and_carries_ids_and_options() -> None:
    resolved = resolve_property_ids(NOTION_PROPERTY_MAP, SCHEMA)
    assert resolved["deal_stage"] == NotionProperty(
        "Stage", "select", closed=True, id="%3AsTg", options=frozenset({"Prospecting", "Negotiation"})
    )
    assert resolved["source"] == NotionProperty("Source", "select", id="sRc~")
    assert property_bindings(resolved)["estimated_value"] == "vAl%3D"
    assert to_notion_properties({"deal_stage": "Negotiation"}, resolved) == {
        "%3AsTg": {"select": {"name": "Negotiation"}}
    }
    assert from_notion_properties(PAGE_PROPERTIES, resolved) == EXPECTED_FIELDS


def test_a_renamed_property_still_maps_through_its_bound_id() -> None:
    bindings = property_bindings(resolve_property_ids(NOTION_PROPERTY_MAP, SCHEMA))
    renamed_schema = {("Pipeline stage" if k == "Stage" else k): v for k, v in SCHEMA.items()}
    renamed_schema["Pipeline stage"] = {**SCHEMA["Stage"], "name": "Pipeline stage"}
    resolved = resolve_property_ids(NOTION_PROPERTY_MAP, renamed_schema, bindings)
    assert resolved["deal_stage"].name == "Pipeline stage"
    page = {("Pipeline stage" if k == "Stage" else k): v for k, v in PAGE_PROPERTIES.items()}
    assert from_notion_properties(page, resolved) == EXPECTED_FIELDS
    assert list(to_notion_properties({"deal_stage": "Prospecting"}, resolved)) == ["%3AsTg"]


def test_an_unknown_select_option_is_refused_once_resolved() -> None:
    resolved = resolve_property_ids(NOTION_PROPERTY_MAP, SCHEMA)
    with pytest.raises(FieldMappingError, match="not an option") as caught:
        to_notion_properties({"deal_stage": "Closed Won"}, resolved, record_id="opp-9")
    assert "'Closed Won'" in str(caught.value) and "Negotiation" in str(caught.value)
    # an open select accepts a new name: Notion adds the option
    assert to_notion_properties({"source": "Inbound"}, resolved) == {"sRc~": {"select": {"name": "Inbound"}}}


def test_a_missing_property_is_a_schema_error() -> None:
    schema = {k: v for k, v in SCHEMA.items() if k != "Email"}
    with pytest.raises(PropertySchemaError, match="'contact_email' \\(property 'Email'\\)"):
        resolve_property_ids(NOTION_PROPERTY_MAP, schema)


def test_a_deleted_bound_property_is_not_silently_rebound_by_name() -> None:
    schema = {**SCHEMA, "Email": {**SCHEMA["Email"], "id": "new-id"}}
    with pytest.raises(PropertySchemaError, match="bound id 'eMl%5B'"):
        resolve_property_ids(NOTION_PROPERTY_MAP, schema, {"contact_email": "eMl%5B"})


def test_a_type_change_is_a_schema_error() -> None:
    schema = {**SCHEMA, "Value": {"id": "vAl%3D", "name": "Value", "type": "rich_text", "rich_text": {}}}
    with pytest.raises(PropertySchemaError, match="'estimated_value'.*'Value'.*'rich_text', expected 'number'"):
        resolve_property_ids(NOTION_PROPERTY_MAP, schema)


# --- sync key ------------------------------------------------------------------------------------


def test_sync_key_round_trip() -> None:
    record_id = uuid4()
    body = sync_key_property(record_id)
    assert body == {"Sync Key": {"rich_text": [{"type": "text", "text": {"content": str(record_id)}}]}}
    assert read_sync_key(notion_echo(body, {"sync_key": SYNC_KEY})) == str(record_id)


def test_sync_key_by_bound_id() -> None:
    key = resolve_property_ids({"sync_key": SYNC_KEY}, SCHEMA)["sync_key"]
    record_id = str(uuid4())
    assert list(sync_key_property(record_id, key)) == ["sYk"]
    page = {"Renamed key": {"id": "sYk", "type": "rich_text", "rich_text": _rich(record_id.upper())}}
    assert read_sync_key(page, key) == record_id


def test_sync_key_absent_or_empty_reads_as_none() -> None:
    assert read_sync_key(PAGE_PROPERTIES) is None
    assert read_sync_key({"Sync Key": {"id": "sYk", "type": "rich_text", "rich_text": []}}) is None


def test_sync_key_that_is_not_a_uuid_is_a_mapping_error() -> None:
    with pytest.raises(FieldMappingError, match="not a UUID"):
        read_sync_key({"Sync Key": {"id": "sYk", "type": "rich_text", "rich_text": _rich("edited by hand")}})
    with pytest.raises(FieldMappingError, match="not a UUID"):
        sync_key_property("42")


# --- property-based round trips ------------------------------------------------------------------

money = st.decimals(min_value=0, max_value=Decimal("9999999999999999.99"), places=2, allow_nan=False)
probabilities = st.decimals(min_value=0, max_value=1, places=6)
texts = st.one_of(
    st.text(min_size=1, max_size=300),
    st.builds(lambda piece, times: piece * times, st.text(min_size=1, max_size=8), st.integers(250, 600)),
)
select_names = st.text(st.characters(exclude_characters=","), min_size=1, max_size=100).map(str.strip).filter(bool)
emails = st.emails().filter(lambda email: len(email) <= 200)


def _significant_digits(value: Decimal) -> int:
    return len(value.normalize().as_tuple().digits)


@given(money)
def test_money_round_trips_or_is_refused_for_lack_of_precision(value: Decimal) -> None:
    try:
        read = round_trip("estimated_value", value)
    except FieldMappingError:
        assert _significant_digits(value) > 15
    else:
        assert read == value


@given(probabilities)
def test_probability_round_trips(value: Decimal) -> None:
    assert round_trip("probability", value) == value


@given(st.dates())
def test_date_round_trips(value: date) -> None:
    assert round_trip("close_date", value) == value


@given(texts, st.sampled_from(["name", "contact_name"]))
def test_text_round_trips(value: str, field: str) -> None:
    assert round_trip(field, value) == value


@given(select_names, st.sampled_from(["deal_stage", "product_line", "source"]))
def test_select_round_trips(value: str, field: str) -> None:
    assert round_trip(field, value) == value


@given(emails)
def test_email_round_trips(value: str) -> None:
    assert round_trip("contact_email", value) == value


@given(st.sampled_from(sorted(NOTION_PROPERTY_MAP)))
def test_none_round_trips_for_every_field(field: str) -> None:
    assert round_trip(field, None) is None


@given(select_names)
def test_round_trip_through_a_resolved_map(value: str) -> None:
    resolved = resolve_property_ids(NOTION_PROPERTY_MAP, SCHEMA)
    resolved["deal_stage"] = dataclasses.replace(resolved["deal_stage"], options=frozenset({value}))
    assert round_trip("deal_stage", value, resolved) == value


def test_the_schema_for_a_fresh_data_source_fits_the_synced_map_and_carries_the_sync_key() -> None:
    schema = notion_properties_schema()
    assert set(schema) == {spec["notion_name"] for spec in SYNCED_PROPERTY_MAP.values()} | {SYNC_KEY_PROPERTY}
    assert schema["Stage Override"]["select"]["options"] == schema["Stage"]["select"]["options"]
    assert [option["name"] for option in schema["Stage"]["select"]["options"]] == list(DEAL_STAGES)
    assert schema["Product"] == {"select": {"options": []}}
    # What Notion answers for that schema binds cleanly, the closed Stage select with its options.
    as_returned = {
        name: {"id": f"id-{n}", "name": name, "type": next(iter(config))} | config
        for n, (name, config) in enumerate(schema.items())
    }
    resolved = resolve_property_ids(SYNCED_PROPERTY_MAP, as_returned)
    assert resolved["deal_stage"].options == frozenset(DEAL_STAGES)


def test_a_malformed_sync_key_names_the_page_it_was_read_from() -> None:
    properties = {"Sync Key": {"id": "k", "type": "rich_text", "rich_text": [{"plain_text": "oops"}]}}
    with pytest.raises(FieldMappingError, match="record page-7: field 'sync_key' .* 'oops': not a UUID"):
        read_sync_key(properties, record_id="page-7")


def test_tags_map_to_a_multi_select_and_an_empty_one_reads_back_as_none() -> None:
    assert round_trip("manual_tags", ["vip", "renewal"], SYNCED_PROPERTY_MAP) == ["vip", "renewal"]
    body = to_notion_properties({"manual_tags": ["vip", "renewal"]}, SYNCED_PROPERTY_MAP)
    assert body == {"Tags": {"multi_select": [{"name": "vip"}, {"name": "renewal"}]}}
    for empty in (None, []):
        assert to_notion_properties({"manual_tags": empty}, SYNCED_PROPERTY_MAP) == {"Tags": {"multi_select": []}}
        assert round_trip("manual_tags", empty, SYNCED_PROPERTY_MAP) is None


@pytest.mark.parametrize(
    ("tags", "reason"),
    [(["vip", "vip"], "the same name twice"), (["a, b"], "comma"), ([""], "empty name"), ("vip", "expected a list")],
)
def test_tags_notion_cannot_hold_are_refused_naming_the_property(tags: Any, reason: str) -> None:
    with pytest.raises(FieldMappingError, match=reason) as raised:
        to_notion_properties({"manual_tags": tags}, SYNCED_PROPERTY_MAP, record_id="opp-1")
    assert raised.value.property_name == "Tags"


def test_the_synced_map_is_the_plans_nine_plus_the_human_owned_fields() -> None:
    assert {name: SYNCED_PROPERTY_MAP[name] for name in NOTION_PROPERTY_MAP} == NOTION_PROPERTY_MAP
    assert set(SYNCED_PROPERTY_MAP) - set(NOTION_PROPERTY_MAP) == DEFAULT_FIELD_OWNERSHIP.human_owned_fields
    schema = notion_properties_schema(SYNCED_PROPERTY_MAP)
    assert schema["Tags"] == {"multi_select": {"options": []}}
    assert [option["name"] for option in schema["Stage Override"]["select"]["options"]] == list(DEAL_STAGES)
