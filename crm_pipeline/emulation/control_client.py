"""The typed client every emulator's control surface shares: reset, faults, the settable clock and
request statistics over HTTP. Each emulator's client adds its own controls (a person's edits,
seeding, settings)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Self

import httpx


class ControlClient:
    prefix: ClassVar[str]
    """Where the emulator serves its control routes, e.g. ``/_sandbox``."""
    api_paths: ClassVar[str]
    """The fnmatch pattern of the emulated API's routes: what a fault matches unless told."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self._http = httpx.Client(base_url=f"{base_url.rstrip('/')}{self.prefix}", timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        response = self._http.request(method, path, json=body)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def reset(self) -> None:
        """Back to start-up: no records (a seeded Notion sandbox re-seeds), start-up settings, real
        clock, no faults."""
        self._call("POST", "/reset")

    def add_fault(
        self,
        kind: str,
        *,
        method: str = "*",
        path: str | None = None,
        count: int = 1,
        applied: bool = False,
        hang_seconds: float = 0.0,
    ) -> None:
        """The next ``count`` requests matching ``method`` and the fnmatch ``path`` (None: every API
        route) get ``kind``: an HTTP status the emulator fakes, or ``hang`` (held ``hang_seconds``).
        With ``applied=True`` the request is carried out first, so the answer alone is lost."""
        fault = {
            "kind": kind,
            "method": method,
            "path": self.api_paths if path is None else path,
            "count": count,
            "applied": applied,
            "hang_seconds": hang_seconds,
        }
        self._call("POST", "/faults", fault)

    def set_clock(self, moment: datetime) -> dict[str, Any]:
        return self._call("POST", "/clock", {"set": moment.isoformat()})

    def advance_clock(self, seconds: float) -> dict[str, Any]:
        return self._call("POST", "/clock", {"advance_seconds": seconds})

    def real_clock(self) -> dict[str, Any]:
        """Back to real time after ``set_clock`` or ``advance_clock``."""
        return self._call("POST", "/clock", {"real": True})

    def stats(self) -> dict[str, Any]:
        """``{"total", "by_status": {"429": n}, "by_route": {"POST /v1/pages": {"200": n}}}`` (routes as the emulated API names them)."""
        return self._call("GET", "/stats")

    def reset_stats(self) -> None:
        self._call("DELETE", "/stats")
