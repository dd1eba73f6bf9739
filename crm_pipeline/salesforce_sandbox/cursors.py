"""Query cursors: the records a query matched beyond its first page, kept under a locator
(``0r8…``) for ``GET query/{locator}-{offset}``. They live two days of the sandbox clock, as since
API 56.0; the oldest are dropped past ``MAX_OPEN`` so a long run cannot hoard memory."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from .errors import bad_request
from .ids import make_id

LIFETIME_MS = 2 * 86_400_000
MAX_OPEN = 256
LOCATOR_PREFIX = "0r8"


@dataclass
class Cursor:
    records: list[dict[str, Any]]
    """Every record the query returns, printed."""
    opened_ms: int


class Cursors:
    def __init__(self) -> None:
        self._open: OrderedDict[str, Cursor] = OrderedDict()
        self._serial = 0

    def open(self, records: list[dict[str, Any]], now_ms: int) -> str:
        self._serial += 1
        locator = make_id(LOCATOR_PREFIX, self._serial)
        self._open[locator] = Cursor(records, now_ms)
        while len(self._open) > MAX_OPEN:
            self._open.popitem(last=False)
        return locator

    def get(self, locator: str, now_ms: int) -> Cursor:
        cursor = self._open.get(locator)
        if cursor is None or now_ms - cursor.opened_ms > LIFETIME_MS:
            self._open.pop(locator, None)
            raise bad_request("INVALID_QUERY_LOCATOR", "invalid query locator")
        return cursor
