"""The merge core: one decision per (record, field), over whole columns at once.

Pure: no I/O, no clock, no database. ``decide`` evaluates docs/sync-rules.md's decision table
(``rules.DECISION_TABLE``) on a long frame of cells, one boolean column per condition and one
``np.select`` over the table's rows, so a full reconciliation of 100,000 deals and the engine's
single-record case run the same code. ``decide_record`` is the single-record convenience over it.

"Changed" means a value differs from the base by ``comparable``, so the echo of the sync's own write
is recognised by value. Where the external side says per field who last edited it (HubSpot), a
value the sync itself wrote there is no external change either, whatever the base holds (a write
whose answer was lost leaves the base behind): that value counts as the base. The editor of a
whole record (Notion's) is never used: it does not say which field was edited. Times only order a
conflict on a shared field.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from crm_pipeline.models import Actor
from crm_pipeline.sync.model import (
    CELL_COLUMNS,
    DECISION_COLUMNS,
    EXTERNAL_TIME_PRECISION,
    FieldDecision,
    FieldState,
    Outcome,
    Side,
)
from crm_pipeline.sync.ownership import FieldOwner, FieldOwnershipConfig
from crm_pipeline.sync.rules import DECISION_TABLE, TimeOrder

__all__ = ["cells_frame", "comparable", "decide", "decide_record"]

Mask = npt.NDArray[np.bool_]

_VALUE_COLUMNS = ("base", "primary", "external")
_TIME_COLUMNS = ("primary_changed_at", "external_changed_at")

# --- value comparison ----------------------------------------------------------------------------

_AS_IS = frozenset({str, int, Decimal, date, type(None)})
_BOOL = "bool"


def comparable(value: Any) -> Any:
    """``value`` in the form the merge compares with ``==``: equal exactly when the sync sees no change.

    Numbers compare by value (Decimal("1.0") == Decimal("1.00") == 1; a float by its shortest
    repr, as the Notion codec reads it); a bool is never the number 1; dicts ignore key order;
    lists and tuples are the same sequence; an empty string or list is None, as the codecs read it
    back.
    Types otherwise stay apart: the text "2025-01-31" is not the date 2025-01-31. (NaN is no
    value at all here: the models and the codecs refuse it.)
    """
    kind = type(value)
    if kind is str:
        return value or None
    if kind in _AS_IS:  # the common case, without a second call
        return value
    if (kind is list or kind is tuple) and not value:
        return None
    return _normal(value)


def _normal(value: Any) -> Any:
    kind = type(value)
    if kind in _AS_IS:
        return value
    if kind is bool:
        # A tuple never equals a normalised value (sequences become lists), and True == 1 no more.
        return (_BOOL, value)
    if kind is float:
        return Decimal(repr(value))
    if kind is dict:
        return {key: _normal(item) for key, item in value.items()}
    if kind is list or kind is tuple:
        return [_normal(item) for item in value]
    return value


def _comparables(column: pd.Series[Any]) -> npt.NDArray[np.object_]:
    return np.fromiter(map(comparable, column.to_numpy(dtype=object)), dtype=object, count=len(column))


# --- conditions ----------------------------------------------------------------------------------


def _time_order(cells: pd.DataFrame, precision: timedelta) -> dict[TimeOrder, Mask]:
    """Which side changed later; a side whose time is unknown is older than any known time."""
    primary_at, external_at = cells["primary_changed_at"], cells["external_changed_at"]
    primary_known, external_known = primary_at.notna(), external_at.notna()
    step = pd.Timedelta(precision)
    primary_later = (primary_known & (~external_known | (primary_at >= external_at + step))).to_numpy(dtype=bool)
    external_later = (external_known & (~primary_known | (external_at >= primary_at + step))).to_numpy(dtype=bool)
    return {
        TimeOrder.PRIMARY_LATER: primary_later,
        TimeOrder.EXTERNAL_LATER: external_later,
        TimeOrder.TIE: ~(primary_later | external_later),
    }


def _condition_masks(cells: pd.DataFrame, precision: timedelta) -> dict[tuple[str, object], Mask]:
    """Every (condition, value) pair of the table as a boolean column over the cells."""
    base, primary, external = (_comparables(cells[column]) for column in _VALUE_COLUMNS)
    ours = (cells["external_editor"] == Actor.SYNC).to_numpy(dtype=bool)
    base = np.where(ours, external, base)  # the sync's own write is no external change
    flags: dict[str, Mask] = {
        "mapped": cells["mapped"].to_numpy(dtype=bool),
        "valid": cells["error"].isna().to_numpy(dtype=bool),
        "equal": np.asarray(primary == external, dtype=bool),
        "primary_changed": np.asarray(primary != base, dtype=bool),
        "external_changed": np.asarray(external != base, dtype=bool),
    }
    masks = {("owner", owner): mask for owner, mask in _one_hot(cells["owner"], FieldOwner).items()}
    masks |= {("time_order", order): mask for order, mask in _time_order(cells, precision).items()}
    for name, flag in flags.items():
        masks[name, True], masks[name, False] = flag, ~flag
    return masks


def _one_hot(column: pd.Series[Any], values: Iterable[object]) -> dict[object, Mask]:
    """Where ``column`` holds each of ``values``, factorized once (cheaper than comparing objects)."""
    codes, uniques = pd.factorize(column)
    code_of = {value: code for code, value in enumerate(uniques)}
    return {
        value: codes == code_of[value] if value in code_of else np.zeros(len(codes), dtype=bool) for value in values
    }


def _table_rows(masks: dict[tuple[str, object], Mask], size: int) -> npt.NDArray[np.intp]:
    """The index of the table row each cell falls in (rows are mutually exclusive)."""
    matches = []
    for row in DECISION_TABLE:
        match = np.ones(size, dtype=bool)
        for condition in row.when.required():
            match &= masks[condition]
        matches.append(match)
    rows = np.select(matches, np.arange(len(DECISION_TABLE)), default=-1)
    if (rows < 0).any():
        raise ValueError(f"{int((rows < 0).sum())} cells match no rule (an owner outside {list(FieldOwner)}?)")
    return rows.astype(np.intp)


# --- decisions -----------------------------------------------------------------------------------

_OUTCOMES = np.array([row.outcome for row in DECISION_TABLE], dtype=object)
_WINNERS = np.array([row.winner for row in DECISION_TABLE], dtype=object)
_RULES = np.array([row.rule for row in DECISION_TABLE], dtype=object)
_TAKES_EXTERNAL = np.array([row.winner is Side.EXTERNAL for row in DECISION_TABLE])
_HAS_VALUE = np.array([row.outcome not in (Outcome.ERROR, Outcome.UNMAPPED) for row in DECISION_TABLE])


def decide(cells: pd.DataFrame, *, precision: timedelta = EXTERNAL_TIME_PRECISION) -> pd.DataFrame:
    """Decide every cell of ``cells`` (a frame with ``CELL_COLUMNS``, as ``cells_frame`` builds it).

    Returns, on the same index, ``record``, ``field``, ``outcome`` (``Outcome``), ``winner``
    (``Side`` or None), ``value`` (the winner's value, the common value for NOTHING, None for ERROR
    and UNMAPPED) and ``rule`` (``Rule``). ``precision`` is how finely the external side dates
    its edits: shared-field changes closer together than that are a tie.
    """
    _check_columns(cells)
    rows = _table_rows(_condition_masks(cells, precision), len(cells))
    primary = cells["primary"].to_numpy(dtype=object)
    external = cells["external"].to_numpy(dtype=object)
    value = np.where(_TAKES_EXTERNAL[rows], external, primary)
    value[~_HAS_VALUE[rows]] = None
    columns = {
        "record": cells["record"].to_numpy(),
        "field": cells["field"].to_numpy(),
        "outcome": _OUTCOMES[rows],
        "winner": _WINNERS[rows],
        "value": value,
        "rule": _RULES[rows],
    }
    # dtype object throughout: inferred, a column of StrEnums and None would become text and NaN.
    return pd.DataFrame(
        {name: pd.Series(column, index=cells.index, dtype=object) for name, column in columns.items()},
        columns=list(DECISION_COLUMNS),
        copy=False,
    )


def _check_columns(cells: pd.DataFrame) -> None:
    """Refuse frames that would decide wrongly rather than fail: missing columns, values that are
    not Python objects (a float column turns None into NaN), naive or non-time change times."""
    missing = [column for column in CELL_COLUMNS if column not in cells.columns]
    if missing:
        raise ValueError(f"cells lack the columns {missing}")
    for column in _VALUE_COLUMNS:
        if cells[column].dtype != object:
            raise TypeError(f"column {column!r} must hold Python objects (dtype object), not {cells[column].dtype}")
    for column in _TIME_COLUMNS:
        if not isinstance(cells[column].dtype, pd.DatetimeTZDtype):
            raise TypeError(f"column {column!r} must hold timezone-aware times, not {cells[column].dtype}")


# --- building cells ------------------------------------------------------------------------------


def cells_frame(
    cells: Iterable[tuple[str, FieldState]],
    ownership: FieldOwnershipConfig,
    mapped_fields: Collection[str],
) -> pd.DataFrame:
    """The frame ``decide`` reads, from (record id, field state) pairs.

    The owner of each field comes from ``ownership.owner_of``; a field is mapped when it is in
    ``mapped_fields`` (the fields the external side has a property for). Values are kept as
    Python objects (dtype object) and times as UTC timestamps (NaT when unknown); the external
    editor as an ``Actor`` or None.
    """
    pairs = list(cells)
    names = [state.field for _, state in pairs]
    owners = {name: ownership.owner_of(name).value for name in set(names)}
    states = [state for _, state in pairs]
    return pd.DataFrame(
        {
            "record": pd.Series([record for record, _ in pairs], dtype=object),
            "field": pd.Series(names, dtype=object),
            "owner": pd.Series([owners[name] for name in names], dtype=object),
            "mapped": pd.Series([name in mapped_fields for name in names], dtype=bool),
            "error": pd.Series([state.error for state in states], dtype=object),
            "base": pd.Series([state.base for state in states], dtype=object),
            "primary": pd.Series([state.primary for state in states], dtype=object),
            "primary_changed_at": _instants([state.primary_changed_at for state in states]),
            "external": pd.Series([state.external for state in states], dtype=object),
            "external_changed_at": _instants([state.external_changed_at for state in states]),
            "external_editor": pd.Series([state.external_editor for state in states], dtype=object),
        }
    )


def _instants(times: list[datetime | None]) -> pd.Series[pd.Timestamp]:
    return pd.to_datetime(pd.Series(times, dtype=object), utc=True)


def decide_record(
    record: str,
    fields: Iterable[FieldState],
    ownership: FieldOwnershipConfig,
    mapped_fields: Collection[str],
    *,
    precision: timedelta = EXTERNAL_TIME_PRECISION,
) -> list[FieldDecision]:
    """The decisions for one record's fields: ``decide`` on a frame of just this record."""
    decided = decide(cells_frame(((record, state) for state in fields), ownership, mapped_fields), precision=precision)
    return [
        FieldDecision(record, field, outcome, winner, value, rule)
        for field, outcome, winner, value, rule in zip(
            decided["field"], decided["outcome"], decided["winner"], decided["value"], decided["rule"], strict=True
        )
    ]
