"""Reading every row a data-source query matches, past Notion's per-query result cap.

A single query returns at most 10,000 rows; at the cap ``has_more`` turns false and only
``request_status.type == "incomplete"`` says so. As Notion recommends, rows are read in
created_time order and a capped window is followed by a new query from the last row's
created_time (``on_or_after``), de-duplicating by page id.

created_time has minute resolution, so a minute can hold more rows than the cap: a CSV import
creates thousands of pages at once. Such a minute is read in keyset windows over a ``unique_id``
property (numbered on create, so unique and ordered): sorted by it, each window starting after
the last number read, until a window is no longer capped.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from crm_pipeline.crm.notion.api import Page, PageList
from crm_pipeline.crm.notion.errors import QueryWindowError

QueryPage = Callable[[dict[str, Any]], Awaitable[PageList]]
"""Sends one query body, returns Notion's list response."""

PAGE_SIZE = 100
_CREATED_ASCENDING = [{"timestamp": "created_time", "direction": "ascending"}]


def all_of(*filters: dict[str, Any] | None) -> dict[str, Any] | None:
    """AND the given filters, leaving out None; a single filter is returned as is.

    An ``and`` among them is spliced in rather than nested: Notion allows compound filters only
    two levels deep, and windowing adds conditions to filters that may already use both."""
    present = [part for f in filters if f is not None for part in (f["and"] if set(f) == {"and"} else [f])]
    if not present:
        return None
    return present[0] if len(present) == 1 else {"and": present}


def timestamp_on_or_after(timestamp: str, moment: datetime) -> dict[str, Any]:
    """A created_time/last_edited_time filter from the start of ``moment``'s minute.

    Notion rounds both timestamps down to the minute, so a filter finer than that would miss rows.
    """
    return {"timestamp": timestamp, timestamp: {"on_or_after": iso_minute(moment)}}


def iso_minute(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    floored = moment.astimezone(UTC).replace(second=0, microsecond=0)
    return floored.isoformat().replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def query_all(
    query_page: QueryPage, filter_: dict[str, Any] | None, *, in_trash: bool = False, order_key: str | None = None
) -> list[Page]:
    """Every matching page, each once (the latest copy read), in created_time order.

    ``order_key`` is the id of a unique_id property of the data source, if it has one: a
    created_time minute holding more rows than the cap is read by it (without one, that is a
    QueryWindowError naming the remedy).
    """
    pages: dict[str, Page] = {}
    window_start: datetime | None = None
    while True:
        window_filter = None if window_start is None else timestamp_on_or_after("created_time", window_start)
        body = _body(all_of(filter_, window_filter), _CREATED_ASCENDING, in_trash)
        capped, first, last = await _read_window(query_page, body, pages)
        if not capped or last is None:
            return list(pages.values())
        minute = parse_time(last["created_time"])
        if first is not None and first["created_time"] == last["created_time"]:  # one minute filled the window
            if order_key is None:
                raise QueryWindowError(
                    f"a query hit the result cap within the created_time minute {last['created_time']}; "
                    "add a unique_id property to the data source (rows sharing a minute are then read by it) "
                    "or narrow the filter to read these rows"
                )
            await _read_minute(query_page, filter_, in_trash, minute, order_key, pages)
            minute += timedelta(minutes=1)
        window_start = minute


async def _read_minute(
    query_page: QueryPage,
    filter_: dict[str, Any] | None,
    in_trash: bool,
    minute: datetime,
    order_key: str,
    pages: dict[str, Page],
) -> None:
    """Every matching row created in ``minute``, in keyset windows over the unique_id property."""
    within = [
        timestamp_on_or_after("created_time", minute),
        {"timestamp": "created_time", "created_time": {"before": iso_minute(minute + timedelta(minutes=1))}},
    ]
    by_number = [{"property": order_key, "direction": "ascending"}]
    after: float | None = None
    while True:
        keyset = None if after is None else {"property": order_key, "unique_id": {"greater_than": after}}
        capped, _, last = await _read_window(
            query_page, _body(all_of(filter_, *within, keyset), by_number, in_trash), pages
        )
        if not capped or last is None:
            return
        number = _unique_number(last, order_key)
        if number is None or (after is not None and number <= after):
            raise QueryWindowError(f"the unique_id property {order_key!r} did not advance past {after}; cannot read on")
        after = number


def _unique_number(page: Page, property_id: str) -> float | None:
    value = next((v for v in page["properties"].values() if v.get("id") == property_id), None)
    unique_id = value.get("unique_id") if value is not None else None
    number = unique_id.get("number") if isinstance(unique_id, dict) else None
    return number if isinstance(number, int | float) else None


def _body(filter_: dict[str, Any] | None, sorts: list[dict[str, Any]], in_trash: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"sorts": sorts, "page_size": PAGE_SIZE}
    if filter_ is not None:
        body["filter"] = filter_
    if in_trash:
        body["in_trash"] = True
    return body


async def _read_window(
    query_page: QueryPage, body: dict[str, Any], pages: dict[str, Page]
) -> tuple[bool, Page | None, Page | None]:
    """Page through one query; returns (hit the cap, its first row, its last row)."""
    cursor: str | None = None
    first: Page | None = None
    last: Page | None = None
    while True:
        response = await query_page(body if cursor is None else {**body, "start_cursor": cursor})
        for page in response["results"]:
            pages[page["id"]] = page
            first = first or page
            last = page
        status = response.get("request_status")
        if status is not None and status.get("type") == "incomplete":
            return True, first, last
        cursor = response.get("next_cursor")
        if not response.get("has_more") or cursor is None:
            return False, first, last
