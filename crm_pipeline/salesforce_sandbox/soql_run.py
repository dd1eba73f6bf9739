"""The strict SOQL subset's second half: a parsed query checked against a schema (``bind``) and run
over rows in memory (``execute``). The choices where Salesforce is only partly known are in
``soql``'s docstring."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from .soql import (
    ID_PATTERN,
    ID_TYPES,
    MAX_OFFSET,
    NUMBER_TYPES,
    TEXT_TYPES,
    BoundQuery,
    Condition,
    FieldType,
    Junction,
    LikePattern,
    Not,
    Operator,
    OrderItem,
    Query,
    SoqlError,
    Value,
)

_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}  # fmt: skip


def _resolve(names: Mapping[str, str], name: str, object_name: str) -> str:
    try:
        return names[name.lower()]
    except KeyError:
        raise SoqlError("INVALID_FIELD", f"No such column '{name}' on entity '{object_name}'") from None


def _check_value(name: str, kind: FieldType, op: Operator, value: Value) -> None:
    if value is None:
        if op not in ("=", "!=", "IN", "NOT IN"):
            raise SoqlError("INVALID_QUERY_FILTER_OPERATOR", f"{op} null is not a valid filter on '{name}'")
        return
    expected: type = {
        "date": date, "datetime": datetime, "boolean": bool, **dict.fromkeys(NUMBER_TYPES, Decimal),
    }.get(kind, str)  # fmt: skip
    if not isinstance(value, expected) or (kind == "date" and isinstance(value, datetime)):
        raise SoqlError("INVALID_FIELD", f"a filter value on field '{name}' must be of type {kind}")
    if kind in ID_TYPES and not ID_PATTERN.fullmatch(str(value)):
        raise SoqlError("INVALID_QUERY_FILTER_OPERATOR", f"invalid ID field: {value}")


def _bind_condition(
    condition: Condition, names: Mapping[str, str], types: Mapping[str, FieldType], obj: str
) -> Condition:
    if isinstance(condition, Not):
        return Not(_bind_condition(condition.operand, names, types, obj))
    if isinstance(condition, Junction):
        return replace(condition, operands=tuple(_bind_condition(c, names, types, obj) for c in condition.operands))
    name = _resolve(names, condition.field, obj)
    kind, op, value = types[name], condition.op, condition.value
    if kind == "anyType":
        raise SoqlError("INVALID_FIELD", f"field '{name}' can not be filtered in a query call")
    if (op == "LIKE" and kind not in TEXT_TYPES) or (op in ("<", "<=", ">", ">=") and kind == "boolean"):
        raise SoqlError("INVALID_QUERY_FILTER_OPERATOR", f"operator {op} is not valid on field '{name}' of type {kind}")
    for item in value if isinstance(value, tuple) else () if isinstance(value, LikePattern) else (value,):
        _check_value(name, kind, op, item)
    return replace(condition, field=name)


def bind(query: Query, schema: Mapping[str, Mapping[str, FieldType]]) -> BoundQuery:
    """Check ``query`` against ``schema`` (canonical object -> canonical field -> type; names match
    case-insensitively) and give every name its canonical casing."""
    objects = {name.lower(): name for name in schema}
    if query.object_name.lower() not in objects:
        raise SoqlError("INVALID_TYPE", f"sObject type '{query.object_name}' is not supported")
    obj = objects[query.object_name.lower()]
    types = schema[obj]
    names = {name.lower(): name for name in types}
    fields = tuple(_resolve(names, name, obj) for name in query.fields)
    where = None if query.where is None else _bind_condition(query.where, names, types, obj)
    order_by = tuple(replace(item, field=_resolve(names, item.field, obj)) for item in query.order_by)
    for item in order_by:
        if types[item.field] == "anyType":
            raise SoqlError("INVALID_FIELD", f"field '{item.field}' can not be sorted in a query call")
    if query.offset is not None and query.offset > MAX_OFFSET:
        raise SoqlError("NUMBER_OUTSIDE_VALID_RANGE", f"maximum SOQL offset allowed is {MAX_OFFSET}")
    return BoundQuery(obj, fields, query.count_only, where, order_by, query.limit, query.offset, types)


def _key(value: Any, kind: FieldType) -> Any:
    """What a value compares and sorts as: text case-folded, datetimes in UTC at whole seconds."""
    if kind in TEXT_TYPES and isinstance(value, str):
        return value.casefold()
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(microsecond=0)
    return value


def _holds(condition: Condition, row: Mapping[str, Any], types: Mapping[str, FieldType]) -> bool:
    if isinstance(condition, Not):
        return not _holds(condition.operand, row, types)
    if isinstance(condition, Junction):
        results = (_holds(c, row, types) for c in condition.operands)
        return all(results) if condition.op == "AND" else any(results)
    kind, op, value = types[condition.field], condition.op, condition.value
    actual = _key(row.get(condition.field), kind)
    if isinstance(value, LikePattern):
        return isinstance(actual, str) and re.fullmatch(value.regex, actual, re.IGNORECASE | re.DOTALL) is not None
    if isinstance(value, tuple):
        return (actual in [_key(v, kind) for v in value]) == (op == "IN")
    if actual is None or value is None:
        return (actual is value) == (op == "=") if op in ("=", "!=") else False
    return bool(_COMPARE[op](actual, _key(value, kind)))


def _ordered(
    rows: list[Mapping[str, Any]], order_by: tuple[OrderItem, ...], types: Mapping[str, FieldType]
) -> list[Mapping[str, Any]]:
    """Stable sorts from the last key to the first, nulls placed apart from the values."""
    for item in reversed(order_by):
        nulls = [row for row in rows if row.get(item.field) is None]
        values = [row for row in rows if row.get(item.field) is not None]
        values.sort(key=_sort_key(item.field, types[item.field]), reverse=item.descending)
        rows = nulls + values if item.nulls_first else values + nulls
    return rows


def _sort_key(name: str, kind: FieldType) -> Callable[[Mapping[str, Any]], Any]:
    return lambda row: _key(row[name], kind)


def execute(query: BoundQuery, rows: Iterable[Mapping[str, Any]]) -> tuple[int, list[dict[str, Any]]]:
    """Run ``query`` over ``rows`` (keyed by canonical field name): ``(totalSize, records)``, the records
    filtered, ordered, cut by OFFSET then LIMIT and projected onto the selected fields in SELECT order."""
    types = query.field_types
    matched = [row for row in rows if query.where is None or _holds(query.where, row, types)]
    start = query.offset or 0
    chosen = _ordered(matched, query.order_by, types)[start : None if query.limit is None else start + query.limit]
    if query.count_only:
        return len(chosen), []
    return len(chosen), [{name: row.get(name) for name in query.fields} for row in chosen]
