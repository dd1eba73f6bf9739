"""Request budgets shared across processes: one rate limit per API app, however many runs spend it.

A CRM limits requests per app (HubSpot: a rolling ten seconds and a day per private app, search on
its own; Notion: about three a second per integration), yet every Dagster run is a process of its
own. ``RequestBudget`` is where a connector's caller takes a slot before each request; its state
lives outside the process, so concurrent runs of one app together stay under the app's limit.
``PostgresBudget`` keeps it in the deal store, which every run already has. Without a store a
connector paces itself in-process (a ``RollingWindow``, or a connector's own bucket), which holds
for one process only.
"""

from __future__ import annotations

import asyncio
import math
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["DailyBudgetSpentError", "PostgresBudget", "RequestBudget", "RollingWindow", "Window"]


@dataclass(frozen=True)
class Window:
    """At most ``limit`` requests of ``pool`` in any ``seconds``. The pools of one budget key are
    counted apart (HubSpot's search is exempt from its ten-second window and has its own)."""

    pool: str
    limit: int
    seconds: float


class DailyBudgetSpentError(RuntimeError):
    """The app's requests for the day are spent: never waited out, a later pass resumes."""

    def __init__(self, key: str, per_day: int) -> None:
        super().__init__(f"the day's {per_day} requests of this app are spent; a later pass resumes")
        self.key = key
        self.per_day = per_day


class RequestBudget(ABC):
    """Slots of request budgets, one budget per key (an app: what the CRM counts requests by)."""

    @abstractmethod
    async def reserve(self, key: str, window: Window, *, per_day: int = 0) -> float:
        """Take a slot for one request now if ``window`` (and ``per_day``, over every pool of the
        key; 0: no daily limit) allows it and return 0.0; else take nothing and return the seconds
        until asking again may succeed (``math.inf`` once the day is spent)."""

    async def acquire(
        self,
        key: str,
        window: Window,
        *,
        per_day: int = 0,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        """Wait for a slot and take it; DailyBudgetSpentError once the day's requests are spent."""
        while True:
            wait = await self.reserve(key, window, per_day=per_day)
            if wait <= 0:
                return
            if math.isinf(wait):
                raise DailyBudgetSpentError(key, per_day)
            await (sleep or asyncio.sleep)(wait)


class PostgresBudget(RequestBudget):
    """A budget in the deal store (``crm.reserve_request``, migration 0005): one statement a slot,
    serialised per key by a row lock, timed by the database server's clock (one clock for every
    process). The application role may only call the function; the tables stay out of its reach."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        """The application's pool (``Database.engine``)."""

    def __repr__(self) -> str:
        return f"PostgresBudget({self.engine.url.render_as_string(hide_password=True)!r})"

    async def reserve(self, key: str, window: Window, *, per_day: int = 0) -> float:
        if window.limit <= 0:
            return 0.0
        async with self.engine.begin() as connection:
            wait = await connection.scalar(
                _RESERVE,
                {
                    "key": key,
                    "pool": window.pool,
                    "limit": window.limit,
                    "window_ms": round(window.seconds * 1000),
                    "per_day": per_day,
                },
            )
        return float(wait)


_RESERVE = text("SELECT crm.reserve_request(:key, :pool, :limit, :window_ms, :per_day)")


class RollingWindow:
    """At most ``limit`` starts in any ``window`` seconds: a caller waits for the oldest start in
    the window to leave it. ``limit`` 0 means no limit."""

    def __init__(
        self,
        limit: int,
        window: float,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        self.limit, self.window = limit, window
        self._clock = clock or asyncio.get_running_loop().time
        self._sleep = sleep or asyncio.sleep
        self._starts: deque[float] = deque()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        if self.limit == 0:
            return
        async with self._lock:
            while True:
                now = self._clock()
                while self._starts and self._starts[0] <= now - self.window:
                    self._starts.popleft()
                if len(self._starts) < self.limit:
                    self._starts.append(now)
                    return
                await self._sleep(self._starts[0] + self.window - now)
