"""Query filters compiled once into row filters: each leaf a small test per key family (text,
number, date, options, people, formulas, rollups) that narrows a list of row indices with
C-level `compress`/`map`; a text `equals` reads its column's index instead. Kept apart from the
sorts and the engine (crm_pipeline.sandbox.query) because Notion's filter grammar is most of it."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from itertools import compress
from operator import eq, ge, gt, le, lt, ne
from typing import Any

from .errors import MISSING, body_validation, validation
from .model import DataSource, PropertySchema, normalize_id
from .properties import parse_instant
from .query_columns import MAX_PAGE_SIZE, TIMESTAMPS, Columns, Viewer

KeyTest = Callable[[Any], bool]
Resolve = Callable[[str, str], Any]  # (operand, path) -> the key it stands for
DAY_MS = 86_400_000
MAX_FILTER_DEPTH = 2


RowFilter = Callable[[Columns, list[int]], list[int]]  # narrows candidate row indices (ascending)


def _leaf(name: str, test: KeyTest) -> RowFilter:
    def run(columns: Columns, rows: list[int]) -> list[int]:
        column = columns.filter_column(name)
        keys = column if len(rows) == len(column) else map(column.__getitem__, rows)  # all rows: skip a step
        return list(compress(rows, map(test, keys)))

    return run


def _equals_leaf(name: str, key: str) -> RowFilter:
    """A text `equals`: the rows holding ``key``, from the column's index."""

    def run(columns: Columns, rows: list[int]) -> list[int]:
        found = columns.index(name).get(key, [])
        if len(rows) == len(columns.pages):
            return list(found)
        candidates = set(rows)
        return [row for row in found if row in candidates]

    return run


# --- operators per key family ------------------------------------------------------------------


def _need(kind: type | tuple[type, ...], operand: Any, path: str, what: str) -> None:
    if not isinstance(operand, kind) or (kind is not bool and isinstance(operand, bool)):
        raise body_validation(path, f"should be {what}", operand)


def _not_nan(key: float) -> bool:
    return key == key  # NaN (an empty number or date) is the only value unequal to itself


def _emptiness(op: str, operand: Any, path: str, is_empty: KeyTest, is_not_empty: KeyTest) -> KeyTest:
    if operand is not True:
        raise body_validation(path, "should be `true`", operand)
    return is_empty if op == "is_empty" else is_not_empty


# Tests run over filter columns (see `Columns.filter_column`); `partial(op, operand)` keeps the
# common comparisons in C. Note the operand comes first: `lt(operand, k)` means `k > operand`.


def _text_test(op: str, operand: Any, path: str, _: Resolve) -> KeyTest:
    if op in ("is_empty", "is_not_empty"):
        return _emptiness(op, operand, path, partial(eq, ""), partial(ne, ""))
    _need(str, operand, path, "a string")
    folded = operand.casefold()
    tests: dict[str, KeyTest] = {
        "equals": partial(eq, operand),
        "does_not_equal": partial(ne, operand),
        "contains": lambda k: folded in k.casefold(),
        "does_not_contain": lambda k: folded not in k.casefold(),
        "starts_with": lambda k: k.casefold().startswith(folded),
        "ends_with": lambda k: k.casefold().endswith(folded),
    }
    return tests[op]


def _number_test(op: str, operand: Any, path: str, _: Resolve) -> KeyTest:
    if op in ("is_empty", "is_not_empty"):
        return _emptiness(op, operand, path, math.isnan, _not_nan)
    _need((int, float), operand, path, "a number")
    comparisons = {
        "equals": eq,
        "does_not_equal": ne,
        "greater_than": lt,
        "less_than": gt,
        "greater_than_or_equal_to": le,
        "less_than_or_equal_to": ge,
    }
    return partial(comparisons[op], operand)


def _date_test(op: str, operand: Any, path: str, _: Resolve) -> KeyTest:
    """A date-only operand means the whole UTC day; one with a time compares to the millisecond."""
    if op in ("is_empty", "is_not_empty"):
        return _emptiness(op, operand, path, math.isnan, _not_nan)
    parsed = parse_instant(operand)
    if parsed is None:
        raise body_validation(path, "should be a valid ISO 8601 date string", operand)
    start, date_only = parsed
    end = start + DAY_MS if date_only else start + 1
    tests: dict[str, KeyTest] = {
        "equals": lambda k: start <= k < end,
        "before": partial(gt, start),
        "after": partial(le, end),
        "on_or_before": partial(gt, end),
        "on_or_after": partial(le, start),
    }
    return tests[op]


def _checkbox_test(op: str, operand: Any, path: str, _: Resolve) -> KeyTest:
    _need(bool, operand, path, "a boolean")
    return partial(eq if op == "equals" else ne, operand)


def _option_test(op: str, operand: Any, path: str, resolve: Resolve) -> KeyTest:
    """A select or status: `equals` one name, or any of several; an unknown name matches nothing."""
    if op in ("is_empty", "is_not_empty"):
        return _emptiness(op, operand, path, partial(eq, ""), partial(ne, ""))
    wanted = frozenset(resolve(name, path) for name in _names(operand, path))
    return wanted.__contains__ if op == "equals" else lambda k: k not in wanted


def _contains_test(op: str, operand: Any, path: str, resolve: Resolve) -> KeyTest:
    """Multi-selects, people and relations (keys are id tuples): `contains` one, or any of several."""
    if op in ("is_empty", "is_not_empty"):
        return _emptiness(op, operand, path, partial(eq, ()), partial(ne, ()))
    wanted = frozenset(resolve(name, path) for name in _names(operand, path))

    def contains(key: tuple[Any, ...]) -> bool:
        return any(item in wanted for item in key)

    return contains if op == "contains" else lambda k: not contains(k)


def _existence_test(op: str, operand: Any, path: str, _: Resolve) -> KeyTest:
    return _emptiness(op, operand, path, partial(eq, ()), partial(ne, ()))


def _names(operand: Any, path: str) -> list[str]:
    names = operand if isinstance(operand, list) else [operand]
    if not names or not all(isinstance(name, str) for name in names):
        raise body_validation(path, "should be a string or an array of strings", operand)
    return names


_TEXT_OPS = ("equals", "does_not_equal", "contains", "does_not_contain", "starts_with", "ends_with")
_NUMBER_OPS = (
    "equals", "does_not_equal", "greater_than", "less_than", "greater_than_or_equal_to", "less_than_or_equal_to",
)  # fmt: skip
_DATE_OPS = ("equals", "before", "after", "on_or_before", "on_or_after")
_EXISTENCE = ("is_empty", "is_not_empty")
Family = tuple[tuple[str, ...], Callable[[str, Any, str, Resolve], KeyTest]]
_FAMILIES: dict[str, Family] = {
    "text": ((*_TEXT_OPS, *_EXISTENCE), _text_test),
    "number": ((*_NUMBER_OPS, *_EXISTENCE), _number_test),
    "date": ((*_DATE_OPS, *_EXISTENCE), _date_test),
    "checkbox": (("equals", "does_not_equal"), _checkbox_test),
    "option": (("equals", "does_not_equal", *_EXISTENCE), _option_test),
    "contains": (("contains", "does_not_contain", *_EXISTENCE), _contains_test),
    "existence": (_EXISTENCE, _existence_test),
}
_FAMILY_OF = {
    "title": "text", "rich_text": "text", "email": "text", "url": "text", "phone_number": "text",
    "number": "number", "unique_id": "number",
    "date": "date", "created_time": "date", "last_edited_time": "date",
    "checkbox": "checkbox", "select": "option", "status": "option",
    "multi_select": "contains", "people": "contains", "created_by": "contains", "last_edited_by": "contains",
    "relation": "contains", "files": "existence",
}  # fmt: skip
# A formula result's type for each sub-condition, and a rollup item's types for each sub-filter.
_FORMULA_CONDITIONS = {"string": "string", "checkbox": "boolean", "number": "number", "date": "date"}
_ROLLUP_ITEM_TYPES = {
    "rich_text": ("title", "rich_text"), "number": ("number",), "checkbox": ("checkbox",), "select": ("select",),
    "multi_select": ("multi_select",), "relation": ("relation",), "date": ("date",), "people": ("people",),
    "files": ("files",), "status": ("status",),
}  # fmt: skip


def _condition(raw: Any, path: str, subject: str, family: str, resolve: Resolve) -> KeyTest:
    """One `{operator: operand}` object, checked against the operators of the key family."""
    ops, build = _FAMILIES[family]
    if not isinstance(raw, dict) or len(raw) != 1:
        raise body_validation(path, "should be an object with exactly one operator", raw)
    ((op, operand),) = raw.items()
    if op not in ops:
        raise validation(
            f"body failed validation: {path}.{op} is not a valid filter operator for {subject}. "
            f"Valid operators: {', '.join(ops)}."
        )
    return build(op, operand, f"{path}.{op}", resolve)


def _one_key(raw: Any, path: str, keys: tuple[str, ...] | dict[str, Any]) -> tuple[str, Any]:
    if not isinstance(raw, dict) or len(raw) != 1 or next(iter(raw)) not in keys:
        raise body_validation(path, f"should be an object with one of {', '.join(keys)}", raw)
    ((key, value),) = raw.items()
    return key, value


def _as_is(operand: str, path: str) -> str:
    return operand


def _an_id(operand: str, path: str) -> str:
    page_id = normalize_id(operand)
    if page_id is None:
        raise body_validation(path, "should be a valid uuid", operand)
    return page_id


# --- filters -----------------------------------------------------------------------------------


def compile_filter(ds: DataSource, raw: Any, viewer: Viewer, path: str = "body.filter", depth: int = 0) -> RowFilter:
    if not isinstance(raw, dict):
        raise body_validation(path, "should be an object", raw)
    for compound in ("and", "or"):
        if compound in raw:
            return _compound(ds, compound, raw[compound], viewer, f"{path}.{compound}", depth + 1)
    if "timestamp" in raw:
        return _timestamp_predicate(raw, path)
    if "property" in raw:
        return _property_predicate(ds, raw, viewer, path)
    raise body_validation(path, "should have `property`, `timestamp`, `and` or `or`", raw)


def _compound(ds: DataSource, kind: str, raw: Any, viewer: Viewer, path: str, depth: int) -> RowFilter:
    if depth > MAX_FILTER_DEPTH:
        raise validation(f"body failed validation: {path} nests filters more than {MAX_FILTER_DEPTH} levels deep.")
    if not isinstance(raw, list):
        raise body_validation(path, "should be an array", raw)
    if len(raw) > MAX_PAGE_SIZE:
        raise body_validation(f"{path}.length", f"should be ≤ `{MAX_PAGE_SIZE}`", len(raw))
    parts = [compile_filter(ds, item, viewer, f"{path}[{i}]", depth) for i, item in enumerate(raw)]
    if kind == "and":

        def every(columns: Columns, rows: list[int]) -> list[int]:
            for part in parts:
                rows = part(columns, rows)
            return rows

        return every

    def some(columns: Columns, rows: list[int]) -> list[int]:
        matched: set[int] = set()
        for part in parts:
            matched.update(part(columns, rows))
        if len(matched) < len(rows) // 8:  # few matches (a key lookup): sorting them beats a pass over every row
            return sorted(matched)
        return [row for row in rows if row in matched]

    return some


def _timestamp_predicate(raw: dict[str, Any], path: str) -> RowFilter:
    name = raw["timestamp"]
    if not isinstance(name, str) or name not in TIMESTAMPS:
        raise body_validation(f"{path}.timestamp", "should be `created_time` or `last_edited_time`", name)
    return _leaf(name, _condition(raw.get(name, MISSING), f"{path}.{name}", name, "date", _as_is))


def _property_predicate(ds: DataSource, raw: dict[str, Any], viewer: Viewer, path: str) -> RowFilter:
    key = raw["property"]
    prop = ds.resolve(key) if isinstance(key, str) else None
    if prop is None:
        raise validation(f"Could not find property with name or id: {key}")
    given = [k for k in raw if k not in ("property", "type")]
    accepted = {prop.type, "rich_text"} if prop.type == "title" else {prop.type}
    if len(given) != 1 or given[0] not in accepted:
        raise validation(
            f"body failed validation: {path} must filter property {prop.name} (type {prop.type}) "
            f"with a `{prop.type}` condition, instead got `{', '.join(given) or 'none'}`."
        )
    at, subject = f"{path}.{given[0]}", f"property {prop.name}"
    condition = raw[given[0]]
    if prop.type == "formula":
        test = _formula_test(condition, at, subject)
    elif prop.type == "rollup":
        test = _rollup_test(condition, at, subject, viewer)
    else:
        family = _FAMILY_OF[prop.type]
        test = _condition(condition, at, subject, family, _resolver(prop, viewer))
        if family == "text" and set(condition) == {"equals"}:
            return _equals_leaf(prop.id, condition["equals"])
    return _leaf(prop.id, test)


def _resolver(prop: PropertySchema, viewer: Viewer) -> Resolve:
    """What a condition's operand stands for in the keys: option names become option ids,
    `me` the asking bot, other ids their dashed form."""
    if prop.type in ("select", "status", "multi_select"):
        return lambda name, path: option.id if (option := prop.option_by_name(name)) else None
    if prop.type in ("people", "created_by", "last_edited_by"):
        return lambda operand, path: viewer.me if operand == "me" else _an_id(operand, path)
    return _an_id if prop.type == "relation" else _as_is


def _formula_test(raw: Any, path: str, subject: str) -> KeyTest:
    """`{string | checkbox | number | date: condition}`, matching results of that type only."""
    sub, condition = _one_key(raw, path, _FORMULA_CONDITIONS)
    family = {"string": "text", "checkbox": "checkbox", "number": "number", "date": "date"}[sub]
    inner = _condition(condition, f"{path}.{sub}", subject, family, _as_is)
    result_type = _FORMULA_CONDITIONS[sub]
    return lambda key: key[0] == result_type and inner(key[1])


def _rollup_test(raw: Any, path: str, subject: str, viewer: Viewer) -> KeyTest:
    """`{number | date: condition}` on a number or date result; `{any | every | none: {type:
    condition}}` over an array result's items (selects by name)."""
    kind, condition = _one_key(raw, path, ("any", "every", "none", "number", "date"))
    if kind in ("number", "date"):
        inner = _condition(condition, f"{path}.{kind}", subject, kind, _as_is)
        return lambda key: key[0] == kind and inner(key[1])
    sub, item_condition = _one_key(condition, f"{path}.{kind}", _ROLLUP_ITEM_TYPES)
    family = "text" if sub == "rich_text" else _FAMILY_OF[sub]
    resolve: Resolve = (
        (lambda o, p: viewer.me if o == "me" else _an_id(o, p)) if sub in ("people", "relation") else _as_is
    )
    test = _condition(item_condition, f"{path}.{kind}.{sub}", subject, family, resolve)
    item_types = _ROLLUP_ITEM_TYPES[sub]

    def matches(item: tuple[str, Any]) -> bool:
        return item[0] in item_types and test(item[1])

    if kind == "any":
        return lambda key: key[0] == "array" and any(map(matches, key[1]))
    if kind == "every":
        return lambda key: key[0] == "array" and all(map(matches, key[1]))
    return lambda key: key[0] == "array" and not any(map(matches, key[1]))
