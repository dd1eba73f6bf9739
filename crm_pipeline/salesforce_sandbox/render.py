"""Records as the API prints them: ``attributes`` (type and url) first, then the fields."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .values import json_value


def record_json(
    object_name: str, values: Mapping[str, Any], version: str, record_id: str | None = None
) -> dict[str, Any]:
    """The record's ``attributes`` and ``values`` printed; the url names the record by
    ``record_id`` or else the Id among the values."""
    attributes = {"type": object_name}
    record_id = record_id or values.get("Id")
    if record_id:
        attributes["url"] = f"/services/data/v{version}/sobjects/{object_name}/{record_id}"
    return {"attributes": attributes, **{name: json_value(value) for name, value in values.items()}}
