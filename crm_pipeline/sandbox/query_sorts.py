"""Query sorts: each sort spec compiled into a column of sort keys (Notion's order per property
type, empty values last), and a result's rows put in that order once per data source version."""

from __future__ import annotations

import math
from collections.abc import Callable
from itertools import compress
from typing import Any

from .errors import MISSING, body_validation, validation
from .model import DataSource, PropertySchema
from .properties import COMPUTED_TYPES, TEXT_TYPES
from .query_columns import TIMESTAMPS, Columns, Viewer

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


def order_rows(columns: Columns, rows: list[int], sorts: list[tuple[SortColumn, bool]], sort_key: str) -> list[int]:
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
