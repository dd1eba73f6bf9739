"""The models refuse, naming the field, every input the deal store or the CRM could not take."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest
from pydantic import BaseModel, ValidationError
from pydantic_core import to_json

from crm_pipeline.models import (
    DEAL_STAGES,
    JSON_FIELDS,
    MAX_JSON_BYTES,
    MAX_JSON_DEPTH,
    ActivityCreate,
    ContactCreate,
    ContactUpdate,
    OpportunityCreate,
    OpportunityFilter,
    OpportunityRead,
    OpportunityUpdate,
)

ANY_JSON_FIELDS = tuple(field for field in JSON_FIELDS if field != "manual_tags")  # tags are strings


def value_id(value: Any) -> str:
    """A test id that is the same in every process (pytest-xdist's workers must collect the same
    tests): a set's repr follows the string hash seed, a bare object's its address."""
    if isinstance(value, set):
        return f"set({sorted(value)!r})"
    if type(value) is object:
        return "object()"
    return repr(value)


def refused(model: type[BaseModel], field: str, **fields: Any) -> ValidationError:
    """The error `model(**fields)` raises; it must name `field` and no other."""
    with pytest.raises(ValidationError) as caught:
        model(**fields)
    assert {error["loc"][0] for error in caught.value.errors()} == {field}
    return caught.value


def json_field(field: str, value: Any) -> Any:
    """`value` shaped for `field`: score_evidence is an array, the others are objects."""
    return [value] if field == "score_evidence" else {"key": value}


def nested(depth: int) -> dict[str, Any]:
    """A JSON object `depth` levels deep."""
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"n": value}
    return value


# --- text -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "field"),
    [
        (OpportunityCreate, "name"),
        (OpportunityCreate, "product_line"),
        (OpportunityCreate, "source"),
        (OpportunityCreate, "contact_name"),
        (OpportunityCreate, "contact_email"),
        (OpportunityCreate, "custom_notes"),
        (ContactCreate, "name"),
        (ContactCreate, "phone"),
        (ContactCreate, "title"),
        (ContactCreate, "company"),
        (ActivityCreate, "subject"),
        (ActivityCreate, "body"),
    ],
)
def test_nul_in_a_text_field_is_refused(model: type[BaseModel], field: str) -> None:
    required: dict[str, Any] = (
        {"opportunity_id": uuid4(), "subject": "Call"} if model is ActivityCreate else {"name": "Acme"}
    )
    value = "a\x00b@example.com" if field.endswith("email") else "Acme\x00 Corp"
    refused(model, field, **{**required, field: value})


def test_nul_in_a_tag_is_refused() -> None:
    error = refused(OpportunityUpdate, "manual_tags", manual_tags=["fine", "bad\x00tag"])
    assert error.errors()[0]["loc"][:2] == ("manual_tags", 1)


# --- JSON fields ----------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ANY_JSON_FIELDS)
@pytest.mark.parametrize(
    "value",
    [
        float("nan"),
        float("inf"),
        float("-inf"),
        "nul \x00 inside",
        {"a", "set"},
        datetime(2026, 1, 1, tzinfo=UTC),
        date(2026, 1, 1),
        b"bytes",
        Decimal("NaN"),
        Decimal("1.5"),
        (1, 2),
        {1: "non-string key"},
        {"nul\x00key": 1},
        object(),
    ],
    ids=value_id,
)
def test_a_value_json_cannot_hold_is_refused_anywhere_in_a_json_field(field: str, value: Any) -> None:
    deep_inside = json_field(field, {"list": [1, {"inner": value}]})
    message = str(refused(OpportunityUpdate, field, **{field: deep_inside}))
    assert "list[1].inner" in message


@pytest.mark.parametrize("field", ANY_JSON_FIELDS)
def test_json_fields_nest_at_most_the_documented_depth(field: str) -> None:
    deepest = nested(MAX_JSON_DEPTH - 1)  # json_field adds one level
    OpportunityUpdate(**{field: json_field(field, deepest)})
    message = str(refused(OpportunityUpdate, field, **{field: json_field(field, nested(MAX_JSON_DEPTH))}))
    assert f"deeper than {MAX_JSON_DEPTH}" in message


@pytest.mark.parametrize("field", JSON_FIELDS)
def test_json_fields_hold_at_most_the_documented_size(field: str) -> None:
    if field == "manual_tags":
        fits: Any = ["t" * 98] * (MAX_JSON_BYTES // 101)
        too_big: Any = ["t" * 98] * (MAX_JSON_BYTES // 101 + 1)
    else:
        overhead = len(to_json(json_field(field, "")))
        fits = json_field(field, "x" * (MAX_JSON_BYTES - overhead))
        too_big = json_field(field, "x" * (MAX_JSON_BYTES - overhead + 1))
    OpportunityUpdate(**{field: fits})
    assert f"{MAX_JSON_BYTES} bytes" in str(refused(OpportunityUpdate, field, **{field: too_big}))


def test_a_20_mb_snapshot_is_refused() -> None:
    refused(OpportunityCreate, "qualification_snapshot", name="Acme", qualification_snapshot={"blob": "x" * 20_000_000})


def test_plain_json_is_kept_as_given() -> None:
    snapshot = {"budget": 125000, "ratio": 0.5, "ok": True, "none": None, "list": ["a", {"b": [1.25, -3]}]}
    assert OpportunityCreate(name="Acme", qualification_snapshot=snapshot).qualification_snapshot == snapshot


def test_stored_rows_are_read_back_even_beyond_the_write_checks() -> None:
    """Rows written before a check existed stay readable; only writes are held to them."""
    stored = OpportunityRead(
        id=uuid4(),
        tenant_id="acme",
        name="Old deal",
        deal_stage="won",
        override_stage="won",
        qualification_snapshot={"blob": "x" * (MAX_JSON_BYTES + 1)},
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        updated_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert (stored.deal_stage, stored.override_stage) == ("won", "won")


# --- stages ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "fields"),
    [
        (OpportunityCreate, {"name": "Acme", "deal_stage": "Bogus Stage"}),
        (OpportunityUpdate, {"deal_stage": "won"}),
        (OpportunityUpdate, {"override_stage": "Bogus Stage"}),
        (OpportunityFilter, {"deal_stage": "Bogus Stage"}),
        (OpportunityFilter, {"deal_stage": ["Lead", "Bogus Stage"]}),
    ],
)
def test_a_stage_outside_the_pipeline_is_refused_with_the_allowed_ones(
    model: type[BaseModel], fields: dict[str, Any]
) -> None:
    with pytest.raises(ValidationError) as caught:
        model(**fields)
    message = str(caught.value)
    assert "Bogus Stage" in message or "won" in message
    assert all(stage in message for stage in DEAL_STAGES)
    assert {error["loc"][0] for error in caught.value.errors()} == set(fields) - {"name"}


def test_every_pipeline_stage_is_accepted() -> None:
    for stage in DEAL_STAGES:
        assert OpportunityCreate(name="Acme", deal_stage=stage, override_stage=stage).deal_stage == stage
    assert OpportunityFilter(deal_stage=list(DEAL_STAGES)).deal_stage == list(DEAL_STAGES)
    assert OpportunityUpdate(override_stage=None).changes() == {"override_stage": None}


# --- required columns -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "field"),
    [(OpportunityUpdate, "name"), (OpportunityUpdate, "deal_stage"), (ContactUpdate, "name")],
)
def test_a_required_column_cannot_be_cleared_by_an_update(model: type[BaseModel], field: str) -> None:
    assert "cannot be cleared" in str(refused(model, field, **{field: None}))
    update = model()
    with pytest.raises(ValidationError, match="cannot be cleared"):
        setattr(update, field, None)


def test_optional_columns_can_still_be_cleared() -> None:
    assert OpportunityUpdate(custom_notes=None, contact_email=None).changes() == {
        "custom_notes": None,
        "contact_email": None,
    }


# --- datetimes ------------------------------------------------------------------------------------


def test_a_naive_datetime_is_refused() -> None:
    naive = datetime(2026, 11, 30, 12, 0)
    error = refused(ActivityCreate, "occurred_at", opportunity_id=uuid4(), subject="Call", occurred_at=naive)
    assert "timezone" in str(error)
    assert "timezone" in str(refused(OpportunityFilter, "updated_since", updated_since=naive))


def test_an_aware_datetime_is_accepted() -> None:
    aware = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    assert ActivityCreate(opportunity_id=uuid4(), subject="Call", occurred_at=aware).occurred_at == aware
    assert OpportunityFilter(updated_since=aware).updated_since == aware
