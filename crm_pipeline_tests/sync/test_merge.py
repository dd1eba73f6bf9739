"""Tests of the merge core: the documented table cell by cell, scenarios, and a property test
against the per-cell oracle (crm_pipeline_tests/sync/oracle.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import product, takewhile
from pathlib import Path
from typing import Any
from uuid import uuid4

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_pipeline.crm.notion.properties import NOTION_PROPERTY_MAP
from crm_pipeline.models import Actor, FieldEdit
from crm_pipeline.sync import (
    CONDITIONS,
    DECISION_COLUMNS,
    DECISION_TABLE,
    FieldDecision,
    FieldState,
    Outcome,
    Rule,
    Side,
    TimeOrder,
    When,
    cells_frame,
    decide,
    decide_record,
)
from crm_pipeline.sync.ownership import DEFAULT_FIELD_OWNERSHIP, FieldOwner
from crm_pipeline.sync.planner import RecordState, plan_records
from crm_pipeline_tests.sync.oracle import oracle_decide

DOC = Path(__file__).resolve().parents[2] / "docs" / "sync-rules.md"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)

# --- the table in docs/sync-rules.md ------------------------------------------------------------


def _doc_table() -> list[list[str]]:
    """The decision table's header and rows, as the text cells of docs/sync-rules.md."""
    lines = DOC.read_text(encoding="utf-8").splitlines()
    start = next(index for index, line in enumerate(lines) if line.startswith("| # |"))
    rows = takewhile(lambda line: line.startswith("|"), lines[start + 2 :])
    return [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in [lines[start], *rows]]


def _text(value: object) -> str:
    if value is None:
        return "any"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _parse(name: str, text: str) -> object:
    if text == "any":
        return None
    if name == "owner":
        return FieldOwner(text)
    if name == "time_order":
        return TimeOrder(text)
    return {"yes": True, "no": False}[text]


def test_doc_table_is_the_decision_table() -> None:
    header, *rows = _doc_table()
    assert header == ["#", *CONDITIONS, "outcome", "winner", "rule", "why"]
    expected = [
        [
            str(number),
            *(_text(getattr(row.when, name)) for name in CONDITIONS),
            str(row.outcome),
            "—" if row.winner is None else str(row.winner),
            str(row.rule),
            row.reason,
        ]
        for number, row in enumerate(DECISION_TABLE, start=1)
    ]
    assert rows == expected


# --- every combination of conditions, as cells --------------------------------------------------

DOMAINS: dict[str, list[Any]] = {
    "owner": list(FieldOwner),
    "mapped": [True, False],
    "valid": [True, False],
    "primary_changed": [True, False],
    "external_changed": [True, False],
    "equal": [True, False],
    "time_order": list(TimeOrder),
}
FIELD_OWNED_BY = {FieldOwner.AGENT: "probability", FieldOwner.HUMAN: "custom_notes", FieldOwner.SHARED: "deal_stage"}
TIMES = {
    TimeOrder.PRIMARY_LATER: (T0 + 5 * MINUTE, T0),
    TimeOrder.EXTERNAL_LATER: (T0, T0 + 5 * MINUTE),
    TimeOrder.TIE: (T0 + timedelta(seconds=40), T0),
}


def _possible(combination: dict[str, Any]) -> bool:
    """Equal sides changed alike; different sides mean at least one changed."""
    if combination["equal"]:
        return bool(combination["primary_changed"] == combination["external_changed"])
    return bool(combination["primary_changed"] or combination["external_changed"])


COMBINATIONS = [
    combination
    for values in product(*DOMAINS.values())
    if _possible(combination := dict(zip(DOMAINS, values, strict=True)))
]


def _cell(combination: dict[str, Any]) -> FieldState:
    """A cell meeting the combination: base "b", "p" for a primary change, "e" for an external one."""
    primary = "p" if combination["primary_changed"] else "b"
    external = primary if combination["equal"] else ("e" if combination["external_changed"] else "b")
    primary_at, external_at = TIMES[combination["time_order"]]
    error = None if combination["valid"] else "text is longer than Notion allows"
    return FieldState(FIELD_OWNED_BY[combination["owner"]], "b", primary, external, primary_at, external_at, error)


@pytest.fixture(scope="module")
def decided_combinations() -> pd.DataFrame:
    """Every possible combination decided in one call, row i for COMBINATIONS[i]."""
    frame = cells_frame(
        ((f"deal-{index}", _cell(combination)) for index, combination in enumerate(COMBINATIONS)),
        DEFAULT_FIELD_OWNERSHIP,
        mapped_fields=FIELD_OWNED_BY.values(),
    )
    frame["mapped"] = [combination["mapped"] for combination in COMBINATIONS]
    return decide(frame)


def _matches(when: dict[str, object], combination: dict[str, Any]) -> bool:
    return all(value is None or combination[name] == value for name, value in when.items())


@pytest.mark.parametrize("doc_row", _doc_table()[1:], ids=lambda row: f"row-{row[0]}-{row[-3]}")
def test_doc_row_decides_every_cell_it_covers(doc_row: list[str], decided_combinations: pd.DataFrame) -> None:
    number, *conditions, outcome, winner, rule, _ = doc_row
    when = {name: _parse(name, text) for name, text in zip(CONDITIONS, conditions, strict=True)}
    covered = [index for index, combination in enumerate(COMBINATIONS) if _matches(when, combination)]
    assert covered, f"row {number} covers no possible cell"
    for index in covered:
        decided = decided_combinations.iloc[index]
        cell = _cell(COMBINATIONS[index])
        assert (decided.outcome, decided.winner, decided.rule) == (
            Outcome(outcome),
            None if winner == "—" else Side(winner),
            Rule(rule),
        ), COMBINATIONS[index]
        kept = {Side.PRIMARY: cell.primary, Side.EXTERNAL: cell.external, None: cell.primary}
        assert decided.value == (None if decided.outcome in (Outcome.ERROR, Outcome.UNMAPPED) else kept[decided.winner])


@pytest.mark.parametrize("combination", COMBINATIONS, ids=lambda c: "-".join(_text(v) for v in c.values()))
def test_every_possible_cell_falls_in_exactly_one_row(combination: dict[str, Any]) -> None:
    rows = [row for row in DECISION_TABLE if _matches(_when_dict(row.when), combination)]
    assert len(rows) == 1, rows


def _when_dict(when: When) -> dict[str, object]:
    return {name: getattr(when, name) for name in CONDITIONS}


# --- scenarios ------------------------------------------------------------------------------------


def _one(state: FieldState, mapped_fields: Any = NOTION_PROPERTY_MAP) -> FieldDecision:
    (decision,) = decide_record("deal-1", [state], DEFAULT_FIELD_OWNERSHIP, mapped_fields)
    return decision


def _summary(decision: FieldDecision) -> tuple[Outcome, Side | None, Any, Rule]:
    return decision.outcome, decision.winner, decision.value, decision.rule


def test_agent_change_is_pushed() -> None:
    state = FieldState("probability", Decimal("0.4"), Decimal("0.7"), Decimal("0.4"), T0, T0 - MINUTE)
    assert _summary(_one(state)) == (Outcome.PUSH, Side.PRIMARY, Decimal("0.7"), Rule.AGENT_OWNED)


def test_echo_of_our_own_push_is_nothing() -> None:
    # After a push the base is the pushed value; Notion shows it back with a newer page edit time.
    state = FieldState("probability", Decimal("0.7"), Decimal("0.7"), Decimal("0.70"), T0, T0 + 3 * MINUTE)
    assert _summary(_one(state)) == (Outcome.NOTHING, None, Decimal("0.7"), Rule.SAME_VALUE)


def test_human_override_of_agent_field_is_pulled_and_recorded() -> None:
    state = FieldState("probability", Decimal("0.4"), Decimal("0.4"), Decimal("0.9"), T0, T0 + MINUTE)
    assert _summary(_one(state)) == (Outcome.OVERRIDE, Side.EXTERNAL, Decimal("0.9"), Rule.HUMAN_OVERRIDE)


def test_override_holds_until_the_agent_writes_again() -> None:
    # The override became the base; the agent's next own write is pushed as usual.
    kept = FieldState("probability", Decimal("0.9"), Decimal("0.9"), Decimal("0.9"), T0, T0)
    rewritten = FieldState("probability", Decimal("0.9"), Decimal("0.3"), Decimal("0.9"), T0 + MINUTE, T0)
    assert _one(kept).outcome is Outcome.NOTHING
    assert _summary(_one(rewritten)) == (Outcome.PUSH, Side.PRIMARY, Decimal("0.3"), Rule.AGENT_OWNED)


def test_agent_wins_its_field_when_both_changed_even_if_the_human_was_later() -> None:
    state = FieldState("probability", Decimal("0.4"), Decimal("0.5"), Decimal("0.9"), T0, T0 + 10 * MINUTE)
    assert _summary(_one(state)) == (Outcome.CONFLICT, Side.PRIMARY, Decimal("0.5"), Rule.AGENT_OWNED)


def test_human_owned_field_comes_in_and_never_goes_out() -> None:
    mapped = {"custom_notes"}
    pulled = FieldState("custom_notes", "call Tue", "call Tue", "call Wed", T0, T0)
    agent_wrote = FieldState("custom_notes", "call Tue", "agent note", "call Tue", T0 + MINUTE, T0)
    both = FieldState("custom_notes", "call Tue", "agent note", "call Wed", T0 + 9 * MINUTE, T0)
    assert _summary(_one(pulled, mapped)) == (Outcome.PULL, Side.EXTERNAL, "call Wed", Rule.HUMAN_OWNED)
    assert _summary(_one(agent_wrote, mapped)) == (Outcome.PULL, Side.EXTERNAL, "call Tue", Rule.HUMAN_OWNED)
    assert _summary(_one(both, mapped)) == (Outcome.CONFLICT, Side.EXTERNAL, "call Wed", Rule.HUMAN_OWNED)


def test_shared_field_takes_the_side_that_changed() -> None:
    pushed = FieldState("deal_stage", "Lead", "Qualified", "Lead", T0, T0 + 5 * MINUTE)
    pulled = FieldState("deal_stage", "Lead", "Lead", "Proposal", T0 + 5 * MINUTE, T0)
    assert _summary(_one(pushed)) == (Outcome.PUSH, Side.PRIMARY, "Qualified", Rule.CHANGED_SIDE_WINS)
    assert _summary(_one(pulled)) == (Outcome.PULL, Side.EXTERNAL, "Proposal", Rule.CHANGED_SIDE_WINS)


def test_shared_conflict_goes_to_the_later_write() -> None:
    agent_later = FieldState("deal_stage", "Lead", "Qualified", "Proposal", T0 + MINUTE, T0)
    human_later = FieldState("deal_stage", "Lead", "Qualified", "Proposal", T0, T0 + MINUTE)
    assert _summary(_one(agent_later)) == (Outcome.CONFLICT, Side.PRIMARY, "Qualified", Rule.LAST_WRITE_WINS)
    assert _summary(_one(human_later)) == (Outcome.CONFLICT, Side.EXTERNAL, "Proposal", Rule.LAST_WRITE_WINS)


def test_shared_conflict_within_the_minute_goes_to_the_human() -> None:
    # Notion stamped 09:00 for an edit anywhere in 09:00-09:01; the agent wrote at 09:00:59.
    state = FieldState("deal_stage", "Lead", "Qualified", "Proposal", T0 + timedelta(seconds=59), T0)
    assert _summary(_one(state)) == (Outcome.CONFLICT, Side.EXTERNAL, "Proposal", Rule.TIE_GOES_TO_HUMAN)


def test_precision_sets_the_tie_window() -> None:
    state = FieldState("deal_stage", "Lead", "Qualified", "Proposal", T0 + timedelta(seconds=2), T0)
    (decision,) = decide_record(
        "deal-1", [state], DEFAULT_FIELD_OWNERSHIP, NOTION_PROPERTY_MAP, precision=timedelta(seconds=1)
    )
    assert (decision.winner, decision.rule) == (Side.PRIMARY, Rule.LAST_WRITE_WINS)


def test_an_unknown_change_time_loses_to_a_known_one() -> None:
    primary_unknown = FieldState("name", "Acme", "Acme Ltd", "Acme Inc", None, T0)
    external_unknown = FieldState("name", "Acme", "Acme Ltd", "Acme Inc", T0, None)
    both_unknown = FieldState("name", "Acme", "Acme Ltd", "Acme Inc", None, None)
    assert (_one(primary_unknown).winner, _one(primary_unknown).rule) == (Side.EXTERNAL, Rule.LAST_WRITE_WINS)
    assert (_one(external_unknown).winner, _one(external_unknown).rule) == (Side.PRIMARY, Rule.LAST_WRITE_WINS)
    assert (_one(both_unknown).winner, _one(both_unknown).rule) == (Side.EXTERNAL, Rule.TIE_GOES_TO_HUMAN)


def test_unmapped_field_never_travels() -> None:
    state = FieldState("qualification_snapshot", None, {"budget": "approved"}, None, T0, None)
    assert _summary(_one(state)) == (Outcome.UNMAPPED, None, None, Rule.UNMAPPED)


def test_invalid_value_is_an_error_not_a_silent_drop() -> None:
    state = FieldState("name", "Acme", "A" * 3000, "Acme", T0, None, error="title longer than Notion allows")
    assert _summary(_one(state)) == (Outcome.ERROR, None, None, Rule.INVALID_VALUE)


def test_first_link_with_equal_values_is_nothing_and_gives_the_base() -> None:
    state = FieldState("close_date", None, date(2026, 6, 30), date(2026, 6, 30), T0, T0)
    assert _summary(_one(state)) == (Outcome.NOTHING, None, date(2026, 6, 30), Rule.SAME_VALUE)


def test_first_link_fills_the_empty_side_and_never_blanks_a_filled_one() -> None:
    primary_only = FieldState("estimated_value", None, Decimal("5000"), None, T0, T0 + 5 * MINUTE)
    external_only = FieldState("estimated_value", None, None, Decimal("7000"), T0 + 5 * MINUTE, T0)
    agent_empty = FieldState("probability", None, None, Decimal("0.2"), None, T0)
    assert _summary(_one(primary_only)) == (Outcome.PUSH, Side.PRIMARY, Decimal("5000"), Rule.CHANGED_SIDE_WINS)
    assert _summary(_one(external_only)) == (Outcome.PULL, Side.EXTERNAL, Decimal("7000"), Rule.CHANGED_SIDE_WINS)
    assert _summary(_one(agent_empty)) == (Outcome.OVERRIDE, Side.EXTERNAL, Decimal("0.2"), Rule.HUMAN_OVERRIDE)


def test_first_link_with_different_values_is_a_conflict_settled_by_ownership() -> None:
    agent = FieldState("probability", None, Decimal("0.6"), Decimal("0.2"), T0, T0 + 5 * MINUTE)
    shared = FieldState("name", None, "Acme", "ACME GmbH", T0, T0 + 5 * MINUTE)
    assert _summary(_one(agent)) == (Outcome.CONFLICT, Side.PRIMARY, Decimal("0.6"), Rule.AGENT_OWNED)
    assert _summary(_one(shared)) == (Outcome.CONFLICT, Side.EXTERNAL, "ACME GmbH", Rule.LAST_WRITE_WINS)


def test_one_call_decides_many_records_as_it_decides_each() -> None:
    states = [
        FieldState("name", "Acme", "Acme Ltd", "Acme", T0, T0),
        FieldState("deal_stage", "Lead", "Lead", "Proposal", T0, T0),
        FieldState("probability", Decimal("0.1"), Decimal("0.1"), Decimal("0.3"), T0, T0),
    ]
    records = [(f"deal-{n}", state) for n in range(50) for state in states[n % 3 :]]
    together = decide(cells_frame(records, DEFAULT_FIELD_OWNERSHIP, NOTION_PROPERTY_MAP))
    one_by_one = [
        _summary(decision)
        for n in range(50)
        for decision in decide_record(f"deal-{n}", states[n % 3 :], DEFAULT_FIELD_OWNERSHIP, NOTION_PROPERTY_MAP)
    ]
    assert list(zip(together.outcome, together.winner, together.value, together.rule, strict=True)) == one_by_one
    assert list(together.columns) == list(DECISION_COLUMNS)
    assert list(together.record) == [record for record, _ in records]


# --- what counts as the same value ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "base", "value"),
    [
        ("estimated_value", Decimal("1.0"), Decimal("1.00")),
        ("estimated_value", Decimal("1000"), Decimal("1E+3")),
        ("probability", Decimal("0.1"), 0.1),
        ("name", None, ""),
        ("manual_tags", None, []),
        ("stakeholder_map", {"a": 1, "b": [Decimal("2.50")]}, {"b": (2.5,), "a": Decimal("1.0")}),
    ],
    ids=[
        "decimal-scale",
        "decimal-exponent",
        "float-repr",
        "empty-text-is-none",
        "empty-list-is-none",
        "json-order-scale-tuple",
    ],
)
def test_the_same_value_written_differently_is_no_change(field: str, base: Any, value: Any) -> None:
    state = FieldState(field, base, base, value, T0, T0 + MINUTE)
    assert _one(state, {field}).outcome is Outcome.NOTHING


@pytest.mark.parametrize(
    ("field", "base", "value"),
    [
        ("qualification_snapshot", {"approved": 1}, {"approved": True}),
        ("score_evidence", [1, 0], [True, False]),
        ("name", "2026-01-31", date(2026, 1, 31)),
        ("name", "1", 1),
        ("name", "Acme", "Acme "),
        ("manual_tags", ["a", "b"], ["b", "a"]),
    ],
    ids=["true-is-not-1", "nested-bools", "text-is-not-a-date", "text-is-not-a-number", "whitespace", "list-order"],
)
def test_a_different_value_is_a_change(field: str, base: Any, value: Any) -> None:
    state = FieldState(field, base, base, value, T0, T0 + MINUTE)
    decision = _one(state, {field})
    assert decision.outcome is not Outcome.NOTHING
    assert decision.value is value


# --- the frame is checked, never guessed ----------------------------------------------------------


def test_naive_change_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        FieldState("name", "a", "b", "a", datetime(2026, 1, 1))


def test_a_frame_that_would_decide_wrongly_is_refused() -> None:
    frame = cells_frame([("deal-1", FieldState("name", "a", "b", "a"))], DEFAULT_FIELD_OWNERSHIP, {"name"})
    with pytest.raises(ValueError, match="lack the columns"):
        decide(frame.drop(columns=["owner"]))
    with pytest.raises(TypeError, match="Python objects"):
        decide(frame.assign(base=pd.Series([1.5], dtype=float)))
    with pytest.raises(TypeError, match="timezone-aware"):
        decide(frame.assign(primary_changed_at=pd.to_datetime(["2026-01-01"])))
    with pytest.raises(ValueError, match="match no rule"):
        decide(frame.assign(owner=["robot"]))


def test_a_field_outside_the_model_is_refused() -> None:
    with pytest.raises(ValueError, match="not an opportunity field"):
        decide_record("deal-1", [FieldState("updated_at", None, 1, 2)], DEFAULT_FIELD_OWNERSHIP, {"updated_at"})


# --- per-field attribution (HubSpot's property history) -----------------------------------------


def test_a_value_the_sync_itself_wrote_is_no_human_override() -> None:
    """The CRM holds a value the sync wrote (its answer lost, so the base lagged behind): no
    person overrode the agent's field, and the agent's value goes out again."""
    ours = FieldState("probability", Decimal("0.4"), Decimal("0.4"), Decimal("0.6"), T0, T0, external_editor=Actor.SYNC)
    theirs = FieldState(
        "probability", Decimal("0.4"), Decimal("0.4"), Decimal("0.6"), T0, T0, external_editor=Actor.HUMAN
    )
    assert _summary(_one(ours)) == (Outcome.PUSH, Side.PRIMARY, Decimal("0.4"), Rule.AGENT_OWNED)
    assert _summary(_one(theirs)) == (Outcome.OVERRIDE, Side.EXTERNAL, Decimal("0.6"), Rule.HUMAN_OVERRIDE)


def test_a_value_the_sync_wrote_that_the_primary_holds_becomes_the_base() -> None:
    state = FieldState("deal_stage", "Lead", "Proposal", "Proposal", T0, T0, external_editor=Actor.SYNC)
    assert _summary(_one(state)) == (Outcome.NOTHING, None, "Proposal", Rule.SAME_VALUE)


def test_without_a_per_field_editor_the_merge_decides_as_before() -> None:
    """Notion tells only a page's last editor: a cell without a field editor is decided by value,
    so a value differing from the base is an external change whoever edited the page."""
    state = FieldState("probability", Decimal("0.4"), Decimal("0.4"), Decimal("0.6"), T0, T0)
    assert _summary(_one(state)) == (Outcome.OVERRIDE, Side.EXTERNAL, Decimal("0.6"), Rule.HUMAN_OVERRIDE)


def test_each_field_is_dated_by_its_own_edit_where_the_external_side_tells() -> None:
    """A person set the stage before the agent moved it; the sync's later write of another field
    dates the record, not the stage: the agent's stage is the last write and wins."""
    record_edit = T0 + 10 * MINUTE
    stage_edit = FieldEdit(actor=Actor.HUMAN, at=T0 - 5 * MINUTE)
    amount_edit = FieldEdit(actor=Actor.SYNC, at=record_edit)

    def state(edits: dict[str, FieldEdit]) -> RecordState:
        return RecordState(
            uuid4(),
            "512",
            {"deal_stage": "Lead", "estimated_value": Decimal("10")},
            {"deal_stage": "Proposal", "estimated_value": Decimal("10")},
            {"deal_stage": T0},
            {"deal_stage": "Qualified", "estimated_value": Decimal("20")},
            record_edit,
            edits,
        )

    fields = {"deal_stage", "estimated_value"}
    [per_field] = plan_records(
        [state({"deal_stage": stage_edit, "estimated_value": amount_edit})], DEFAULT_FIELD_OWNERSHIP, fields
    )
    [per_record] = plan_records([state({})], DEFAULT_FIELD_OWNERSHIP, fields)
    assert (per_field.push, per_field.pull) == ({"deal_stage": "Proposal", "estimated_value": Decimal("10")}, {})
    assert (per_record.push, per_record.pull) == ({}, {"deal_stage": "Qualified", "estimated_value": Decimal("20")})


# --- the vectorised merge agrees with the per-cell oracle ----------------------------------------

# Few values, many of them the same value written differently (or nearly so), so that drawn
# cells often hit equalities, echoes and the traps of Python's == (True == 1, 0.1 != Decimal("0.1")).
VALUES = [
    None,
    "",
    "a",
    "1",
    1,
    True,
    Decimal("1.00"),
    0.1,
    Decimal("0.1"),
    date(2026, 1, 31),
    "2026-01-31",
    [1, 0.1],
    (Decimal("1.0"), Decimal("0.10")),
    [True, 0.1],
    {"a": 1, "b": ""},
    {"b": "", "a": Decimal("1.0")},
    {"a": True, "b": ""},
    {"a": 1, "b": None},
]
values = st.sampled_from(VALUES)
times = st.one_of(
    st.none(), st.sampled_from([-61, -60, -59, 0, 59, 60, 61]).map(lambda seconds: T0 + timedelta(seconds=seconds))
)
# One field per owner plus an unmapped-by-default one, so drawn cells often share a field.
FIELDS = ["probability", "custom_notes", "deal_stage", "qualification_snapshot"]
cells = st.builds(
    FieldState,
    field=st.sampled_from(FIELDS),
    base=values,
    primary=values,
    external=values,
    primary_changed_at=times,
    external_changed_at=times,
    error=st.sampled_from([None, None, None, "cannot be stored"]),
    external_editor=st.sampled_from([None, None, Actor.HUMAN, Actor.SYNC]),
)


@settings(max_examples=400, deadline=None)
@given(
    states=st.lists(cells, min_size=20, max_size=60),
    mapped_fields=st.sets(st.sampled_from(FIELDS)),
    precision=st.sampled_from([MINUTE, MINUTE, timedelta(seconds=1), timedelta(0)]),
)
def test_vectorised_merge_equals_the_per_cell_oracle(
    states: list[FieldState], mapped_fields: set[str], precision: timedelta
) -> None:
    frame = cells_frame(
        ((f"deal-{n}", state) for n, state in enumerate(states)), DEFAULT_FIELD_OWNERSHIP, mapped_fields
    )
    decided = decide(frame, precision=precision)
    for state, outcome, winner, value, rule in zip(
        states, decided.outcome, decided.winner, decided.value, decided.rule, strict=True
    ):
        owner = DEFAULT_FIELD_OWNERSHIP.owner_of(state.field)
        expected = oracle_decide(owner, state.field in mapped_fields, state, precision)
        assert (outcome, winner, rule) == (expected[0], expected[1], expected[3]), state
        assert value is expected[2], state
