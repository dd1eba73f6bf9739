"""Data source queries: filters compiled once, evaluated column-wise; sorts, cursors, the cap.

Rows are evaluated as aligned *columns* of stored keys (built lazily per property and kept until
the data source changes), and a compiled filter narrows a list of row indices using C-level
`compress`/`map`, calling one small test per row and leaf; a text `equals` (the sync's key
lookups) reads an index of its column instead. A query's ordered result is cached
per data source version too, so paging through a large result filters and sorts once.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from itertools import compress
from operator import eq, ge, gt, le, lt, ne
from typing import Any, Protocol, TypeVar

from .errors import MISSING, body_validation, validation
from .model import DataSource, Page, PropertySchema, User, normalize_id
from .properties import COMPUTED_TYPES, EMPTY_KEYS, TEXT_TYPES, computed_key, default_computed, parse_instant

T = TypeVar("T", bound="Identified")
T_co = TypeVar("T_co", bound="Identified", covariant=True)
KeyTest = Callable[[Any], bool]
Resolve = Callable[[str, str], Any]  # (operand, path) -> the key it stands for
DAY_MS = 86_400_000
MAX_FILTER_DEPTH = 2
MAX_PAGE_SIZE = 100
TIMESTAMPS = {"created_time": "created_ms", "last_edited_time": "edited_ms"}
EDITORS = {"created_by": "created_by", "last_edited_by": "edited_by"}
FILTER_FILLERS: dict[str, Any] = {
    "number": math.nan,
    "date": math.nan,
    "select": "",
    "status": "",
}


@dataclass(frozen=True)
class Viewer:
    """Who is asking: `me` in people filters, and the names people sorts compare."""

    me: str
    users: Mapping[str, User]


@dataclass(frozen=True)
class QueryPage:
    pages: list[Page]  # this page of results
    next_cursor: str | None
    capped: bool  # the result cap cut the result short; Notion reports request_status incomplete


class Columns:
    """Per-property key columns of a data source's live (or trashed) rows, aligned by row index."""

    def __init__(self, ds: DataSource, in_trash: bool) -> None:
        self.ds = ds
        self.pages = [page for page in ds.pages.values() if page.in_trash == in_trash]
        self._columns: dict[tuple[str, str], list[Any]] = {}
        self._indexes: dict[str, dict[Any, list[int]]] = {}

    def column(self, name: str) -> list[Any]:
        """Keys of a property id (None when empty), or of `created_time` / `last_edited_time`.
        The page's own times and editors back the properties of those types."""
        kind = self.ds.properties[name].type if name not in TIMESTAMPS else name
        if kind in TIMESTAMPS:
            attribute = TIMESTAMPS[kind]
            return self.derived(name, "", lambda: [getattr(page, attribute) for page in self.pages])
        if kind in EDITORS:
            editor = EDITORS[kind]
            return self.derived(name, "", lambda: [(getattr(page, editor),) for page in self.pages])
        empty = EMPTY_KEYS.get(kind)
        return self.derived(name, "", lambda: [page.keys.get(name, empty) for page in self.pages])

    def filter_column(self, name: str) -> list[Any]:
        """Keys with empties filled so C-level comparisons work: NaN for numbers and dates, "" for
        selects, a formula's or rollup's empty result for those."""
        prop = self.ds.properties.get(name) if name not in TIMESTAMPS else None
        filler = _filler(prop) if prop is not None else None
        if filler is None:
            return self.column(name)
        return self.derived(name, "filter", lambda: [filler if k is None else k for k in self.column(name)])

    def index(self, name: str) -> dict[Any, list[int]]:
        """Each filter key of a property -> the rows holding it, in row order: an `equals` (a key
        lookup of 50 keys, say) finds its rows without comparing every row's key."""
        index = self._indexes.get(name)
        if index is None:
            index = self._indexes[name] = {}
            for row, key in enumerate(self.filter_column(name)):
                index.setdefault(key, []).append(row)
        return index

    def derived(self, name: str, variant: str, build: Callable[[], list[Any]]) -> list[Any]:
        column = self._columns.get((name, variant))
        if column is None:
            column = self._columns[(name, variant)] = build()
        return column


def _filler(prop: PropertySchema) -> Any:
    if prop.type in COMPUTED_TYPES:
        return computed_key(default_computed(prop))
    return FILTER_FILLERS.get(prop.type)


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


# --- sorts -------------------------------------------------------------------------------------


SortColumn = Callable[[Columns], list[Any]]  # aligned sort keys; None sorts last


def compile_sorts(ds: DataSource, raw: Any, viewer: Viewer) -> list[tuple[SortColumn, bool]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise body_validation("body.sorts", "should be an array", raw)
    compiled: list[tuple[SortColumn, bool]] = []
    for i, item in enumerate(raw):
        path = f"body.sorts[{i}]"
        if not isinstance(item, dict):
            raise body_validation(path, "should be an object", item)
        direction = item.get("direction", MISSING)
        if direction not in ("ascending", "descending"):
            raise body_validation(f"{path}.direction", "should be `ascending` or `descending`", direction)
        compiled.append((_sort_column(ds, item, path, viewer), direction == "descending"))
    return compiled


def _sort_column(ds: DataSource, item: dict[str, Any], path: str, viewer: Viewer) -> SortColumn:
    if "timestamp" in item:
        name = item["timestamp"]
        if not isinstance(name, str) or name not in TIMESTAMPS:
            raise body_validation(f"{path}.timestamp", "should be `created_time` or `last_edited_time`", name)
        return lambda columns: columns.column(name)
    key = item.get("property", MISSING)
    prop = ds.resolve(key) if isinstance(key, str) else None
    if prop is None:
        raise validation(f"Could not find sort property with name or id: {key if key is not MISSING else ''}")
    prop_id = prop.id
    sort_key = _sort_key(prop, viewer)
    if sort_key is None:
        return lambda columns: columns.column(prop_id)
    return lambda c: c.derived(prop_id, "sort", lambda: [None if k is None else sort_key(k) for k in c.column(prop_id)])


def _sort_key(prop: PropertySchema, viewer: Viewer) -> Callable[[Any], Any] | None:
    """How a property's keys order (None: as stored). Selects and statuses follow the schema's
    option order, multi-selects their options' ranks, people their names; text ignores case;
    relations and files order by how many they hold; formulas and rollups by result (type first).
    Empty values map to None, which sorts last either way."""
    kind = prop.type
    if kind in ("select", "status", "multi_select"):
        rank = {option.id: index for index, option in enumerate(prop.options)}
        if kind == "multi_select":
            return lambda ids: tuple(sorted(rank[i] for i in ids if i in rank)) or None
        return rank.get
    if kind in TEXT_TYPES or kind in ("email", "url", "phone_number"):
        return lambda text: text.casefold() or None
    if kind in ("people", "created_by", "last_edited_by"):
        return lambda ids: tuple(_user_name(viewer, i) for i in ids) or None
    if kind in ("relation", "files"):
        return lambda items: len(items) or None
    if kind in COMPUTED_TYPES:
        return _result_sort_key
    return None


def _user_name(viewer: Viewer, user_id: str) -> str:
    user = viewer.users.get(user_id)
    return (user.name if user is not None else user_id).casefold()


def _result_sort_key(key: tuple[str, Any]) -> Any:
    kind, value = key
    if kind == "array":
        return (kind, len(value)) if value else None
    empty = value == "" or (isinstance(value, float) and math.isnan(value))
    return None if empty else (kind, value)


def _ordered(columns: Columns, rows: list[int], sorts: list[tuple[SortColumn, bool]], sort_key: str) -> list[int]:
    """`rows` in the order of `sorts`. Every row's order is sorted once per sort spec and data
    source version; a query then only picks its matches out of it, whatever its filter."""
    if not sorts:
        return rows  # creation order, as Notion returns unsorted queries
    order = columns.derived("", f"order:{sort_key}", lambda: _sorted(columns, list(range(len(columns.pages))), sorts))
    if len(rows) == len(order):
        return order
    selected = bytearray(len(order))
    for row in rows:
        selected[row] = 1
    return list(compress(order, map(selected.__getitem__, order)))


def _sorted(columns: Columns, rows: list[int], sorts: list[tuple[SortColumn, bool]]) -> list[int]:
    """Stable multi-key sort, least significant key first; empty values sort last either way."""
    for sort_column, descending in reversed(sorts):
        keys = sort_column(columns)
        if None not in keys:
            rows = sorted(rows, key=keys.__getitem__, reverse=descending)
            continue
        present = [row for row in rows if keys[row] is not None]
        present.sort(key=keys.__getitem__, reverse=descending)
        rows = present + [row for row in rows if keys[row] is None]
    return rows


# --- execution -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    """An ordered query result: row indices into a column snapshot's pages (no per-row list built)."""

    pages: list[Page]
    rows: list[int]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> Page:
        return self.pages[self.rows[index]]


class QueryEngine:
    def __init__(self, cache_size: int = 64) -> None:
        self._results: OrderedDict[tuple[str, int, str], Result] = OrderedDict()
        self._columns: dict[tuple[str, bool], tuple[int, Columns]] = {}
        self._cache_size = cache_size

    def clear(self) -> None:
        self._results.clear()
        self._columns.clear()

    def run(self, ds: DataSource, body: dict[str, Any], result_cap: int, viewer: Viewer) -> QueryPage:
        page_size = page_size_of(body.get("page_size"), "body.page_size")
        in_trash = _in_trash_flag(body)
        result = self._result(ds, body, in_trash, viewer)
        pages, next_cursor = paginate(result, body.get("start_cursor"), page_size, result_cap)
        return QueryPage(pages, next_cursor, next_cursor is None and len(result) > result_cap)

    def _result(self, ds: DataSource, body: dict[str, Any], in_trash: bool, viewer: Viewer) -> Result:
        signature = json.dumps([body.get("filter"), body.get("sorts"), in_trash, viewer.me], sort_keys=True)
        cache_key = (ds.id, ds.rows_version, signature)
        cached = self._results.get(cache_key)
        if cached is not None:
            self._results.move_to_end(cache_key)
            return cached
        row_filter = compile_filter(ds, body["filter"], viewer) if body.get("filter") is not None else None
        sorts = compile_sorts(ds, body.get("sorts"), viewer)
        columns = self._columns_of(ds, in_trash)
        rows = list(range(len(columns.pages)))
        if row_filter is not None:
            rows = row_filter(columns, rows)
        # Names in sorts resolve against the schema, so a rename must not reuse an old order.
        sort_key = json.dumps([ds.schema_version, body.get("sorts")], sort_keys=True)
        result = Result(columns.pages, _ordered(columns, rows, sorts, sort_key))
        self._results[cache_key] = result
        if len(self._results) > self._cache_size:
            self._results.popitem(last=False)
        return result

    def _columns_of(self, ds: DataSource, in_trash: bool) -> Columns:
        cached = self._columns.get((ds.id, in_trash))
        if cached is None or cached[0] != ds.rows_version:
            cached = (ds.rows_version, Columns(ds, in_trash))
            self._columns[(ds.id, in_trash)] = cached
        return cached[1]


def _in_trash_flag(body: dict[str, Any]) -> bool:
    flags = [body[key] for key in ("in_trash", "archived") if body.get(key) is not None]
    for flag in flags:
        if not isinstance(flag, bool):
            raise body_validation("body.in_trash", "should be a boolean", flag)
    return any(flags)


class Identified(Protocol):
    @property
    def id(self) -> str: ...


class Rows(Protocol[T_co]):
    """What pagination needs of an ordered result: a list, or a query `Result`."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int, /) -> T_co: ...


def page_size_of(raw: Any, path: str) -> int:
    size = MAX_PAGE_SIZE if raw is None else raw
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_PAGE_SIZE:
        raise body_validation(path, f"should be an integer between 1 and {MAX_PAGE_SIZE}", raw)
    return size


def paginate(items: Rows[T], cursor: Any, page_size: int, limit: int | None = None) -> tuple[list[T], str | None]:
    """One page of an ordered result (up to `limit` items of it) and the cursor to the next."""
    start = decode_cursor(cursor, items)
    visible = len(items) if limit is None else min(len(items), limit)
    end = min(start + page_size, visible)
    return [items[i] for i in range(start, end)], encode_cursor(end, items[end].id) if end < visible else None


def encode_cursor(index: int, object_id: str) -> str:
    return base64.urlsafe_b64encode(f"{index}:{object_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: Any, rows: Rows[Identified]) -> int:
    """Resume at the object the cursor names; if it left the result meanwhile, at its old position."""
    if cursor is None:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        index_text, object_id = text.split(":", 1)
        index = int(index_text)
    except (TypeError, ValueError, binascii.Error, UnicodeDecodeError):
        raise validation(f"The start_cursor provided is invalid: {cursor}") from None
    if index < 0:
        raise validation(f"The start_cursor provided is invalid: {cursor}")
    if index < len(rows) and rows[index].id == object_id:
        return index
    position = next((i for i in range(len(rows)) if rows[i].id == object_id), None)
    return position if position is not None else min(index, len(rows))
