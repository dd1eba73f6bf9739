"""Behaviour a control surface can switch on: rate limits, scripted faults, latency, statistics."""

from __future__ import annotations

import fnmatch
import math
import random
import time
from collections import Counter, deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from .errors import BadRequest, RateLimited

CLIENT_CLOSED = 499  # nginx's "client closed request": the client hung up before the answer
MAX_RATE = 1_000_000  # requests/s, and requests in a burst
MAX_DELAY_S = 3600.0  # latency, jitter and hangs; longer is a typo, and could overflow the event loop's timers


@dataclass
class _Bucket:
    tokens: float
    updated: float
    reserved_until: float = 0.0  # the last retry slot handed out in a Retry-After


class RateLimiter:
    """A token bucket per token: `rate` requests/s on average, `burst` at once.

    A refused request is told, via Retry-After, the slot when *it* could succeed: each refusal
    reserves the next free slot after those already promised, so a burst of clients that all
    honour Retry-After come back spread out instead of colliding again. Retry-After is whole
    seconds, so up to one second's worth of promised slots return together; the bucket therefore
    holds at least `ceil(rate)` tokens whatever `burst` says.
    """

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock  # seconds; a test can make time stand still or jump
        self.configure(rate, burst)

    def configure(self, rate: float, burst: int) -> None:
        if not 0 <= rate <= MAX_RATE or not 1 <= burst <= MAX_RATE:
            raise BadRequest(f"rate_limit must be between 0 and {MAX_RATE}, and burst between 1 and {MAX_RATE}.")
        self.rate = rate
        self.burst = burst
        self.capacity = float(max(burst, math.ceil(rate)))
        self._buckets: dict[str, _Bucket] = {}

    def check(self, token: str) -> None:
        if self.rate == 0:
            return
        now = self.clock()
        bucket = self._buckets.setdefault(token, _Bucket(self.capacity, now))
        bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return
        interval = 1 / self.rate
        first_free = now + max(0.0, (1 - bucket.tokens) * interval)
        slot = max(first_free, bucket.reserved_until + interval)
        bucket.reserved_until = slot
        raise RateLimited("token_bucket", max(1, math.ceil(slot - now)))


class RollingWindowLimiter:
    """At most ``limit`` requests per key in any ``window_s`` seconds (HubSpot's ten-secondly and
    secondly limits); ``limit`` 0 turns it off. ``remaining`` is what a response header reports."""

    def __init__(self, policy: str, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if limit < 0 or limit > MAX_RATE or window_s <= 0:
            raise BadRequest(f"{policy}: a limit from 0 to {MAX_RATE} per a positive window.")
        self.policy, self.limit, self.window_s, self.clock = policy, limit, window_s, clock
        self._seen: dict[str, deque[float]] = {}

    def _window(self, key: str) -> deque[float]:
        seen = self._seen.setdefault(key, deque())
        now = self.clock()
        while seen and seen[0] <= now - self.window_s:
            seen.popleft()
        return seen

    def check(self, key: str) -> None:
        if self.limit == 0:
            return
        seen = self._window(key)
        if len(seen) >= self.limit:
            raise RateLimited(self.policy)
        seen.append(self.clock())

    def remaining(self, key: str) -> int:
        return max(0, self.limit - len(self._window(key))) if self.limit else MAX_RATE


@dataclass
class Fault:
    method: str  # "*" or an HTTP method
    path: str  # fnmatch pattern over the request path, e.g. "/v1/pages*"
    kind: str  # one of the emulator's fault kinds
    remaining: int
    applied: bool = False  # run the request for real, then answer with the fault ("applied then lost")
    hang_seconds: float = 0.0

    def matches(self, method: str, path: str) -> bool:
        return self.method in ("*", method) and fnmatch.fnmatchcase(path, self.path)

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "kind": self.kind,
            "remaining": self.remaining,
            "applied": self.applied,
            "hang_seconds": self.hang_seconds,
        }


def parse_fault(raw: Any, kinds: Collection[str], default_path: str) -> Fault:
    if not isinstance(raw, dict):
        raise BadRequest("A fault is an object: {method, path, kind, count, applied, hang_seconds}.")
    kind = str(raw.get("kind", ""))
    if kind not in kinds:
        raise BadRequest(f"Unknown fault kind {kind!r}; use one of {', '.join(kinds)}.")
    count, hang = raw.get("count", 1), raw.get("hang_seconds", 0)
    if (
        not isinstance(count, int)
        or count < 1
        or not isinstance(hang, int | float)
        or isinstance(hang, bool)
        or not 0 <= hang <= MAX_DELAY_S
    ):
        raise BadRequest(f"count must be a positive integer and hang_seconds a number from 0 to {MAX_DELAY_S:g}.")
    if kind == "hang" and hang == 0:
        raise BadRequest("A hang fault needs hang_seconds > 0.")
    return Fault(
        method=str(raw.get("method", "*")).upper(),
        path=str(raw.get("path", default_path)),
        kind=kind,
        remaining=count,
        applied=bool(raw.get("applied", False)),
        hang_seconds=float(hang),
    )


GATEWAY_HTML = (  # what a load balancer in front of an API answers for a 502
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
)


class FaultScript:
    def __init__(self) -> None:
        self.faults: list[Fault] = []

    def take(self, method: str, path: str) -> Fault | None:
        """Consume one use of the first fault matching this request."""
        for fault in self.faults:
            if fault.matches(method, path):
                fault.remaining -= 1
                if fault.remaining == 0:
                    self.faults.remove(fault)
                return fault
        return None

    def control(self, method: str, body: Any, kinds: Collection[str], default_path: str) -> dict[str, Any]:
        """The ``/faults`` control route: POST adds a fault, DELETE clears them; each lists them."""
        if method == "POST":
            self.faults.append(parse_fault(body, kinds, default_path))
        elif method == "DELETE":
            self.faults.clear()
        return {"faults": [fault.to_json() for fault in self.faults]}


@dataclass
class Latency:
    fixed_ms: float = 0.0
    jitter_ms: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.fixed_ms + self.jitter_ms <= MAX_DELAY_S * 1000 or min(self.fixed_ms, self.jitter_ms) < 0:
            raise BadRequest(f"latency_ms and jitter_ms must be ≥ 0 and add up to at most {MAX_DELAY_S * 1000:g}.")

    def sample_seconds(self) -> float:
        return (self.fixed_ms + random.uniform(0, self.jitter_ms)) / 1000


@dataclass
class Stats:
    """Counts per route template (e.g. `PATCH /v1/pages/{page_id}`) and status, and per token and
    status where the emulator names the request's token (the sandbox Notion: by its integration,
    never by the secret).

    Each reset starts a new epoch; a request counts in the epoch it arrived in, so one still
    running across a reset (a hang, a slow client) cannot turn up in the next test's numbers.
    """

    counts: Counter[tuple[str, int]] = field(default_factory=Counter)
    token_counts: Counter[tuple[str, int]] = field(default_factory=Counter)
    epoch: int = 0

    def record(self, route: str, status: int, epoch: int, token_name: str | None = None) -> None:
        """``token_name``: the integration whose token the request carried (None: no valid token)."""
        if epoch == self.epoch:
            self.counts[(route, status)] += 1
            if token_name is not None:
                self.token_counts[(token_name, status)] += 1

    def clear(self) -> None:
        self.counts.clear()
        self.token_counts.clear()
        self.epoch += 1

    def to_json(self) -> dict[str, Any]:
        statuses = Counter[str]()
        for (_, status), count in self.counts.items():
            statuses[str(status)] += count
        return {
            "total": sum(self.counts.values()),
            "by_status": dict(statuses),
            "by_route": _by_status(self.counts),
            "by_token": _by_status(self.token_counts),
        }

    def control(self, method: str) -> dict[str, Any]:
        """The ``/stats`` control route: DELETE starts over; each answers the counts."""
        if method == "DELETE":
            self.clear()
        return self.to_json()


def _by_status(counts: Counter[tuple[str, int]]) -> dict[str, dict[str, int]]:
    grouped: dict[str, dict[str, int]] = {}
    for (name, status), count in sorted(counts.items()):
        grouped.setdefault(name, {})[str(status)] = count
    return grouped
