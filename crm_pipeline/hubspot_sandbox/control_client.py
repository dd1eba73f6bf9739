"""A typed client for the local HubSpot's control surface (``/_hubspot/...``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx


class HubSpotControl:
    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self._http = httpx.Client(base_url=f"{base_url.rstrip('/')}/_hubspot", timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HubSpotControl:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        response = self._http.request(method, path, json=body)
        response.raise_for_status()
        return response.json()

    def reset(self) -> None:
        """An empty portal, start-up limits, real clock, no faults."""
        self._call("POST", "/reset")

    def configure(self, **settings: Any) -> dict[str, Any]:
        """ten_secondly_limit, daily_limit, search_per_second, search_lag_ms, search_result_cap,
        preserve_merged_ids, retry_after_s, latency_ms, jitter_ms."""
        result: dict[str, Any] = self._call("PUT", "/config", settings)
        return result

    def add_fault(
        self,
        kind: str,
        *,
        path: str = "/crm/*",
        method: str = "*",
        count: int = 1,
        applied: bool = False,
        hang_seconds: float = 0.0,
    ) -> None:
        """Answer the next ``count`` matching requests with ``kind`` (423, 500, 502, 503, 504 or
        hang, held ``hang_seconds``); ``applied`` carries the request out first, so the answer
        alone is lost."""
        body = {
            "kind": kind,
            "path": path,
            "method": method,
            "count": count,
            "applied": applied,
            "hang_seconds": hang_seconds,
        }
        self._call("POST", "/faults", body)

    def set_clock(self, moment: datetime) -> None:
        self._call("POST", "/clock", {"set": moment.isoformat()})

    def advance_clock(self, seconds: float) -> None:
        self._call("POST", "/clock", {"advance_seconds": seconds})

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/stats")
        return result

    def reset_stats(self) -> None:
        self._call("DELETE", "/stats")

    def ui_edit(self, object_type: str, object_id: str, properties: dict[str, str], user_id: int = 1) -> dict[str, Any]:
        """A person edits the record in HubSpot's UI (history: ``CRM_UI``, their user id)."""
        body = {"properties": properties, "userId": user_id}
        result: dict[str, Any] = self._call("PATCH", f"/objects/{object_type}/{object_id}", body)
        return result

    def ui_restore(self, object_type: str, object_id: str, user_id: int = 1) -> dict[str, Any]:
        """A person restores the record from the recycling bin (the API has no restore)."""
        result: dict[str, Any] = self._call("POST", f"/objects/{object_type}/{object_id}/restore", {"userId": user_id})
        return result

    def all_records(self, object_type: str) -> list[dict[str, Any]]:
        """Every record, archived ones too, with every property and its history."""
        result: list[dict[str, Any]] = self._call("GET", f"/objects/{object_type}")["results"]
        return result
