"""A typed client for the local HubSpot's control surface (``/_hubspot/...``)."""

from __future__ import annotations

from typing import Any

from crm_pipeline.emulation.control_client import ControlClient


class HubSpotControl(ControlClient):
    """The local HubSpot's controls. Fault kinds: 423, 500, 502, 503, 504 or hang."""

    prefix = "/_hubspot"
    api_paths = "/crm/*"

    def configure(self, **settings: Any) -> dict[str, Any]:
        """ten_secondly_limit, daily_limit, search_per_second, search_lag_ms, search_result_cap,
        preserve_merged_ids, retry_after_s, latency_ms, jitter_ms."""
        return self._call("PUT", "/config", settings)

    def ui_create(self, object_type: str, properties: dict[str, str], user_id: int = 1) -> dict[str, Any]:
        """A person creates a record in HubSpot's UI (history: ``CRM_UI``, their user id)."""
        return self._call("POST", f"/objects/{object_type}", {"properties": properties, "userId": user_id})

    def ui_edit(self, object_type: str, object_id: str, properties: dict[str, str], user_id: int = 1) -> dict[str, Any]:
        """A person edits the record in HubSpot's UI (history: ``CRM_UI``, their user id)."""
        body = {"properties": properties, "userId": user_id}
        return self._call("PATCH", f"/objects/{object_type}/{object_id}", body)

    def app_edit(self, object_type: str, object_id: str, properties: dict[str, str], app_id: str) -> dict[str, Any]:
        """Another app (a workflow tool, an enrichment service) writes the record through the API
        (history: ``API``, its app id as ``sourceId``)."""
        return self._call("PATCH", f"/objects/{object_type}/{object_id}", {"properties": properties, "appId": app_id})

    def ui_restore(self, object_type: str, object_id: str, user_id: int = 1) -> dict[str, Any]:
        """A person restores the record from the recycling bin (the API has no restore)."""
        return self._call("POST", f"/objects/{object_type}/{object_id}/restore", {"userId": user_id})

    def all_records(self, object_type: str) -> list[dict[str, Any]]:
        """Every record, archived ones too, with every property and its history."""
        return list(self._call("GET", f"/objects/{object_type}")["results"])
