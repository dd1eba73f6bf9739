"""Data source queries: filters compiled once, evaluated column-wise; sorts, cursors, the cap.

Rows are evaluated as aligned *columns* of stored keys (built lazily per property and kept until
the data source changes), and a compiled filter narrows a list of row indices using C-level
`compress`/`map`, calling one small test per row and leaf. A query's ordered result is cached
per data source version too, so paging through a large result filters and sorts once.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from itertools import compress
from operator import eq, ge, gt, le, lt, ne
from typing import Any

from .errors import MISSING, body_validation, validation
from .model import DataSource, Page
from .properties import EMPTY_KEYS, parse_instant

KeyTest = Callable[[Any], bool]
DAY_MS = 86_400_000
MAX_FILTER_DEPTH = 2
MAX_PAGE_SIZE = 100
TIMESTAMPS = {"created_time": "created_ms", "last_edited_time": "edited_ms"}
FILTER_FILLERS: dict[str, Any] = {"number": math.nan, "date": math.nan, "select": ""}


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

    def column(self, name: str) -> list[Any]:
        """Keys of a property id (None when empty), or of `created_time` / `last_edited_time`."""
        if name in TIMESTAMPS:
            attribute = TIMESTAMPS[name]
            return self.derived(name, "", lambda: [getattr(page, attribute) for page in self.pages])
        empty = EMPTY_KEYS.get(self.ds.properties[name].type)
        return self.derived(name, "", lambda: [page.keys.get(name, empty) for page in self.pages])

    def filter_column(self, name: str) -> list[Any]:
        """Keys with empties filled so C-level comparisons work: NaN for numbers/dates, "" for selects."""
        filler = FILTER_FILLERS.get(self.ds.properties[name].type) if name not in TIMESTAMPS else None
        if filler is None:
            return self.column(name)
        return self.derived(name, "filter", lambda: [filler if k is None else k for k in self.column(name)])

    def derived(self, name: str, variant: str, build: Callable[[], list[Any]]) -> list[Any]:
        column = self._columns.get((name, variant))
        if column is None:
            column = self._columns[(name, variant)] = build()
        return column


RowFilter = Callable[[Columns, list[int]], list[int]]  # narrows candidate row indices


def _leaf(name: str, test: KeyTest) -> RowFilter:
    def run(columns: Columns, rows: list[int]) -> list[int]:
        column = columns.filter_column(name)
        keys = column if len(rows) == len(column) else map(column.__getitem__, rows)  # all rows: skip a step
        return list(compress(rows, map(test, keys)))

    return run


# --- operators per property family ------------------------------------------------------------


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


def _text_test(op: str, operand: Any, path: str) -> KeyTest:
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


def _number_test(op: str, operand: Any, path: str) -> KeyTest:
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


def _date_test(op: str, operand: Any, path: str) -> KeyTest:
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


def _checkbox_test(op: str, operand: Any, path: str) -> KeyTest:
    _need(bool, operand, path, "a boolean")
    return partial(eq if op == "equals" else ne, operand)


_TEXT_OPS = (
    "equals",
    "does_not_equal",
    "contains",
    "does_not_contain",
    "starts_with",
    "ends_with",
    "is_empty",
    "is_not_empty",
)
_NUMBER_OPS = (
    "equals",
    "does_not_equal",
    "greater_than",
    "less_than",
    "greater_than_or_equal_to",
    "less_than_or_equal_to",
    "is_empty",
    "is_not_empty",
)
_DATE_OPS = ("equals", "before", "after", "on_or_before", "on_or_after", "is_empty", "is_not_empty")
_FAMILIES: dict[str, tuple[tuple[str, ...], Callable[[str, Any, str], KeyTest]]] = {
    "text": (_TEXT_OPS, _text_test),
    "number": (_NUMBER_OPS, _number_test),
    "date": (_DATE_OPS, _date_test),
    "checkbox": (("equals", "does_not_equal"), _checkbox_test),
}
_FAMILY_OF = {
    "title": "text", "rich_text": "text", "email": "text", "url": "text", "phone_number": "text",
    "number": "number", "date": "date", "checkbox": "checkbox",
}  # fmt: skip


def _operator(raw: Any, path: str, subject: str, family: str) -> tuple[str, Any, str]:
    ops = _FAMILIES[family][0]
    if not isinstance(raw, dict) or len(raw) != 1:
        raise body_validation(path, "should be an object with exactly one operator", raw)
    ((op, operand),) = raw.items()
    if op not in ops:
        raise validation(
            f"body failed validation: {path}.{op} is not a valid filter operator for {subject}. "
            f"Valid operators: {', '.join(ops)}."
        )
    return op, operand, f"{path}.{op}"


# --- filters -----------------------------------------------------------------------------------


def compile_filter(ds: DataSource, raw: Any, path: str = "body.filter", depth: int = 0) -> RowFilter:
    if not isinstance(raw, dict):
        raise body_validation(path, "should be an object", raw)
    for compound in ("and", "or"):
        if compound in raw:
            return _compound(ds, compound, raw[compound], f"{path}.{compound}", depth + 1)
    if "timestamp" in raw:
        return _timestamp_predicate(raw, path)
    if "property" in raw:
        return _property_predicate(ds, raw, path)
    raise body_validation(path, "should have `property`, `timestamp`, `and` or `or`", raw)


def _compound(ds: DataSource, kind: str, raw: Any, path: str, depth: int) -> RowFilter:
    if depth > MAX_FILTER_DEPTH:
        raise validation(f"body failed validation: {path} nests filters more than {MAX_FILTER_DEPTH} levels deep.")
    if not isinstance(raw, list):
        raise body_validation(path, "should be an array", raw)
    if len(raw) > MAX_PAGE_SIZE:
        raise body_validation(f"{path}.length", f"should be ≤ `{MAX_PAGE_SIZE}`", len(raw))
    parts = [compile_filter(ds, item, f"{path}[{i}]", depth) for i, item in enumerate(raw)]
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
        return [row for row in rows if row in matched]

    return some


def _timestamp_predicate(raw: dict[str, Any], path: str) -> RowFilter:
    name = raw["timestamp"]
    if not isinstance(name, str) or name not in TIMESTAMPS:
        raise body_validation(f"{path}.timestamp", "should be `created_time` or `last_edited_time`", name)
    op, operand, op_path = _operator(raw.get(name, MISSING), f"{path}.{name}", name, "date")
    return _leaf(name, _date_test(op, operand, op_path))


def _property_predicate(ds: DataSource, raw: dict[str, Any], path: str) -> RowFilter:
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
    if prop.type == "select":
        test = _select_test(ds, prop.id, raw[given[0]], f"{path}.select", prop.name)
    else:
        family = _FAMILY_OF[prop.type]
        op, operand, op_path = _operator(raw[given[0]], f"{path}.{given[0]}", f"property {prop.name}", family)
        test = _FAMILIES[family][1](op, operand, op_path)
    return _leaf(prop.id, test)


def _select_test(ds: DataSource, prop_id: str, raw: Any, path: str, name: str) -> KeyTest:
    ops = ("equals", "does_not_equal", "is_empty", "is_not_empty")
    if not isinstance(raw, dict) or len(raw) != 1 or next(iter(raw)) not in ops:
        raise validation(f"body failed validation: {path} needs one operator of {', '.join(ops)} for property {name}.")
    ((op, operand),) = raw.items()
    if op in ("is_empty", "is_not_empty"):
        return _emptiness(op, operand, f"{path}.{op}", partial(eq, ""), partial(ne, ""))
    _need(str, operand, f"{path}.{op}", "a string")
    option = ds.properties[prop_id].option_by_name(operand)
    option_id = option.id if option else None  # an unknown name matches no page
    return partial(eq if op == "equals" else ne, option_id)


# --- sorts -------------------------------------------------------------------------------------


SortColumn = Callable[[Columns], list[Any]]  # aligned sort keys; None sorts last


def compile_sorts(ds: DataSource, raw: Any) -> list[tuple[SortColumn, bool]]:
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
        compiled.append((_sort_column(ds, item, path), direction == "descending"))
    return compiled


def _sort_column(ds: DataSource, item: dict[str, Any], path: str) -> SortColumn:
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
    if prop.type == "select":  # Notion orders selects by the schema's option order
        rank = {option.id: index for index, option in enumerate(prop.options)}
        return lambda c: c.derived(prop_id, "rank", lambda: [rank.get(k) for k in c.column(prop_id)])
    if prop.type in EMPTY_KEYS and prop.type != "checkbox":  # text: case-insensitive, "" is empty
        return lambda c: c.derived(prop_id, "folded", lambda: [k.casefold() or None for k in c.column(prop_id)])
    return lambda columns: columns.column(prop_id)


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

    def run(self, ds: DataSource, body: dict[str, Any], result_cap: int) -> QueryPage:
        page_size = body.get("page_size", MAX_PAGE_SIZE)
        if isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= MAX_PAGE_SIZE:
            raise body_validation("body.page_size", f"should be an integer between 1 and {MAX_PAGE_SIZE}", page_size)
        in_trash = _in_trash_flag(body)
        result = self._result(ds, body, in_trash)
        start = _decode_cursor(body.get("start_cursor"), result)
        visible = min(len(result), result_cap)
        end = min(start + page_size, visible)
        next_cursor = _encode_cursor(end, result[end].id) if end < visible else None
        pages = [result[i] for i in range(start, end)]
        return QueryPage(pages, next_cursor, next_cursor is None and len(result) > result_cap)

    def _result(self, ds: DataSource, body: dict[str, Any], in_trash: bool) -> Result:
        signature = json.dumps([body.get("filter"), body.get("sorts"), in_trash], sort_keys=True)
        cache_key = (ds.id, ds.rows_version, signature)
        cached = self._results.get(cache_key)
        if cached is not None:
            self._results.move_to_end(cache_key)
            return cached
        row_filter = compile_filter(ds, body["filter"]) if body.get("filter") is not None else None
        sorts = compile_sorts(ds, body.get("sorts"))
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


def _encode_cursor(index: int, page_id: str) -> str:
    return base64.urlsafe_b64encode(f"{index}:{page_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: Any, rows: Result) -> int:
    """Resume at the page the cursor names; if it left the result meanwhile, at its old position."""
    if cursor is None:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        index_text, page_id = text.split(":", 1)
        index = int(index_text)
    except (TypeError, ValueError, binascii.Error, UnicodeDecodeError):
        raise validation(f"The start_cursor provided is invalid: {cursor}") from None
    if index < 0:
        raise validation(f"The start_cursor provided is invalid: {cursor}")
    if index < len(rows) and rows[index].id == page_id:
        return index
    position = next((i for i in range(len(rows)) if rows[i].id == page_id), None)
    return position if position is not None else min(index, len(rows))
