"""The objects the org serves and their fields, as describe tells them and as SOQL binds them:
Opportunity (with the setup's custom fields and profile-hidden fields), Task, Contact, User,
OpportunityStage, OpportunityFieldHistory and OpportunityHistory."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .setup import FORECAST_CATEGORIES, SYNC_KEY, Setup
from .soql import FieldType

PREFIXES = {
    "Opportunity": "006",
    "Task": "00T",
    "Contact": "003",
    "User": "005",
    "OpportunityStage": "01J",
    "OpportunityFieldHistory": "017",
    "OpportunityHistory": "008",
}
WRITABLE_OBJECTS = ("Opportunity", "Task", "Contact")
LEAD_SOURCES = ("Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other")
OPPORTUNITY_TYPES = (
    "Existing Customer - Upgrade",
    "Existing Customer - Replacement",
    "Existing Customer - Downgrade",
    "New Customer",
)
TASK_STATUSES = ("Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred")
TASK_PRIORITIES = ("High", "Normal", "Low")
AUDIT_FIELDS = ("CreatedDate", "CreatedById", "LastModifiedDate", "LastModifiedById", "SystemModstamp")


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: FieldType
    createable: bool = True
    updateable: bool = True
    nillable: bool = True
    required: bool = False
    """Needed on create, and may not be cleared."""
    length: int = 0
    external_id: bool = False
    unique: bool = False
    picklist: tuple[str, ...] = ()
    restricted: bool = False
    reference_to: tuple[str, ...] = ()
    custom: bool = False
    default: str | None = None
    """The picklist value a create without the field gets."""
    scale: int | None = None
    """Decimal places a number keeps (rounded half up)."""

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.name.removesuffix("__c").replace("_", " "),
            "type": self.type,
            "length": self.length,
            "nillable": self.nillable,
            "createable": self.createable,
            "updateable": self.updateable,
            "externalId": self.external_id,
            "unique": self.unique,
            "custom": self.custom,
            "idLookup": self.name == "Id" or self.external_id,
            "filterable": True,
            "sortable": self.type not in ("textarea", "anyType"),
            "restrictedPicklist": self.restricted,
            "defaultedOnCreate": self.default is not None or not (self.createable or self.updateable),
            "referenceTo": list(self.reference_to),
            "picklistValues": [
                {
                    "value": value,
                    "label": value,
                    "active": True,
                    "defaultValue": value == self.default,
                    "validFor": None,
                }
                for value in self.picklist
            ],
        }


def _read_only(name: str, kind: FieldType, **options: Any) -> FieldSpec:
    return FieldSpec(name, kind, createable=False, updateable=False, **options)


def _system_fields(modified: bool = True) -> list[FieldSpec]:
    fields = [
        _read_only("Id", "id", nillable=False, length=18),
        _read_only("IsDeleted", "boolean", nillable=False),
        _read_only("CreatedDate", "datetime", nillable=False),
        _read_only("CreatedById", "reference", nillable=False, reference_to=("User",), length=18),
    ]
    if modified:
        fields += [
            _read_only("LastModifiedDate", "datetime", nillable=False),
            _read_only("LastModifiedById", "reference", nillable=False, reference_to=("User",), length=18),
            _read_only("SystemModstamp", "datetime", nillable=False),
        ]
    return fields


def _opportunity(setup: Setup) -> list[FieldSpec]:
    stages = tuple(s.api_name for s in setup.stages if s.active)
    fields = _system_fields() + [
        FieldSpec("AccountId", "reference", reference_to=("Account",), length=18),
        FieldSpec("Name", "string", nillable=False, required=True, length=120),
        FieldSpec("Description", "textarea", length=32000),
        FieldSpec("StageName", "picklist", nillable=False, required=True, length=255, picklist=stages, restricted=True),
        FieldSpec("Amount", "currency", scale=2),
        FieldSpec("Probability", "percent", scale=0),
        _read_only("ExpectedRevenue", "currency"),
        FieldSpec("CloseDate", "date", nillable=False, required=True),
        FieldSpec("Type", "picklist", length=255, picklist=OPPORTUNITY_TYPES),
        FieldSpec("NextStep", "string", length=255),
        FieldSpec("LeadSource", "picklist", length=255, picklist=LEAD_SOURCES),
        _read_only("IsClosed", "boolean", nillable=False),
        _read_only("IsWon", "boolean", nillable=False),
        FieldSpec("ForecastCategoryName", "picklist", length=255, picklist=FORECAST_CATEGORIES, restricted=True),
        FieldSpec("OwnerId", "reference", nillable=False, reference_to=("User",), length=18),
        _read_only("LastActivityDate", "date"),
        _read_only("FiscalQuarter", "int"),
        _read_only("FiscalYear", "int"),
        _read_only("HasOpportunityLineItem", "boolean", nillable=False),
        FieldSpec(SYNC_KEY, "string", length=255, external_id=True, unique=setup.sync_key_unique, custom=True),
    ]
    for custom in setup.custom_fields:
        length = {"string": 255, "textarea": 32768, "picklist": 255}.get(custom.type, 0)
        fields.append(FieldSpec(custom.name, custom.type, length=length, picklist=custom.picklist, custom=True))  # type: ignore[arg-type]
    hidden = set(setup.hidden_fields)
    return [f for f in fields if f.name not in hidden]


def _task() -> list[FieldSpec]:
    return _system_fields() + [
        FieldSpec("WhatId", "reference", reference_to=("Opportunity", "Account"), length=18),
        FieldSpec("WhoId", "reference", reference_to=("Contact", "Lead"), length=18),
        FieldSpec("Subject", "string", length=255),
        FieldSpec("ActivityDate", "date"),
        FieldSpec("Status", "picklist", nillable=False, length=255, picklist=TASK_STATUSES, default="Not Started"),
        FieldSpec("Priority", "picklist", nillable=False, length=255, picklist=TASK_PRIORITIES, default="Normal"),
        FieldSpec("Description", "textarea", length=32000),
        FieldSpec("OwnerId", "reference", nillable=False, reference_to=("User",), length=18),
        FieldSpec("TaskSubtype", "picklist", updateable=False, length=40, picklist=("Task", "Email", "Call")),
        _read_only("IsClosed", "boolean", nillable=False),
    ]


def _contact() -> list[FieldSpec]:
    return _system_fields() + [
        FieldSpec("AccountId", "reference", reference_to=("Account",), length=18),
        FieldSpec("FirstName", "string", length=40),
        FieldSpec("LastName", "string", nillable=False, required=True, length=80),
        _read_only("Name", "string", length=121),
        FieldSpec("Email", "string", length=80),
        FieldSpec("Phone", "string", length=40),
        FieldSpec("Title", "string", length=128),
        FieldSpec("Description", "textarea", length=32000),
        FieldSpec("OwnerId", "reference", nillable=False, reference_to=("User",), length=18),
    ]


def _user() -> list[FieldSpec]:
    return _system_fields() + [
        _read_only("Username", "string", nillable=False, length=80),
        _read_only("Name", "string", length=121),
        _read_only("Email", "string", length=128),
        _read_only("IsActive", "boolean", nillable=False),
    ]


def _stage() -> list[FieldSpec]:
    return _system_fields() + [
        _read_only("ApiName", "string", nillable=False, length=255),
        _read_only("MasterLabel", "string", nillable=False, length=255),
        _read_only("DefaultProbability", "percent"),
        _read_only("ForecastCategoryName", "picklist", nillable=False, picklist=FORECAST_CATEGORIES),
        _read_only("IsActive", "boolean", nillable=False),
        _read_only("IsClosed", "boolean", nillable=False),
        _read_only("IsWon", "boolean", nillable=False),
        _read_only("SortOrder", "int"),
    ]


def _field_history() -> list[FieldSpec]:
    return _system_fields(modified=False) + [
        _read_only("OpportunityId", "reference", nillable=False, reference_to=("Opportunity",), length=18),
        _read_only("Field", "picklist", nillable=False, length=255),
        _read_only("DataType", "picklist", length=255),
        _read_only("OldValue", "anyType"),
        _read_only("NewValue", "anyType"),
    ]


def _stage_history() -> list[FieldSpec]:
    return _system_fields(modified=False) + [
        _read_only("OpportunityId", "reference", nillable=False, reference_to=("Opportunity",), length=18),
        _read_only("StageName", "picklist", length=255),
        _read_only("Amount", "currency"),
        _read_only("PrevAmount", "currency"),
        _read_only("ExpectedRevenue", "currency"),
        _read_only("Probability", "percent"),
        _read_only("CloseDate", "date"),
        _read_only("PrevCloseDate", "date"),
        _read_only("ForecastCategory", "picklist", length=40),
        _read_only("SystemModstamp", "datetime", nillable=False),
    ]


class Schema:
    """Every object's fields under one setup, with case-blind lookup (field names are)."""

    def __init__(self, setup: Setup) -> None:
        self.fields: dict[str, dict[str, FieldSpec]] = {
            "Opportunity": {f.name: f for f in _opportunity(setup)},
            "Task": {f.name: f for f in _task()},
            "Contact": {f.name: f for f in _contact()},
            "User": {f.name: f for f in _user()},
            "OpportunityStage": {f.name: f for f in _stage()},
            "OpportunityFieldHistory": {f.name: f for f in _field_history()},
            "OpportunityHistory": {f.name: f for f in _stage_history()},
        }
        self._folded = {o: {name.lower(): spec for name, spec in fields.items()} for o, fields in self.fields.items()}

    def object_name(self, raw: str) -> str | None:
        return next((name for name in self.fields if name.lower() == raw.lower()), None)

    def field(self, object_name: str, raw: str) -> FieldSpec | None:
        return self._folded[object_name].get(raw.lower())

    def types(self) -> dict[str, dict[str, FieldType]]:
        """What SOQL binds against: each object's fields and their types."""
        return {o: {name: spec.type for name, spec in fields.items()} for o, fields in self.fields.items()}

    def describe(self, object_name: str, version: str) -> dict[str, Any]:
        writable = object_name in WRITABLE_OBJECTS
        base = f"/services/data/v{version}/sobjects/{object_name}"
        return {
            "name": object_name,
            "label": object_name,
            "keyPrefix": PREFIXES[object_name],
            "custom": False,
            "createable": writable,
            "updateable": writable,
            "deletable": writable,
            "undeletable": writable,
            "queryable": True,
            "retrieveable": True,
            "replicateable": object_name != "OpportunityStage",
            "fields": [spec.describe() for spec in self.fields[object_name].values()],
            "urls": {"sobject": base, "describe": f"{base}/describe", "rowTemplate": f"{base}/{{ID}}"},
        }
