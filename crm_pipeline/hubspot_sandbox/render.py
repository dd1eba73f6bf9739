"""Records as the API answers with them (SimplePublicObject), for the API and control routes alike."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .model import DEFAULT_PROPERTIES, LAST_MODIFIED, Record, iso
from .portal import Portal


def records_json(
    records: Iterable[Record],
    portal: Portal,
    properties: list[str],
    with_history: list[str],
    as_of_ms: int | None = None,
) -> list[dict[str, Any]]:
    return [record_json(r, portal, properties, with_history, as_of_ms) for r in records]


def record_json(
    record: Record, portal: Portal, properties: list[str], with_history: list[str], as_of_ms: int | None = None
) -> dict[str, Any]:
    """SimplePublicObject: the asked properties (default ones when none), ``hs_object_id`` and the
    modification dates always; absent values left out."""
    values = record.values(as_of_ms)
    wanted = list(properties or DEFAULT_PROPERTIES[record.object_type])
    wanted += ["hs_object_id", "createdate", LAST_MODIFIED[record.object_type]]
    body: dict[str, Any] = {
        "id": record.id,
        "properties": {name: values.get(name) for name in dict.fromkeys(wanted)},
        "createdAt": iso(record.created_ms),
        "updatedAt": values[LAST_MODIFIED[record.object_type]],
        "archived": record.archived_ms is not None,
    }
    if record.archived_ms is not None:
        body["archivedAt"] = iso(record.archived_ms)
    if with_history:
        body["propertiesWithHistory"] = {
            name: [v.to_json() for v in record.history.get(name, [])] for name in with_history
        }
    return body
