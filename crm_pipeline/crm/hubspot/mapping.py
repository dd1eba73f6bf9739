"""Deal and contact fields as HubSpot property strings, and back, without loss.

HubSpot holds every value as a string: numbers as plain decimals (``"1500.00"``; never an
exponent), dates as epoch milliseconds of midnight UTC on the way in and ISO 8601 on the way out,
stages as their pipeline's internal stage ids, tags as a multi-checkbox's ``a;b``, and ``""``
clears a value. A value that cannot be
mapped either way is a ``FieldMappingError`` naming the record, field, property and value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from crm_pipeline.crm.errors import FieldMappingError

Codec = Literal["string", "number", "date", "stage", "tags"]


@dataclass(frozen=True)
class HubSpotProperty:
    """Where a field lives in HubSpot (``name``) and how its value is written there (``codec``).
    ``custom`` properties are created by the adapter when the portal lacks them."""

    name: str
    codec: Codec = "string"
    custom: bool = False

    @property
    def hubspot_type(self) -> str:
        return {"number": "number", "date": "datetime", "stage": "enumeration", "tags": "enumeration"}.get(
            self.codec, "string"
        )

    @property
    def field_type(self) -> str:
        """The property's form field, for creating it."""
        return {"number": "number", "date": "date", "tags": "checkbox"}.get(self.codec, "text")


HUBSPOT_PROPERTY_MAP: dict[str, HubSpotProperty] = {
    "name": HubSpotProperty("dealname"),
    "deal_stage": HubSpotProperty("dealstage", "stage"),
    "estimated_value": HubSpotProperty("amount", "number"),
    "close_date": HubSpotProperty("closedate", "date"),
    "product_line": HubSpotProperty("crm_product_line", custom=True),
    "probability": HubSpotProperty("crm_probability", "number", custom=True),
    "source": HubSpotProperty("crm_source", custom=True),
    "contact_name": HubSpotProperty("crm_contact_name", custom=True),
    "contact_email": HubSpotProperty("crm_contact_email", custom=True),
    "custom_notes": HubSpotProperty("crm_notes", custom=True),
    "override_stage": HubSpotProperty("crm_override_stage", custom=True),
    "manual_tags": HubSpotProperty("crm_tags", "tags", custom=True),
}
"""The synced deal fields (the same ones Notion's synced map holds), by HubSpot property."""

SYNC_KEY = HubSpotProperty("crm_pipeline_id", custom=True)
"""The unique-value property holding the primary record's id: upserts key on it."""

DEFAULT_STAGE_LABELS: dict[str, str] = {
    "Lead": "Appointment Scheduled",
    "Qualified": "Qualified To Buy",
    "Proposal": "Presentation Scheduled",
    "Negotiation": "Decision Maker Bought-In",
    "Closed Won": "Closed Won",
    "Closed Lost": "Closed Lost",
}
"""Our stages as the stage labels of HubSpot's default sales pipeline; stage ids are read from it."""


def encode(value: Any, field: str, prop: HubSpotProperty, stages: Mapping[str, str], record_id: str | None) -> str:
    """The HubSpot string for one field value (``""`` clears)."""
    if value is None:
        return ""
    if prop.codec == "number":
        if not isinstance(value, Decimal | int | float) or isinstance(value, bool):
            raise FieldMappingError(record_id, field, prop.name, value, "a number is expected")
        return format(Decimal(str(value)), "f")
    if prop.codec == "date":
        if not isinstance(value, date):
            raise FieldMappingError(record_id, field, prop.name, value, "a date is expected")
        day = value.date() if isinstance(value, datetime) else value
        return str(int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000))
    if prop.codec == "stage":
        if value not in stages:
            raise FieldMappingError(record_id, field, prop.name, value, "no pipeline stage is mapped to this stage")
        return stages[value]
    if prop.codec == "tags":
        if not isinstance(value, list) or any(not isinstance(t, str) or ";" in t or not t for t in value):
            raise FieldMappingError(record_id, field, prop.name, value, "tags are non-empty texts without ';'")
        return ";".join(value)  # a leading ';' would append instead of replace; no tag is empty
    return str(value)


def decode(raw: str | None, field: str, prop: HubSpotProperty, stage_names: Mapping[str, str], record_id: str) -> Any:
    """The field value of a HubSpot string (None for an empty or absent value)."""
    if raw is None or raw == "":
        return None
    if prop.codec == "number":
        try:
            number = Decimal(raw)
        except InvalidOperation:
            raise FieldMappingError(record_id, field, prop.name, raw, "not a number") from None
        if not number.is_finite():
            raise FieldMappingError(record_id, field, prop.name, raw, "not a finite number")
        return number
    if prop.codec == "date":
        return parse_time(raw, field, prop.name, record_id).date()
    if prop.codec == "stage":
        if raw not in stage_names:
            raise FieldMappingError(record_id, field, prop.name, raw, "a stage id no deal stage is mapped to")
        return stage_names[raw]
    if prop.codec == "tags":
        return [tag for tag in raw.split(";") if tag]
    return raw


def parse_time(raw: str, field: str, property_name: str, record_id: str) -> datetime:
    """An ISO 8601 or epoch-milliseconds HubSpot time, as an aware UTC datetime."""
    if raw.isdigit():
        return datetime.fromtimestamp(int(raw) / 1000, tz=UTC)
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise FieldMappingError(record_id, field, property_name, raw, "not a time HubSpot writes") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
