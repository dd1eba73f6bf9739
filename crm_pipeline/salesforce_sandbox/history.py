"""The two logs of an opportunity's changes. OpportunityFieldHistory: a ``created`` row when it is
inserted, then a row per tracked field a write changes (whoever wrote it, whatever the value's
source: the stage cascade's Probability too); long text records only that it changed, as
Salesforce does past 255 characters. OpportunityHistory, always on: a row with the stage, amount,
probability and close date at insert and whenever one of them changes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .schema import Schema
from .state import Record

DATA_TYPES = {
    "string": "Text",
    "textarea": "TextArea",
    "picklist": "Picklist",
    "currency": "Currency",
    "percent": "Percent",
    "double": "Double",
    "int": "Double",
    "date": "Date",
    "datetime": "DateTime",
    "boolean": "Boolean",
    "reference": "EntityId",
}


def history_rows(
    schema: Schema, tracked: Iterable[str], record: Record, before: Mapping[str, Any] | None
) -> list[dict[str, Any]]:
    """The rows a write adds (without Id and audit fields), in field order."""
    base = {"OpportunityId": record.id}
    if before is None:
        return [{**base, "Field": "created", "DataType": None, "OldValue": None, "NewValue": None}]
    rows = []
    for name in tracked:
        spec = schema.field("Opportunity", name)
        if spec is None:
            continue
        old, new = before.get(spec.name), record.values.get(spec.name)
        if old == new:
            continue
        if spec.type == "textarea":
            old = new = None
        data_type = DATA_TYPES.get(spec.type, "Text")
        rows.append({**base, "Field": spec.name, "DataType": data_type, "OldValue": old, "NewValue": new})
    return rows


STAGE_LOGGED = ("StageName", "Amount", "Probability", "CloseDate")
LEGACY_FORECAST = {"Best Case": "BestCase", "Commit": "Forecast"}
"""ForecastCategory's API values where they differ from ForecastCategoryName's."""


def stage_history_row(record: Record, before: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The OpportunityHistory row a write adds (without Id and audit fields), if any."""
    values = record.values
    if before is not None and all(before.get(name) == values.get(name) for name in STAGE_LOGGED):
        return None
    forecast = values.get("ForecastCategoryName")
    return {
        "OpportunityId": record.id,
        **{name: values.get(name) for name in (*STAGE_LOGGED, "ExpectedRevenue")},
        "PrevAmount": None if before is None else before.get("Amount"),
        "PrevCloseDate": None if before is None else before.get("CloseDate"),
        "ForecastCategory": LEGACY_FORECAST.get(forecast, forecast) if forecast else None,
    }
