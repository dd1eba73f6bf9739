"""Deal fields as Opportunity fields, and back, without loss where Salesforce can hold the value.

Salesforce answers JSON with typed values: currency as a number (read as ``Decimal``: the client
parses floats so, and an integer ``1500`` is taken as ``1500.00``), dates as ``2026-03-31``,
picklists as their API value, percent as a number from 0 to 100. The deal store's probability is a
fraction from 0 to 1 with up to six places, Salesforce's a whole percent (``percent(3,0)``): the
adapter sends ``round(p × 100)``, halves rounded up, so what it sends is what Salesforce stores,
and reads ``percent / 100`` back. A fraction finer than a percent (0.355) therefore comes back as
0.36; the change read reports that value as the sync's own write (its field history row is the
integration user's), so it is never taken for a person's override. Our stages map to the org's
``OpportunityStage.ApiName`` values through a table read at set-up; a stage the table lacks, or an
``ApiName`` no stage maps to, is a ``FieldMappingError`` naming the record and field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Literal
from uuid import UUID

from crm_pipeline.crm.errors import FieldMappingError

Codec = Literal["string", "money", "date", "percent", "stage", "tags"]
CENTS = Decimal("0.01")
PERCENT = Decimal(100)


@dataclass(frozen=True)
class SalesforceField:
    """Where a deal field lives on Opportunity (``name``) and how its value is written there.
    Custom fields (``…__c``) are made by the org's admin; set-up checks they exist and are writable."""

    name: str
    codec: Codec = "string"

    @property
    def custom(self) -> bool:
        return self.name.endswith("__c")

    @property
    def types(self) -> frozenset[str]:
        """The describe ``type`` values a field of this codec may have."""
        return {
            "money": frozenset({"currency", "double"}),
            "date": frozenset({"date"}),
            "percent": frozenset({"percent", "double"}),
            "stage": frozenset({"picklist"}),
        }.get(self.codec, frozenset({"string", "textarea", "email", "picklist"}))


SALESFORCE_FIELD_MAP: dict[str, SalesforceField] = {
    "name": SalesforceField("Name"),
    "deal_stage": SalesforceField("StageName", "stage"),
    "estimated_value": SalesforceField("Amount", "money"),
    "close_date": SalesforceField("CloseDate", "date"),
    "probability": SalesforceField("Probability", "percent"),
    "product_line": SalesforceField("Product_Line__c"),
    "source": SalesforceField("Deal_Source__c"),
    "contact_name": SalesforceField("Contact_Name__c"),
    "contact_email": SalesforceField("Contact_Email__c"),
    "custom_notes": SalesforceField("Description"),
    "override_stage": SalesforceField("Override_Stage__c"),
    "manual_tags": SalesforceField("Manual_Tags__c", "tags"),
}
"""The synced deal fields (those HubSpot's map holds), by Opportunity field."""

SYNC_KEY_FIELD = "Sync_Key__c"
"""Text, External ID and Unique: the primary record's id as a lowercase UUID string (URL-safe,
since the client does not encode upsert keys), which collections upsert on."""

DEFAULT_STAGE_NAMES: dict[str, str] = {
    "Lead": "Prospecting",
    "Qualified": "Qualification",
    "Proposal": "Proposal/Price Quote",
    "Negotiation": "Negotiation/Review",
    "Closed Won": "Closed Won",
    "Closed Lost": "Closed Lost",
}
"""Our stages as the ``ApiName`` values of a fresh org's Opportunity stages."""


def sync_key_text(key: UUID | str) -> str:
    return str(UUID(str(key)))


def encode(value: Any, field: str, spec: SalesforceField, stages: Mapping[str, str], record_id: str | None) -> Any:
    """The JSON value of one field for Salesforce (None clears)."""
    if value is None:
        return None
    if spec.codec == "money":
        if not isinstance(value, Decimal | int) or isinstance(value, bool):
            raise FieldMappingError(record_id, field, spec.name, value, "a decimal amount is expected")
        return Decimal(value).quantize(CENTS, ROUND_HALF_UP)
    if spec.codec == "percent":
        if not isinstance(value, Decimal) or not 0 <= value <= 1:
            raise FieldMappingError(record_id, field, spec.name, value, "a fraction from 0 to 1 is expected")
        return int((value * PERCENT).quantize(Decimal(1), ROUND_HALF_UP))
    if spec.codec == "date":
        if not isinstance(value, date) or isinstance(value, datetime):
            raise FieldMappingError(record_id, field, spec.name, value, "a date is expected")
        return value.isoformat()
    if spec.codec == "stage":
        if value not in stages:
            raise FieldMappingError(record_id, field, spec.name, value, "no Opportunity stage is mapped to this stage")
        return stages[value]
    if spec.codec == "tags":
        if not isinstance(value, list) or any(not isinstance(t, str) or ";" in t or not t for t in value):
            raise FieldMappingError(record_id, field, spec.name, value, "tags are non-empty texts without ';'")
        return ";".join(value) or None
    return str(value)


def decode(raw: Any, field: str, spec: SalesforceField, stage_names: Mapping[str, str], record_id: str) -> Any:
    """The deal field value of a Salesforce JSON value (None for null or an empty text)."""
    if raw is None or raw == "":
        return None
    if spec.codec in ("money", "percent"):
        number = _number(raw, field, spec, record_id)
        return number.quantize(CENTS) if spec.codec == "money" else (number / PERCENT).normalize()
    if spec.codec == "date":
        try:
            return date.fromisoformat(str(raw))
        except ValueError:
            raise FieldMappingError(record_id, field, spec.name, raw, "not a date") from None
    if spec.codec == "stage":
        if raw not in stage_names:
            raise FieldMappingError(record_id, field, spec.name, raw, "a stage no deal stage is mapped to")
        return stage_names[raw]
    if spec.codec == "tags":
        return [tag for tag in str(raw).split(";") if tag] or None
    return str(raw)


def _number(raw: Any, field: str, spec: SalesforceField, record_id: str) -> Decimal:
    if isinstance(raw, bool) or not isinstance(raw, Decimal | int | float | str):
        raise FieldMappingError(record_id, field, spec.name, raw, "not a number")
    try:
        number = Decimal(str(raw))  # a float by its shortest repr, should a caller parse floats so
    except InvalidOperation:
        raise FieldMappingError(record_id, field, spec.name, raw, "not a number") from None
    if not number.is_finite():
        raise FieldMappingError(record_id, field, spec.name, raw, "not a finite number")
    return number


def parse_time(raw: str) -> datetime:
    """A Salesforce datetime (``2026-01-02T03:04:05.000+0000``) as an aware UTC datetime."""
    moment = datetime.strptime(raw, "%Y-%m-%dT%H:%M:%S.%f%z") if "T" in raw else datetime.fromisoformat(raw)
    return moment.astimezone(UTC)


def soql_time(moment: datetime) -> str:
    """A SOQL dateTime literal (unquoted, UTC, whole seconds: Salesforce's stamps have no more)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def soql_text(value: str) -> str:
    """A quoted SOQL string literal."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\r", "\\r")
    return f"'{escaped}'"


def json_text(value: Any) -> str:
    """JSON for a request body, decimals written exactly (``json`` would refuse them, and a float
    could not hold an 18-digit amount)."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{json.dumps(str(k))}:{json_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(json_text(item) for item in value) + "]"
    return json.dumps(value)
