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
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from .errors import body_validation, validation
from .model import DataSource, Page
from .query_columns import MAX_PAGE_SIZE, Columns, Viewer
from .query_filters import compile_filter
from .query_sorts import compile_sorts, order_rows

T = TypeVar("T", bound="Identified")
T_co = TypeVar("T_co", bound="Identified", covariant=True)


@dataclass(frozen=True)
class QueryPage:
    pages: list[Page]  # this page of results
    next_cursor: str | None
    capped: bool  # the result cap cut the result short; Notion reports request_status incomplete


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
        result = Result(columns.pages, order_rows(columns, rows, sorts, sort_key))
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
