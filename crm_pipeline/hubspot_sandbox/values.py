"""The stored form of property values: HubSpot's checks and normalisation per property type,
and the parsing of times, which writes (crm_pipeline.hubspot_sandbox.portal) and search share."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from .errors import invalid_value
from .model import Property, iso

_OPEN_ENUMERATIONS = frozenset({"dealstage", "pipeline", "hubspot_owner_id", "hs_attachment_ids"})
"""Enumerations whose values are other objects' ids (pipelines and stages are checked apart)."""


def folded(name: str, value: str) -> str:
    return value.lower() if name == "email" else value


def normal_value(prop: Property, value: str, existing: str) -> str:
    """The stored form of a non-empty value, or a 400 naming the property."""
    name = prop.name
    if prop.type == "number":
        try:
            number = Decimal(value)
        except InvalidOperation:
            raise invalid_value(name, value, "not a number") from None
        if not number.is_finite():
            raise invalid_value(name, value, "not a finite number")
        return value
    if prop.type == "bool":
        if value.lower() not in ("true", "false"):
            raise invalid_value(name, value, "a bool is 'true' or 'false'")
        return value.lower()
    if prop.type == "datetime":
        return iso(epoch_ms(name, value))
    if prop.type == "date":
        ms = epoch_ms(name, value)
        if ms % 86_400_000:
            raise invalid_value(name, value, "a date is midnight UTC")
        return datetime.fromtimestamp(ms / 1000, tz=UTC).date().isoformat()
    if prop.type == "enumeration" and name not in _OPEN_ENUMERATIONS:
        parts = [p for p in value.split(";") if p]
        if value.startswith(";"):  # a leading ';' appends to the values held
            parts = [p for p in existing.split(";") if p] + parts
        unknown = [p for p in parts if p not in prop.options]
        if unknown:
            raise invalid_value(name, value, f"{unknown[0]!r} is not one of the allowed options")
        return ";".join(dict.fromkeys(parts))
    return value


def epoch_ms(name: str, value: str) -> int:
    if value.isdigit():
        return int(value)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise invalid_value(name, value, "epoch milliseconds or ISO 8601 expected") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)
