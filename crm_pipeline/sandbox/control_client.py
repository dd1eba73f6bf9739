"""A typed client for the sandbox control surface (`/_sandbox/...`)."""

from __future__ import annotations

from typing import Any

from crm_pipeline.emulation.control_client import ControlClient


class SandboxControl(ControlClient):
    """The Notion sandbox's controls. Fault kinds: 500, 502, 503, 504, 529, 409 or hang."""

    prefix = "/_sandbox"
    api_paths = "/v1/*"

    def configure(
        self,
        *,
        rate_limit: float | None = None,
        burst: int | None = None,
        latency_ms: float | None = None,
        jitter_ms: float | None = None,
        result_cap: int | None = None,
    ) -> dict[str, Any]:
        settings = {
            "rate_limit": rate_limit,
            "burst": burst,
            "latency_ms": latency_ms,
            "jitter_ms": jitter_ms,
            "result_cap": result_cap,
        }
        return self._call("PUT", "/config", {k: v for k, v in settings.items() if v is not None})

    def settings(self) -> dict[str, Any]:
        return self._call("GET", "/config")

    def faults(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/faults")["faults"])

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def seed(self, document: dict[str, Any]) -> list[dict[str, Any]]:
        """Create databases from a seed document; returns their database and data source ids."""
        return list(self._call("POST", "/seed", document)["databases"])

    def human_create_page(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create a page as the human user (same body as POST /v1/pages)."""
        return self._call("POST", "/pages", body)

    def human_update_page(self, page_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Edit a page as the human user (same body as PATCH /v1/pages/{id}); last_edited_by is the human."""
        return self._call("PATCH", f"/pages/{page_id}", body)

    def set_computed(self, page_id: str, results: dict[str, Any]) -> dict[str, Any]:
        """Set formula and rollup results, which the sandbox does not evaluate: `{property name or
        id: {"type": "number", "number": 3} | None}` (a rollup's `function` comes from its schema).
        Returns the page; nobody's edit time changes."""
        return self._call("PUT", f"/pages/{page_id}/computed", {"properties": results})

    def all_pages(self, data_source_id: str) -> list[dict[str, Any]]:
        """Every page of a data source, trashed ones included, in creation order."""
        return list(self._call("GET", f"/data_sources/{data_source_id}/pages")["results"])

    def users(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/users")["results"])

    def save(self) -> None:
        self._call("POST", "/save")
