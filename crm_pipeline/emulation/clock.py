"""The emulators' clock: real time by default, or frozen / shifted so tests control time boundaries."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from .errors import BadRequest

MINUTE_MS = 60_000
CLOCK_CHANGES = "Clock changes are an object: {set} | {advance_seconds} | {real: true}."
# Times the API can print (ISO 8601 with a four-digit year); a clock outside them is refused.
EARLIEST_MS = 0
LATEST_MS = int(datetime(9999, 12, 31, 23, 59, tzinfo=UTC).timestamp() * 1000)


def iso_minute(ms: int) -> str:
    """Page and data source times are stored floored to the minute; Notion prints them with `.000Z`."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:00.000Z")


def iso_millis(ms: int) -> str:
    """Databases keep their times to the millisecond, printed with `+00:00` (as recorded from Notion)."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


class Clock:
    def __init__(self) -> None:
        self._frozen_ms: int | None = None

    def now_ms(self) -> int:
        return self._frozen_ms if self._frozen_ms is not None else int(time.time() * 1000)

    def minute_ms(self) -> int:
        """Notion stores created/last-edited times rounded down to the minute."""
        now = self.now_ms()
        return now - now % MINUTE_MS

    def set(self, moment: datetime) -> None:
        """Freeze at `moment`; it stays there until advanced or returned to real time."""
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        self._freeze(int(moment.timestamp() * 1000))

    def advance(self, seconds: float) -> None:
        self._freeze(self.now_ms() + int(seconds * 1000))

    def _freeze(self, ms: int) -> None:
        if not EARLIEST_MS <= ms <= LATEST_MS:
            raise ValueError("the sandbox clock must stay between 1970-01-01 and 9999-12-31 (UTC)")
        self._frozen_ms = ms

    def use_real_time(self) -> None:
        self._frozen_ms = None

    def describe(self) -> dict[str, object]:
        now = datetime.fromtimestamp(self.now_ms() / 1000, tz=UTC)
        return {"now": now.isoformat().replace("+00:00", "Z"), "frozen": self._frozen_ms is not None}

    def control(self, method: str, body: Any) -> dict[str, object]:
        """The ``/clock`` control route: POST sets the clock, moves it on, or gives it back to real
        time; each describes it."""
        if method == "POST":
            if not isinstance(body, dict):
                raise BadRequest(CLOCK_CHANGES)
            advance = body.get("advance_seconds")
            if body.get("real"):
                self.use_real_time()
            elif "set" in body:
                try:
                    moment = datetime.fromisoformat(str(body["set"]))
                except ValueError:
                    raise BadRequest(f"Not an ISO-8601 datetime: {body['set']!r}") from None
                self.set(moment)
            elif isinstance(advance, int | float) and not isinstance(advance, bool):
                self.advance(advance)
            else:
                raise BadRequest(CLOCK_CHANGES)
        return self.describe()
