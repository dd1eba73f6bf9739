"""A typed client for the local Salesforce's control surface (``/_salesforce/...``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from crm_pipeline.emulation.control_client import ControlClient


class SalesforceControl(ControlClient):
    """The local Salesforce's controls. Fault kinds: 500, 502, 503 (JSON), 503-html or hang."""

    prefix = "/_salesforce"
    api_paths = "/services/data/*"

    def configure(self, **settings: Any) -> dict[str, Any]:
        """daily_api_max, used (requests to count as made just now), query_page_cap (short pages),
        concurrent_long_running_limit, long_running_elsewhere (other clients' long requests in
        flight), latency_ms, jitter_ms."""
        return self._call("PUT", "/config", settings)

    def setup(self, **parts: Any) -> dict[str, Any]:
        """Change the org's setup: stages ([{api_name, probability, forecast_category, closed, won,
        active}]), custom_fields ([{name, type, picklist}]), tracked_fields, hidden_fields,
        sync_key_unique, validation_rules ([{field, message, minimum}]), automations ([{fields,
        user_id, delay_seconds}])."""
        return self._call("PUT", "/setup", parts)

    def grant_token(self, token: str, user_id: str | None = None) -> None:
        """Accept ``token`` from now on, as ``user_id`` (the integration user unless named)."""
        self._call("POST", "/tokens", {"token": token, "user_id": user_id})

    def expire_token(self, token: str) -> None:
        """The session behind ``token`` ends: 401 INVALID_SESSION_ID from now on."""
        self._call("DELETE", f"/tokens/{token}")

    def users(self) -> list[dict[str, Any]]:
        """The org's users: the integration user (the default token's), a person, Automated Process."""
        return list(self._call("GET", "/users")["records"])

    def all_records(self, object_name: str) -> list[dict[str, Any]]:
        """Every record, Recycle Bin too, with every field."""
        return list(self._call("GET", f"/records/{object_name}")["records"])

    def person_create(self, object_name: str, fields: dict[str, Any], user_id: str | None = None) -> dict[str, Any]:
        """A person (the human user unless named) creates a record in Salesforce's UI."""
        return self._call("POST", f"/records/{object_name}", {"fields": fields, "user_id": user_id})

    def person_edit(
        self,
        object_name: str,
        record_id: str,
        fields: dict[str, Any],
        user_id: str | None = None,
        at: datetime | None = None,
    ) -> dict[str, Any]:
        """A person edits the record in the UI (history and LastModifiedById name them), stamped
        now or ``at``."""
        body = {"fields": fields, "user_id": user_id, "at": None if at is None else at.isoformat()}
        return self._call("PATCH", f"/records/{object_name}/{record_id}", body)

    def system_touch(self, object_name: str, record_id: str, at: datetime | None = None) -> dict[str, Any]:
        """A system update: SystemModstamp moves, nothing else."""
        return self._call(
            "POST", f"/records/{object_name}/{record_id}/touch", {"at": None if at is None else at.isoformat()}
        )

    def set_products(self, record_id: str, amount: float | None) -> dict[str, Any]:
        """The opportunity gets line items summing to ``amount`` (None: removed); while it has
        them, API writes to Amount are ignored."""
        return self._call("PUT", f"/records/Opportunity/{record_id}/products", {"amount": amount})

    def undelete(self, object_name: str, record_id: str) -> dict[str, Any]:
        """Restore the record from the Recycle Bin (same Id, new SystemModstamp)."""
        return self._call("POST", f"/records/{object_name}/{record_id}/undelete")

    def fail_record(
        self, match: str, error_code: str = "UNABLE_TO_LOCK_ROW", message: str | None = None, count: int = 1
    ) -> None:
        """The next ``count`` writes to the record with this Id or Sync_Key__c fail with ``error_code``."""
        self._call(
            "POST", "/record-errors", {"match": match, "errorCode": error_code, "message": message, "count": count}
        )

    def purge_delete_log(self, before: datetime) -> None:
        """The delete log forgets deletions before ``before`` (``earliestDateAvailable`` moves there)."""
        self._call("POST", "/delete-log/purge", {"before": before.isoformat()})

    def hold_coverage(self, held_at: datetime | None) -> None:
        """A transaction in flight since ``held_at`` holds getUpdated/getDeleted's
        ``latestDateCovered`` there (None: released)."""
        self._call("PUT", "/coverage", {"held_at": None if held_at is None else held_at.isoformat()})
