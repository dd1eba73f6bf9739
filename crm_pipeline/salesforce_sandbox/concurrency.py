"""Salesforce's cap on concurrent long-running requests: while ``limit`` requests of the org have
been running ``after_s`` seconds or more (20 s in production orgs), new ones are refused with 403
REQUEST_LIMIT_EXCEEDED, which a client backs off from (unlike the daily allowance, which it waits
out). Other clients' long requests are simulated by a count the control surface sets."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .errors import SalesforceError

PRODUCTION_LIMIT = 25
LONG_RUNNING_S = 20.0


class LongRunningGate:
    def __init__(self, limit: int = PRODUCTION_LIMIT, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        """0 turns the gate off."""
        self.simulated = 0
        """Long-running requests of other clients the org has in flight."""
        self.after_s = LONG_RUNNING_S
        self.clock = clock
        self._started: dict[int, float] = {}
        self._serial = itertools.count()

    def long_running(self) -> int:
        now = self.clock()
        return self.simulated + sum(1 for started in self._started.values() if now - started >= self.after_s)

    @contextmanager
    def admit(self) -> Iterator[None]:
        """Run a request, or refuse it while the org is at its limit."""
        if self.limit and self.long_running() >= self.limit:
            raise SalesforceError(403, "REQUEST_LIMIT_EXCEEDED", "ConcurrentPerOrgLongTxn Limit exceeded.")
        key = next(self._serial)
        self._started[key] = self.clock()
        try:
            yield
        finally:
            del self._started[key]
