"""Field-level change detection: which fields a write would change, so the repository can skip
writes that change nothing (PostgreSQL's triggers log what a write did change)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic_core import to_jsonable_python

FieldChanges = dict[str, dict[str, Any]]
"""field → {"old": json, "new": json}, as stored in the change log."""


def diff_fields(old: Mapping[Any, Any], new: Mapping[str, Any]) -> FieldChanges:
    """The fields of `new` whose value differs from `old` (missing in `old` counts as None).

    `old` is any mapping holding the fields by name: a dict, or a database row's mapping.

    Values are compared as Python values, so Decimal("1.5") equals Decimal("1.50") and a write
    that changes nothing yields no entry.
    """
    return {
        field: {"old": to_jsonable_python(old.get(field)), "new": to_jsonable_python(value)}
        for field, value in new.items()
        if old.get(field) != value
    }
