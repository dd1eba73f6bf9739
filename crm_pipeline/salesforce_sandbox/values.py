"""Field values three ways: a request's JSON checked and turned into Python values (str, Decimal,
int, date, UTC datetime, bool, None: what SOQL compares), those values as the API prints them,
and as the state file keeps them."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from .errors import SalesforceError, bad_request
from .ids import normal_id
from .schema import FieldSpec

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:?\d{2})")
MAX_NUMBER = Decimal(10) ** 18
TEXT_TYPES = ("string", "textarea", "picklist")


def sf_datetime(moment: datetime) -> str:
    """Salesforce's print of a moment: UTC, whole seconds with ``.000``, offset ``+0000``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def parse_datetime(text: str) -> datetime | None:
    """An ISO 8601 moment with a zone (``Z``, ``+0000`` or ``+00:00``, fractions allowed), in UTC to
    the second; None when ``text`` is not one."""
    match = _DATETIME.fullmatch(text.strip())
    if match is None:
        return None
    whole, _, zone = match.groups()
    zone = "+00:00" if zone == "Z" else zone if ":" in zone else f"{zone[:3]}:{zone[3:]}"
    try:
        return datetime.fromisoformat(whole + zone).astimezone(UTC)
    except ValueError:
        return None


def json_value(value: Any) -> Any:
    """A stored value as the API prints it (numbers as JSON numbers, dates and times as text)."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return sf_datetime(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def _parser_error(spec: FieldSpec, raw: Any) -> SalesforceError:
    kind = "VALUE_STRING" if isinstance(raw, str) else f"VALUE_{type(raw).__name__.upper()}"
    return bad_request("JSON_PARSER_ERROR", f"Cannot deserialize instance of {spec.type} from {kind} value {raw!r}")


def input_value(spec: FieldSpec, raw: Any) -> Any:
    """A request's value for a field as stored, or the error Salesforce answers it with (``None``
    is returned as is: whether it may clear the field is the caller's question)."""
    if raw is None:
        return None
    if spec.type in (*TEXT_TYPES, "id", "reference"):
        if not isinstance(raw, str):
            raise _parser_error(spec, raw)
        return _text(spec, raw)
    if spec.type == "boolean":
        if not isinstance(raw, bool):
            raise _parser_error(spec, raw)
        return raw
    if spec.type in ("currency", "percent", "double", "int"):
        return _number(spec, raw)
    if spec.type == "date":
        if not isinstance(raw, str) or not _DATE.fullmatch(raw):
            raise _parser_error(spec, raw)
        try:
            return date.fromisoformat(raw)
        except ValueError:
            raise _parser_error(spec, raw) from None
    if spec.type == "datetime":
        moment = parse_datetime(raw) if isinstance(raw, str) else None
        if moment is None:
            raise _parser_error(spec, raw)
        return moment
    raise _parser_error(spec, raw)


def _text(spec: FieldSpec, raw: str) -> str:
    if spec.type in ("id", "reference"):
        normal = normal_id(raw)
        if normal is None:
            raise bad_request("MALFORMED_ID", f"{spec.name}: id value of incorrect type: {raw}", [spec.name])
        return normal
    if spec.length and len(raw) > spec.length:
        raise bad_request(
            "STRING_TOO_LONG", f"{spec.name}: data value too large: {raw[:40]} (max length={spec.length})", [spec.name]
        )
    if spec.restricted and raw not in spec.picklist:
        raise bad_request(
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            f"{spec.name}: bad value for restricted picklist field: {raw}",
            [spec.name],
        )
    return raw


def _number(spec: FieldSpec, raw: Any) -> Decimal | int:
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise _parser_error(spec, raw)
    try:
        number = Decimal(str(raw))
    except InvalidOperation:
        raise _parser_error(spec, raw) from None
    if not number.is_finite():
        raise _parser_error(spec, raw)
    if spec.scale is not None:
        number = number.quantize(Decimal(1).scaleb(-spec.scale), rounding=ROUND_HALF_UP)
    if abs(number) >= MAX_NUMBER or (spec.type == "percent" and spec.scale == 0 and not 0 <= number <= 100):
        raise bad_request(
            "NUMBER_OUTSIDE_VALID_RANGE",
            f"{spec.name}: value outside of valid range on numeric field: {raw}",
            [spec.name],
        )
    if spec.type == "int":
        if number != number.to_integral_value():
            raise _parser_error(spec, raw)
        return int(number)
    return number


def state_value(value: Any) -> Any:
    """A stored value as the state file keeps it (typed where JSON has no type)."""
    if isinstance(value, Decimal):
        return {"decimal": str(value)}
    if isinstance(value, datetime):
        return {"datetime": value.isoformat()}
    if isinstance(value, date):
        return {"date": value.isoformat()}
    return value


def from_state(value: Any) -> Any:
    if isinstance(value, dict):
        if "decimal" in value:
            return Decimal(value["decimal"])
        if "datetime" in value:
            return datetime.fromisoformat(value["datetime"])
        return date.fromisoformat(value["date"])
    return value
