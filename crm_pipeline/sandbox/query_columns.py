"""What queries read: a data source's rows as aligned columns of stored keys, built lazily per
property and kept until the data source changes, and who is asking (`Viewer`). Filters, sorts
and the query engine all work on these columns."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .model import DataSource, PropertySchema, User
from .properties import COMPUTED_TYPES, EMPTY_KEYS, computed_key, default_computed

MAX_PAGE_SIZE = 100
"""The most results a page holds, and the most conditions a compound filter takes."""
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
