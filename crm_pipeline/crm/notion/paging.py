"""Reading every row a data-source query matches, past Notion's per-query result cap.

A single query returns at most 10,000 rows; at the cap ``has_more`` turns false and only
``request_status.type == "incomplete"`` says so. As Notion recommends, rows are read in
created_time order and a capped window is followed by a new query from the last row's
created_time (``on_or_after``), de-duplicating by page id.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from crm_pipeline.crm.notion.api import Page, PageList
from crm_pipeline.crm.notion.errors import QueryWindowError

QueryPage = Callable[[dict[str, Any]], Awaitable[PageList]]
"""Sends one query body, returns Notion's list response."""

PAGE_SIZE = 100
_CREATED_ASCENDING = [{"timestamp": "created_time", "direction": "ascending"}]


def all_of(*filters: dict[str, Any] | None) -> dict[str, Any] | None:
    """AND the given filters, leaving out None; a single filter is returned as is."""
    present = [f for f in filters if f is not None]
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


async def query_all(query_page: QueryPage, filter_: dict[str, Any] | None, *, in_trash: bool = False) -> list[Page]:
    """Every matching page, each once (the latest copy read), in created_time order."""
    pages: dict[str, Page] = {}
    window_start: datetime | None = None
    while True:
        window_filter = None if window_start is None else timestamp_on_or_after("created_time", window_start)
        body: dict[str, Any] = {"sorts": _CREATED_ASCENDING, "page_size": PAGE_SIZE}
        combined = all_of(filter_, window_filter)
        if combined is not None:
            body["filter"] = combined
        if in_trash:
            body["in_trash"] = True
        capped, last_created = await _read_window(query_page, body, pages)
        if not capped:
            return list(pages.values())
        next_start = parse_time(last_created) if last_created else None
        if next_start is None or (window_start is not None and next_start <= window_start):
            raise QueryWindowError(
                f"a query hit the result cap within the created_time minute {last_created}; "
                "narrow the filter to read these rows"
            )
        window_start = next_start


async def _read_window(query_page: QueryPage, body: dict[str, Any], pages: dict[str, Page]) -> tuple[bool, str | None]:
    """Page through one query; returns (hit the cap, created_time of its last row)."""
    cursor: str | None = None
    last_created: str | None = None
    while True:
        response = await query_page(body if cursor is None else {**body, "start_cursor": cursor})
        for page in response["results"]:
            pages[page["id"]] = page
            last_created = page["created_time"]
        status = response.get("request_status")
        if status is not None and status.get("type") == "incomplete":
            return True, last_created
        cursor = response.get("next_cursor")
        if not response.get("has_more") or cursor is None:
            return False, last_created
