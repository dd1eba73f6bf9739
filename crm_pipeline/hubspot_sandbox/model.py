"""What a local HubSpot portal is made of: object types and their built-in properties, the deal
pipeline, records with per-property version histories, and who writes them. Plain data with
its JSON forms, kept apart from the portal's operations on it (crm_pipeline.hubspot_sandbox.portal)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

OBJECT_TYPES = {"deals": "0-3", "contacts": "0-1", "notes": "0-46"}
LAST_MODIFIED = {"deals": "hs_lastmodifieddate", "contacts": "lastmodifieddate", "notes": "hs_lastmodifieddate"}
DEFAULT_PROPERTIES = {
    "deals": ("dealname", "amount", "closedate", "pipeline", "dealstage"),
    "contacts": ("firstname", "lastname", "email"),
    "notes": ("hs_note_body", "hs_timestamp"),
}
# association type ids (HUBSPOT_DEFINED), by (from, to)
ASSOCIATION_TYPES = {
    ("deals", "contacts"): 3,
    ("contacts", "deals"): 4,
    ("notes", "contacts"): 202,
    ("contacts", "notes"): 201,
    ("notes", "deals"): 214,
    ("deals", "notes"): 213,
}
SINGULAR_NAMES = {"deals": "deal", "contacts": "contact", "notes": "note"}
API_USER = "API"
UI_USER = "CRM_UI"


@dataclass
class Property:
    name: str
    type: str  # string | number | date | datetime | enumeration | bool
    field_type: str = "text"
    label: str = ""
    unique: bool = False
    read_only: bool = False
    options: list[str] = field(default_factory=list)
    group: str = "dealinformation"

    def to_json(self, object_type: str) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label or self.name,
            "type": self.type,
            "fieldType": self.field_type,
            "groupName": self.group,
            "hasUniqueValue": self.unique,
            "options": [
                {"label": o, "value": o, "displayOrder": i, "hidden": False} for i, o in enumerate(self.options)
            ],
            "modificationMetadata": {"readOnlyValue": self.read_only, "archivable": not self.read_only},
            "calculated": False,
            "externalOptions": False,
            "formField": False,
            "hidden": False,
            "description": "",
            "displayOrder": -1,
        }


def builtin_properties(object_type: str) -> list[Property]:
    read_only = [
        Property("hs_object_id", "number", "number", read_only=True),
        Property("createdate", "datetime", "date", read_only=True),
        Property(LAST_MODIFIED[object_type], "datetime", "date", read_only=True),
        Property("hs_merged_object_ids", "enumeration", "checkbox", read_only=True),
    ]
    writable = {
        "deals": [
            Property("dealname", "string"),
            Property("amount", "number", "number"),
            Property("closedate", "datetime", "date"),
            Property("pipeline", "enumeration", "select"),
            Property("dealstage", "enumeration", "radio"),
            Property("hubspot_owner_id", "enumeration", "select"),
            Property("description", "string", "textarea"),
        ],
        "contacts": [
            Property("firstname", "string", group="contactinformation"),
            Property("lastname", "string", group="contactinformation"),
            Property("email", "string", unique=True, group="contactinformation"),
            Property("phone", "string", "phonenumber", group="contactinformation"),
            Property("jobtitle", "string", group="contactinformation"),
            Property("company", "string", group="contactinformation"),
        ],
        "notes": [
            Property("hs_note_body", "string", "html", group="engagement"),
            Property("hs_timestamp", "datetime", "date", group="engagement"),
            Property("hubspot_owner_id", "enumeration", "select", group="engagement"),
            Property("hs_attachment_ids", "enumeration", "checkbox", group="engagement"),
        ],
    }[object_type]
    return read_only + writable


@dataclass
class Stage:
    id: str
    label: str
    probability: str
    closed: bool = False


@dataclass
class Pipeline:
    id: str
    label: str
    stages: list[Stage]

    def to_json(self, created: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "label": self.label,
            "displayOrder": 0,
            "archived": False,
            "createdAt": created,
            "updatedAt": created,
            "stages": [
                {
                    "id": stage.id,
                    "label": stage.label,
                    "displayOrder": order,
                    "archived": False,
                    "createdAt": created,
                    "updatedAt": created,
                    "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT",
                    "metadata": {"probability": stage.probability, "isClosed": str(stage.closed).lower()},
                }
                for order, stage in enumerate(self.stages)
            ],
        }


DEFAULT_PIPELINE = Pipeline(
    "default",
    "Sales Pipeline",
    [
        Stage("appointmentscheduled", "Appointment Scheduled", "0.2"),
        Stage("qualifiedtobuy", "Qualified To Buy", "0.4"),
        Stage("presentationscheduled", "Presentation Scheduled", "0.6"),
        Stage("decisionmakerboughtin", "Decision Maker Bought-In", "0.8"),
        Stage("contractsent", "Contract Sent", "0.9"),
        Stage("closedwon", "Closed Won", "1.0", closed=True),
        Stage("closedlost", "Closed Lost", "0.0", closed=True),
    ],
)


@dataclass(frozen=True)
class Version:
    value: str
    timestamp_ms: int
    source_type: str
    source_id: str
    user_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "value": self.value,
            "timestamp": iso(self.timestamp_ms),
            "sourceType": self.source_type,
            "sourceId": self.source_id,
        }
        if self.user_id is not None:
            entry["updatedByUserId"] = self.user_id
        return entry


@dataclass
class Record:
    id: str
    object_type: str
    created_ms: int
    history: dict[str, list[Version]] = field(default_factory=dict)  # newest first
    archived_ms: int | None = None
    merged_ids: list[str] = field(default_factory=list)

    @property
    def updated_ms(self) -> int:
        return max((versions[0].timestamp_ms for versions in self.history.values()), default=self.created_ms)

    def values(self, as_of_ms: int | None = None) -> dict[str, str]:
        """Each property's value (``""`` cleared values left out), as of a moment if given."""
        values = {}
        for name, versions in self.history.items():
            current = next((v for v in versions if as_of_ms is None or v.timestamp_ms <= as_of_ms), None)
            if current is not None and current.value != "":
                values[name] = current.value
        return values


@dataclass(frozen=True)
class Source:
    """Who writes: the app's token (``API``) or a person in the HubSpot UI (``CRM_UI``)."""

    source_type: str
    source_id: str
    user_id: int | None = None


APP = Source(API_USER, "sandbox-private-app")


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
