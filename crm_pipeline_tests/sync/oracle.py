"""The test oracle: docs/sync-rules.md's decision table as a plain per-cell function.

Written independently of ``crm_pipeline.sync``: straight if/else instead of the table's data, and
canonical JSON encodings instead of ``comparable`` to tell whether values are the same. The
property test checks the vectorised merge against it; benchmarks/bench_merge.py times it as the
per-record loop.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from crm_pipeline.models import Actor
from crm_pipeline.sync import EXTERNAL_TIME_PRECISION, FieldState, Outcome, Rule, Side
from crm_pipeline.sync.ownership import FieldOwner

Decision = tuple[Outcome, Side | None, Any, Rule]
"""outcome, winner, value, rule."""


def _tagged(value: Any) -> Any:
    """A JSON-encodable form of ``value`` in which every scalar carries its type."""
    if value is None:
        return None
    if isinstance(value, bool):
        return ["bool", value]
    if isinstance(value, int | float | Decimal):
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        return ["number", "0" if number.is_zero() else format(number.normalize(), "f")]
    if isinstance(value, str):
        return ["str", value]
    if isinstance(value, date):
        return ["date", value.isoformat()]
    if isinstance(value, dict):
        return {key: _tagged(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_tagged(item) for item in value]
    raise TypeError(f"no canonical form for {type(value).__name__}")


def canonical(value: Any) -> str:
    """The canonical JSON encoding of a field value (an empty string or list reads back as None)."""
    empty = value == "" or (isinstance(value, list | tuple) and len(value) == 0)
    return json.dumps(_tagged(None if empty else value), sort_keys=True, separators=(",", ":"))


def same_canonical(a: Any, b: Any) -> bool:
    return canonical(a) == canonical(b)


def _later(primary_at: datetime | None, external_at: datetime | None, precision: timedelta) -> Side | None:
    """Which side changed later; None for a tie (closer than the precision, or both unknown)."""
    if primary_at is None and external_at is None:
        return None
    if external_at is None:
        return Side.PRIMARY
    if primary_at is None:
        return Side.EXTERNAL
    if primary_at - external_at >= precision:
        return Side.PRIMARY
    if external_at - primary_at >= precision:
        return Side.EXTERNAL
    return None


def oracle_decide(
    owner: FieldOwner,
    mapped: bool,
    cell: FieldState,
    precision: timedelta = EXTERNAL_TIME_PRECISION,
    same: Callable[[Any, Any], bool] = same_canonical,
) -> Decision:
    """What the rules decide for one cell."""
    if not mapped:
        return Outcome.UNMAPPED, None, None, Rule.UNMAPPED
    if cell.error is not None:
        return Outcome.ERROR, None, None, Rule.INVALID_VALUE
    if same(cell.primary, cell.external):
        return Outcome.NOTHING, None, cell.primary, Rule.SAME_VALUE
    base = cell.external if cell.external_editor is Actor.SYNC else cell.base  # our own write: no edit
    primary_changed = not same(cell.primary, base)
    external_changed = not same(cell.external, base)
    push = Side.PRIMARY, cell.primary
    pull = Side.EXTERNAL, cell.external
    if owner is FieldOwner.AGENT:
        if not external_changed:
            return Outcome.PUSH, *push, Rule.AGENT_OWNED
        if not primary_changed:
            return Outcome.OVERRIDE, *pull, Rule.HUMAN_OVERRIDE
        return Outcome.CONFLICT, *push, Rule.AGENT_OWNED
    if owner is FieldOwner.HUMAN:
        outcome = Outcome.CONFLICT if primary_changed and external_changed else Outcome.PULL
        return outcome, *pull, Rule.HUMAN_OWNED
    if not external_changed:
        return Outcome.PUSH, *push, Rule.CHANGED_SIDE_WINS
    if not primary_changed:
        return Outcome.PULL, *pull, Rule.CHANGED_SIDE_WINS
    later = _later(cell.primary_changed_at, cell.external_changed_at, precision)
    if later is Side.PRIMARY:
        return Outcome.CONFLICT, *push, Rule.LAST_WRITE_WINS
    if later is Side.EXTERNAL:
        return Outcome.CONFLICT, *pull, Rule.LAST_WRITE_WINS
    return Outcome.CONFLICT, *pull, Rule.TIE_GOES_TO_HUMAN
