"""The decision table of the merge, written once as data.

Each row is one combination of conditions on a cell (None: any value) and what it decides. Rows
are mutually exclusive, so exactly one row holds for every cell that can occur; ``merge.decide``
evaluates each row's conditions over whole columns, and docs/sync-rules.md shows this same table.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, fields

from crm_pipeline.sync.model import Outcome, Rule, Side
from crm_pipeline.sync.ownership import FieldOwner

__all__ = ["CONDITIONS", "DECISION_TABLE", "TableRow", "TimeOrder", "When"]


class TimeOrder(enum.StrEnum):
    """Which side changed a field later, at the external side's time precision.

    A side's time is later when it is at least the precision after the other's, or when only that
    side's time is known. Anything else (less than the precision apart, or neither known) is a tie.
    """

    PRIMARY_LATER = "primary later"
    EXTERNAL_LATER = "external later"
    TIE = "tie"


@dataclass(frozen=True)
class When:
    """The conditions of a row; None matches any value.

    ``valid``: no codec error on the cell. ``primary_changed`` / ``external_changed``: that side's
    value differs from the base. ``equal``: the two sides hold the same value.
    """

    owner: FieldOwner | None = None
    mapped: bool | None = None
    valid: bool | None = None
    primary_changed: bool | None = None
    external_changed: bool | None = None
    equal: bool | None = None
    time_order: TimeOrder | None = None

    def required(self) -> Iterator[tuple[str, object]]:
        """The (condition, required value) pairs this row sets, wildcards left out."""
        for name in CONDITIONS:
            value = getattr(self, name)
            if value is not None:
                yield name, value


CONDITIONS: tuple[str, ...] = tuple(condition.name for condition in fields(When))
"""The condition columns, in table order."""


@dataclass(frozen=True)
class TableRow:
    """One row of the decision table: conditions → outcome, winner, rule, and the reason why."""

    when: When
    outcome: Outcome
    winner: Side | None
    rule: Rule
    reason: str


def _differ(owner: FieldOwner, primary: bool, external: bool, time_order: TimeOrder | None = None) -> When:
    """A mapped, valid cell whose sides hold different values, by who changed it since the base."""
    return When(owner, True, True, primary, external, False, time_order)


_AGENT, _HUMAN, _SHARED = FieldOwner.AGENT, FieldOwner.HUMAN, FieldOwner.SHARED
_P, _E = Side.PRIMARY, Side.EXTERNAL

# fmt: off
DECISION_TABLE: tuple[TableRow, ...] = (
    TableRow(When(mapped=False), Outcome.UNMAPPED, None, Rule.UNMAPPED,
             "The external side has no property for the field: nothing to compare or write, no base kept."),
    TableRow(When(mapped=True, valid=False), Outcome.ERROR, None, Rule.INVALID_VALUE,
             "The codec says a value cannot cross (or could not be read): reported, never dropped; the base stays."),
    TableRow(When(mapped=True, valid=True, equal=True), Outcome.NOTHING, None, Rule.SAME_VALUE,
             "Unchanged, changed alike on both sides, or the echo of our own write: the common value is the base."),
    TableRow(_differ(_AGENT, True, False), Outcome.PUSH, _P, Rule.AGENT_OWNED,
             "The agent changed its own field and the CRM still holds the synced value."),
    TableRow(_differ(_AGENT, False, True), Outcome.OVERRIDE, _E, Rule.HUMAN_OVERRIDE,
             "A human changed a field the agent left alone since the base: an explicit override, pulled and recorded."),
    TableRow(_differ(_AGENT, True, True), Outcome.CONFLICT, _P, Rule.AGENT_OWNED,
             "The agent wrote the field since the base too: the agent wins and the CRM's value is restored."),
    TableRow(_differ(_HUMAN, True, False), Outcome.PULL, _E, Rule.HUMAN_OWNED,
             "A primary write never goes out: the CRM's value is put back (the change log keeps the other)."),
    TableRow(_differ(_HUMAN, False, True), Outcome.PULL, _E, Rule.HUMAN_OWNED,
             "A human edit to a human-owned field always comes in."),
    TableRow(_differ(_HUMAN, True, True), Outcome.CONFLICT, _E, Rule.HUMAN_OWNED,
             "The CRM always wins a human-owned field."),
    TableRow(_differ(_SHARED, True, False), Outcome.PUSH, _P, Rule.CHANGED_SIDE_WINS,
             "Only the primary changed the field: its value goes out."),
    TableRow(_differ(_SHARED, False, True), Outcome.PULL, _E, Rule.CHANGED_SIDE_WINS,
             "Only the CRM changed the field: its value comes in."),
    TableRow(_differ(_SHARED, True, True, TimeOrder.PRIMARY_LATER), Outcome.CONFLICT, _P, Rule.LAST_WRITE_WINS,
             "The primary changed it at least a minute after the CRM's edit: the later write wins."),
    TableRow(_differ(_SHARED, True, True, TimeOrder.EXTERNAL_LATER), Outcome.CONFLICT, _E, Rule.LAST_WRITE_WINS,
             "The CRM's edit is at least a minute after the primary's change: the later write wins."),
    TableRow(_differ(_SHARED, True, True, TimeOrder.TIE), Outcome.CONFLICT, _E, Rule.TIE_GOES_TO_HUMAN,
             "Within the CRM's minute precision the order is unknown: a person's edit is kept over a machine's."),
)
"""The merge's rules; docs/sync-rules.md shows this table and a test keeps the two in step."""
# fmt: on
