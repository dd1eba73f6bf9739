"""``POST /crm/v3/objects/{type}/search``: filter groups (OR of ANDs), one sort, integer ``after``
paging, and HubSpot's caps (200 a page, 10,000 results a query (``search_result_cap``), 5 groups of 6 filters, 18 in
all, 3,000 characters a body). Records are matched as the index saw them ``search_lag_ms`` ago."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from .errors import validation
from .model import Property
from .portal import Portal
from .render import records_json
from .values import epoch_ms

MAX_PAGE = 200
MAX_GROUPS, MAX_FILTERS_PER_GROUP, MAX_FILTERS = 5, 6, 18
MAX_BODY_CHARS = 3_000
OPERATORS = (
    "EQ NEQ LT LTE GT GTE BETWEEN IN NOT_IN HAS_PROPERTY NOT_HAS_PROPERTY CONTAINS_TOKEN NOT_CONTAINS_TOKEN".split()
)


def search(portal: Portal, object_type: str, body: Mapping[str, Any]) -> dict[str, Any]:
    filters, sorts, start, limit = _checked_request(portal, body)
    as_of = portal.clock.now_ms() - portal.search_lag_ms
    known = portal.properties[object_type]
    predicates = [[_predicate(known, f) for f in group] for group in filters]
    matches = []
    for record in portal.live(object_type):
        if record.created_ms > as_of:
            continue  # not indexed yet
        values = record.values(as_of)
        if not predicates or any(all(p(values) for p in group) for group in predicates):
            matches.append((record, values))
    if sorts:
        sort = sorts[0] if isinstance(sorts[0], dict) else {"propertyName": str(sorts[0]).lstrip("-")}
        name = str(sort.get("propertyName", ""))
        prop = _known(known, name)
        descending = str(sort.get("direction", "ASCENDING")) == "DESCENDING"
        matches.sort(key=lambda m: (_sort_key(prop, m[1].get(name)), int(m[0].id)), reverse=descending)
    page = [record for record, _ in matches[start : start + limit]]
    properties = list(body.get("properties") or [])
    answer: dict[str, Any] = {"total": len(matches), "results": records_json(page, portal, properties, [], as_of)}
    if start + limit < len(matches):
        answer["paging"] = {"next": {"after": str(start + limit)}}
    return answer


def _checked_request(portal: Portal, body: Mapping[str, Any]) -> tuple[list[Any], list[Any], int, int]:
    """The request's filter groups, sorts, first result and page size, refused as HubSpot refuses
    them past its caps before anything is matched."""
    if len(json.dumps(body)) > MAX_BODY_CHARS:
        raise validation(f"Search request bodies are limited to {MAX_BODY_CHARS} characters.")
    groups = body.get("filterGroups") or []
    if not isinstance(groups, list) or len(groups) > MAX_GROUPS:
        raise validation(f"At most {MAX_GROUPS} filterGroups are allowed.")
    filters = [group.get("filters") or [] for group in groups if isinstance(group, dict)]
    if any(len(f) > MAX_FILTERS_PER_GROUP for f in filters) or sum(map(len, filters)) > MAX_FILTERS:
        raise validation(f"At most {MAX_FILTERS_PER_GROUP} filters a group and {MAX_FILTERS} in all are allowed.")
    sorts = body.get("sorts") or []
    if len(sorts) > 1:
        raise validation("Only one sort is allowed.")
    limit, after = body.get("limit", 10), str(body.get("after", "0") or "0")
    if not isinstance(limit, int) or not 0 < limit <= MAX_PAGE:
        raise validation(f"limit must be from 1 to {MAX_PAGE}.")
    if not after.isdigit():
        raise validation("after must be an integer string.")
    start = int(after)
    if start + limit > portal.search_result_cap:
        raise validation(f"Paging beyond {portal.search_result_cap} results is not supported.")
    return filters, sorts, start, limit


def _known(known: Mapping[str, Property], name: str) -> Property:
    if name in known:
        return known[name]
    raise validation(f"There was a problem with the request: property {name!r} does not exist.")


def _sort_key(prop: Property, value: str | None) -> tuple[int, Any]:
    if value is None:
        return (0, "")
    return (1, _comparable(prop, value))


def _comparable(prop: Property, value: str) -> Any:
    if prop.type == "number":
        try:
            return Decimal(value)
        except InvalidOperation:
            raise validation(f"{value!r} is not a number for {prop.name}.") from None
    if prop.type in ("datetime", "date"):
        return epoch_ms(prop.name, value)
    return value.lower()


def _predicate(known: Mapping[str, Property], raw: Any) -> Callable[[Mapping[str, str]], bool]:
    if not isinstance(raw, dict):
        raise validation("A filter is an object {propertyName, operator, value}.")
    name, operator = str(raw.get("propertyName", "")), str(raw.get("operator", ""))
    if operator not in OPERATORS:
        raise validation(f"Unknown operator {operator!r}.")
    prop = _known(known, name)
    if operator == "HAS_PROPERTY":
        return lambda values: name in values
    if operator == "NOT_HAS_PROPERTY":
        return lambda values: name not in values
    if operator in ("IN", "NOT_IN"):
        wanted = {_comparable(prop, str(v)) for v in raw.get("values") or []}
        inside = operator == "IN"
        return lambda values: name in values and (_comparable(prop, values[name]) in wanted) == inside
    if operator in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        token = str(raw.get("value", "")).lower().strip("*")
        contains = operator == "CONTAINS_TOKEN"
        return lambda values: (token in values.get(name, "").lower()) == contains
    if "value" not in raw:
        raise validation(f"The {operator} operator needs a value.")
    low = _comparable(prop, str(raw["value"]))
    if operator == "BETWEEN":
        high = _comparable(prop, str(raw.get("highValue", "")))
        return lambda values: name in values and low <= _comparable(prop, values[name]) <= high
    compare: dict[str, Callable[[Any, Any], bool]] = {
        "EQ": lambda a, b: a == b,
        "NEQ": lambda a, b: a != b,
        "LT": lambda a, b: a < b,
        "LTE": lambda a, b: a <= b,
        "GT": lambda a, b: a > b,
        "GTE": lambda a, b: a >= b,
    }
    test = compare[operator]
    if operator == "NEQ":
        return lambda values: name not in values or test(_comparable(prop, values[name]), low)
    return lambda values: name in values and test(_comparable(prop, values[name]), low)
