"""The engine's end-to-end rule tests see each connector's local CRM through one small driver: what
a person does there (edit fields, delete a record, at a time the test chooses) and what the tests
read back. A connector joins the shared tests by adding a driver and a case to the ``crm`` fixture
(conftest.py)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from hubspot import HubSpot

from crm_pipeline.crm import NotionAdapter
from crm_pipeline.crm.adapter import CRMAdapter
from crm_pipeline.crm.hubspot import HUBSPOT_PROPERTY_MAP, HubSpotAdapter
from crm_pipeline.crm.hubspot.mapping import encode
from crm_pipeline.crm.notion.codecs import to_notion_properties
from crm_pipeline.crm.notion.properties import SYNCED_PROPERTY_MAP
from crm_pipeline.crm.salesforce import DEFAULT_STAGE_NAMES, SALESFORCE_FIELD_MAP, SalesforceAdapter
from crm_pipeline.crm.salesforce import mapping as salesforce_mapping
from crm_pipeline.hubspot_sandbox import DEFAULT_TOKEN, HubSpotControl
from crm_pipeline.models import OpportunityRead
from crm_pipeline.salesforce_sandbox import HUMAN_USER, SalesforceControl, sandbox_salesforce
from crm_pipeline_tests.crm.conftest import Workspace


class LocalCRM(ABC):
    """A connector's adapter over its local CRM, and a person's hands on that CRM."""

    adapter: CRMAdapter

    @property
    def precision(self) -> timedelta:
        """How finely the CRM dates edits: two edits this far apart are ordered."""
        return timedelta(seconds=self.adapter.capabilities.timestamp_resolution_seconds)

    @abstractmethod
    def external_id(self, deal_id: UUID) -> str:
        """The id of the CRM record carrying the deal's sync key."""

    @abstractmethod
    def edit(self, deal_id: UUID, at: datetime | None = None, **values: Any) -> None:
        """A person sets these deal fields on the deal's record, at ``at`` (the CRM's clock as it
        runs when None)."""

    @abstractmethod
    def delete(self, deal_id: UUID) -> None:
        """A person deletes the deal's record (to the CRM's trash or recycling bin)."""

    @abstractmethod
    def in_trash(self, deal_id: UUID) -> bool: ...

    @abstractmethod
    def record_writes(self) -> int:
        """Record creates and updates the CRM answered since ``reset_stats``."""

    @abstractmethod
    def reset_stats(self) -> None: ...

    def spoil(self, deal_id: UUID) -> str:
        """A person leaves the deal's record unreadable to its connector; the deal field at fault.
        By default the name is cleared (a deal must have one)."""
        self.edit(deal_id, name=None)
        return "name"

    def mend(self, deal_id: UUID, name: str) -> None:
        """A person makes the spoilt record readable again, renaming it."""
        self.edit(deal_id, name=name)

    async def read(self, deal_id: UUID) -> OpportunityRead:
        """The deal's record as its connector reads it."""
        record = await self.adapter.get_opportunity(self.external_id(deal_id))
        assert record is not None
        return record


class NotionCRM(LocalCRM):
    def __init__(self, workspace: Workspace, adapter: NotionAdapter) -> None:
        self.workspace, self.control, self.adapter = workspace, workspace.control, adapter

    def _page(self, deal_id: UUID) -> dict[str, Any]:
        [page] = [
            page
            for page in self.control.all_pages(self.workspace.data_source_id)
            if "".join(t["plain_text"] for t in page["properties"]["Sync Key"]["rich_text"]) == str(deal_id)
        ]
        return page

    def external_id(self, deal_id: UUID) -> str:
        return str(self._page(deal_id)["id"])

    def edit(self, deal_id: UUID, at: datetime | None = None, **values: Any) -> None:
        if at is not None:
            self.control.set_clock(at)
        properties = to_notion_properties(values, SYNCED_PROPERTY_MAP)
        self.control.human_update_page(self.external_id(deal_id), {"properties": properties})

    def delete(self, deal_id: UUID) -> None:
        self.control.human_update_page(self.external_id(deal_id), {"in_trash": True})

    def in_trash(self, deal_id: UUID) -> bool:
        return bool(self._page(deal_id)["in_trash"])

    def record_writes(self) -> int:
        routes = self.control.stats()["by_route"]
        return sum(sum(routes.get(route, {}).values()) for route in ("POST /v1/pages", "PATCH /v1/pages/{page_id}"))

    def reset_stats(self) -> None:
        self.control.reset_stats()


class HubSpotCRM(LocalCRM):
    def __init__(self, base_url: str, control: HubSpotControl, adapter: HubSpotAdapter) -> None:
        self.control, self.adapter = control, adapter
        self.sdk = HubSpot(access_token=DEFAULT_TOKEN, host=base_url)

    def _deal(self, deal_id: UUID) -> dict[str, Any]:
        [found] = [r for r in self.control.all_records("deals") if r["properties"]["crm_pipeline_id"] == str(deal_id)]
        return found

    def external_id(self, deal_id: UUID) -> str:
        return str(self._deal(deal_id)["id"])

    def edit(self, deal_id: UUID, at: datetime | None = None, **values: Any) -> None:
        """Through HubSpot's UI (history ``CRM_UI``); stages are not among the fields it sets."""
        if at is not None:
            self.control.set_clock(at)
        properties = {
            HUBSPOT_PROPERTY_MAP[name].name: encode(value, name, HUBSPOT_PROPERTY_MAP[name], {}, None)
            for name, value in values.items()
        }
        self.control.ui_edit("deals", self.external_id(deal_id), properties)

    def delete(self, deal_id: UUID) -> None:
        self.sdk.crm.deals.basic_api.archive(self.external_id(deal_id))

    def in_trash(self, deal_id: UUID) -> bool:
        return bool(self._deal(deal_id)["archived"])

    def record_writes(self) -> int:
        routes = self.control.stats()["by_route"]
        return sum(
            sum(routes.get(f"POST /crm/v3/objects/{{object_type}}/batch/{kind}", {}).values())
            for kind in ("upsert", "update", "create")
        )

    def reset_stats(self) -> None:
        self.control.reset_stats()


class SalesforceCRM(LocalCRM):
    """The local Salesforce on real time; a person edits through the UI and deletes through their
    own session."""

    def __init__(self, base_url: str, control: SalesforceControl, adapter: SalesforceAdapter) -> None:
        self.control, self.adapter = control, adapter
        control.grant_token("person-session", HUMAN_USER)
        self.person = sandbox_salesforce(base_url, "person-session")

    def _record(self, deal_id: UUID) -> dict[str, Any]:
        [found] = [r for r in self.control.all_records("Opportunity") if r["Sync_Key__c"] == str(deal_id)]
        return found

    def external_id(self, deal_id: UUID) -> str:
        return str(self._record(deal_id)["Id"])

    def edit(self, deal_id: UUID, at: datetime | None = None, **values: Any) -> None:
        fields = {
            SALESFORCE_FIELD_MAP[name].name: salesforce_mapping.encode(
                value, name, SALESFORCE_FIELD_MAP[name], DEFAULT_STAGE_NAMES, None
            )
            for name, value in values.items()
        }
        self.control.person_edit("Opportunity", self.external_id(deal_id), _plain(fields), at=at)

    def spoil(self, deal_id: UUID) -> str:
        """Salesforce never holds an opportunity without a Name: a person picks a stage no deal
        stage maps to instead."""
        self.control.person_edit("Opportunity", self.external_id(deal_id), {"StageName": "Perception Analysis"})
        return "deal_stage"

    def mend(self, deal_id: UUID, name: str) -> None:
        self.edit(deal_id, name=name, deal_stage="Lead")

    def delete(self, deal_id: UUID) -> None:
        self.person.Opportunity.delete(self.external_id(deal_id))

    def in_trash(self, deal_id: UUID) -> bool:
        return bool(self._record(deal_id)["IsDeleted"])

    def record_writes(self) -> int:
        routes = self.control.stats()["by_route"]
        return sum(
            sum(counts.values())
            for route, counts in routes.items()
            if route.split(" ")[0] in ("POST", "PATCH") and "/sobjects" in route and "Task" not in route
        )

    def reset_stats(self) -> None:
        self.control.reset_stats()


def _plain(fields: dict[str, Any]) -> dict[str, Any]:
    """JSON values for the control client (a Decimal as its exact text's number)."""
    return {name: float(value) if isinstance(value, Decimal) else value for name, value in fields.items()}
