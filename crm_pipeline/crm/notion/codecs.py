"""Opportunity field values as Notion property values, and back: one codec per property type.

Nothing here does I/O or imports notion-client: the adapter fetches and sends, this module only
turns values into Notion property JSON and back, so every rule can be tested without a network.
Which property a field maps to is properties.py's. Rules (see docs/field-mapping.md for the
reasoning):

* None clears a property. For the string types (title, rich_text, select, email) an empty string
  clears it too, and an empty value reads back as None; so does an empty multi_select (a list of
  option names, each a select name, no name twice).
* title/rich_text are split into text items of at most 2,000 UTF-16 code units (Notion measures
  with JavaScript string length) and at most 100 items; more is a FieldMappingError.
* numbers are sent as an int when integral, else as a float, and only when the float reads back as
  the same Decimal; they are read with ``Decimal(str(value))`` so 0.1 stays Decimal("0.1").
* a date read from a datetime keeps the calendar date on the page's wall clock: in ``time_zone``
  when Notion gives one, else in the offset written in ``start``.
* a bound property (``resolve_property_ids``) is written under its id and found by id on read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from typing import Any, cast
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel

from crm_pipeline.crm.errors import FieldMappingError
from crm_pipeline.crm.notion.properties import (
    NOTION_PROPERTY_MAP,
    PROPERTY_TYPES,
    SYNC_KEY,
    SYNC_KEY_FIELD,
    NotionProperty,
    PropertyMap,
    as_property_map,
)

# --- per-type codecs ------------------------------------------------------------------------------

TEXT_ITEM_MAX_UNITS = 2_000
TEXT_MAX_ITEMS = 100
SELECT_MAX_CHARS = 100
EMAIL_MAX_CHARS = 200


class _Unmappable(Exception):
    """Raised by a codec with the reason; the caller adds record, field and property."""


def _text_chunks(text: str) -> list[str]:
    """Split into pieces of at most 2,000 UTF-16 code units, never inside a surrogate pair."""
    chunks: list[str] = []
    start = units = 0
    for index, char in enumerate(text):
        width = 2 if ord(char) > 0xFFFF else 1
        if units + width > TEXT_ITEM_MAX_UNITS:
            chunks.append(text[start:index])
            start, units = index, 0
        units += width
    chunks.append(text[start:])
    return chunks


def _require(condition: bool, reason: str) -> None:
    if not condition:
        raise _Unmappable(reason)


def _encode_text(value: Any, prop: NotionProperty) -> list[dict[str, Any]]:
    if value is None or value == "":
        return []
    _require(isinstance(value, str), f"expected text, got {type(value).__name__}")
    chunks = _text_chunks(value)
    _require(
        len(chunks) <= TEXT_MAX_ITEMS,
        f"text needs {len(chunks)} items of {TEXT_ITEM_MAX_UNITS} chars; Notion allows {TEXT_MAX_ITEMS}",
    )
    return [{"type": "text", "text": {"content": chunk}} for chunk in chunks]


def _decode_text(payload: Any, prop: NotionProperty) -> str | None:
    _require(isinstance(payload, list), "expected a list of rich text items")
    try:
        text = "".join(item["plain_text"] for item in payload)
    except (KeyError, TypeError) as exc:
        raise _Unmappable("rich text item without plain_text") from exc
    return text or None


def _encode_select(value: Any, prop: NotionProperty) -> dict[str, str] | None:
    if value is None:
        return None
    _require(isinstance(value, str), f"expected text, got {type(value).__name__}")
    name = value.strip()
    if not name:
        return None
    _require("," not in name, "select option names cannot contain a comma")
    _require(len(name) <= SELECT_MAX_CHARS, f"select option names are at most {SELECT_MAX_CHARS} chars")
    _require(
        prop.options is None or name in prop.options,
        f"not an option of this select (options: {sorted(prop.options or ())})",
    )
    return {"name": name}


def _decode_select(payload: Any, prop: NotionProperty) -> str | None:
    if payload is None:
        return None
    name = payload.get("name") if isinstance(payload, dict) else None
    if not isinstance(name, str):
        raise _Unmappable("expected {'name': str}")
    return name


def _encode_multi_select(value: Any, prop: NotionProperty) -> list[dict[str, str]]:
    if value is None:
        return []
    _require(isinstance(value, list | tuple), f"expected a list of names, got {type(value).__name__}")
    names = [_encode_select(item, prop) for item in value]
    _require(all(name is not None for name in names), "an empty name is not an option")
    _require(len({name["name"] for name in names if name}) == len(names), "the same name twice (Notion keeps one)")
    _require(len(names) <= TEXT_MAX_ITEMS, f"Notion takes at most {TEXT_MAX_ITEMS} options")
    return [name for name in names if name]


def _decode_multi_select(payload: Any, prop: NotionProperty) -> list[str] | None:
    _require(isinstance(payload, list), "expected a list of options")
    names = [_decode_select(item, prop) for item in payload]
    return [name for name in names if name is not None] or None


def _encode_number(value: Any, prop: NotionProperty) -> int | float | None:
    if value is None:
        return None
    _require(
        isinstance(value, int | float | Decimal) and not isinstance(value, bool),
        f"expected a number, got {type(value).__name__}",
    )
    number = Decimal(str(value))
    _require(number.is_finite(), "NaN and infinity cannot be stored in Notion")
    as_float = float(str(number))
    _require(
        Decimal(repr(as_float)) == number,
        "cannot be stored exactly as a Notion number (a double keeps about 15 significant digits)",
    )
    return int(number) if number == number.to_integral_value() else as_float


def _decode_number(payload: Any, prop: NotionProperty) -> Decimal | None:
    if payload is None:
        return None
    _require(
        isinstance(payload, int | float) and not isinstance(payload, bool),
        f"expected a number, got {type(payload).__name__}",
    )
    number = Decimal(str(payload))
    _require(number.is_finite(), "NaN and infinity are not numbers a deal can hold")
    return number


def _encode_date(value: Any, prop: NotionProperty) -> dict[str, Any] | None:
    if value is None:
        return None
    _require(
        isinstance(value, date) and not isinstance(value, datetime),
        f"expected a date, got {type(value).__name__}",
    )
    return {"start": value.isoformat(), "end": None, "time_zone": None}


def _decode_date(payload: Any, prop: NotionProperty) -> date | None:
    """The start's calendar date; a time is read on the page's wall clock (see module doc)."""
    if payload is None:
        return None
    _require(isinstance(payload, dict) and isinstance(payload.get("start"), str), "expected {'start': str}")
    try:
        start = datetime.fromisoformat(payload["start"])
    except ValueError as exc:
        raise _Unmappable("start is not an ISO 8601 date") from exc
    time_zone = payload.get("time_zone")
    if time_zone is None or start.tzinfo is None:
        return start.date()
    try:
        return start.astimezone(ZoneInfo(time_zone)).date()
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise _Unmappable(f"unknown time zone {time_zone!r}") from exc


def _encode_email(value: Any, prop: NotionProperty) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _Unmappable(f"expected text, got {type(value).__name__}")
    _require(len(value) <= EMAIL_MAX_CHARS, f"Notion emails are at most {EMAIL_MAX_CHARS} chars")
    return value


def _decode_email(payload: Any, prop: NotionProperty) -> str | None:
    if payload is not None and not isinstance(payload, str):
        raise _Unmappable("expected a string or null")
    return payload or None


Encoder = Callable[[Any, NotionProperty], Any]
Decoder = Callable[[Any, NotionProperty], Any]

_CODECS: dict[str, tuple[Encoder, Decoder]] = {
    "title": (_encode_text, _decode_text),
    "rich_text": (_encode_text, _decode_text),
    "select": (_encode_select, _decode_select),
    "multi_select": (_encode_multi_select, _decode_multi_select),
    "number": (_encode_number, _decode_number),
    "date": (_encode_date, _decode_date),
    "email": (_encode_email, _decode_email),
}

# --- public mapping functions ---------------------------------------------------------------------


def to_notion_properties(
    data: Mapping[str, Any] | BaseModel,
    property_map: PropertyMap = NOTION_PROPERTY_MAP,
    *,
    record_id: str | None = None,
) -> dict[str, Any]:
    """The ``properties`` body for a page create/update from field values.

    Only fields both in ``data`` and in the map are written, so pass ``update.changes()`` for a
    partial update; a model contributes all its fields. Keys are property ids once the map is
    resolved, names otherwise.
    """
    values = dict(data) if isinstance(data, BaseModel) else data
    body: dict[str, Any] = {}
    for field_name, prop in as_property_map(property_map).items():
        if field_name in values:
            value = values[field_name]
            encode, _ = _CODECS[prop.type]
            with _mapping_errors(record_id, field_name, prop, value):
                body[prop.key] = {prop.type: encode(value, prop)}
    return body


def from_notion_properties(
    properties: Mapping[str, Any],
    property_map: PropertyMap = NOTION_PROPERTY_MAP,
    *,
    record_id: str | None = None,
) -> dict[str, Any]:
    """Field values from a page's ``properties`` as Notion returns them.

    Unmapped properties are ignored and mapped ones missing from the page are left out of the
    result. A bound property is found by id, wherever its current name.
    """
    by_id = {value.get("id"): value for value in properties.values() if isinstance(value, dict)}
    fields: dict[str, Any] = {}
    for field_name, prop in as_property_map(property_map).items():
        value = by_id.get(prop.id) if prop.id is not None else properties.get(prop.name)
        if value is None:
            continue
        _, decode = _CODECS[prop.type]
        with _mapping_errors(record_id, field_name, prop, value):
            found = _value_type(value)
            _require(
                found == prop.type and prop.type in value,
                f"expected a {prop.type!r} property, found {found!r}",
            )
            payload = value[prop.type] if "type" in value else _as_returned(value[prop.type])
            fields[field_name] = decode(payload, prop)
    return fields


def _as_returned(payload: Any) -> Any:
    """A value as written, in the shape Notion returns: rich text written as ``{"text": {"content":
    ...}}`` gains the ``plain_text`` Notion adds. Anything else already has that shape."""
    if not isinstance(payload, list):
        return payload
    return [
        {**item, "plain_text": item["text"].get("content")}
        if isinstance(item, dict) and "plain_text" not in item and isinstance(item.get("text"), dict)
        else item
        for item in payload
    ]


def _value_type(value: Any) -> str | None:
    """The type a property value is of: its ``"type"`` as Notion returns it, else the one type key
    it carries, as written (``to_notion_properties`` writes ``{"title": [...]}`` with no
    ``"type"``). A value whose ``"type"`` says otherwise than its content is taken at its word, so
    the caller refuses it."""
    if not isinstance(value, dict):
        return type(value).__name__
    if "type" in value:
        return cast(str | None, value["type"])
    carried = [key for key in value if key in PROPERTY_TYPES]
    return carried[0] if len(carried) == 1 else None


@contextmanager
def _mapping_errors(record_id: str | None, field_name: str, prop: NotionProperty, value: Any) -> Iterator[None]:
    """Turn a codec's _Unmappable into a FieldMappingError naming record, field and property."""
    try:
        yield
    except _Unmappable as exc:
        raise FieldMappingError(record_id, field_name, prop.name, value, str(exc)) from exc


# --- sync key -------------------------------------------------------------------------------------


def sync_key_property(record_id: UUID | str, prop: NotionProperty = SYNC_KEY) -> dict[str, Any]:
    """The property that stamps a page with its primary record's id, so a create whose response
    was lost can be found again instead of duplicated."""
    key = str(_parse_sync_key(str(record_id), prop, record_id=str(record_id)))
    return to_notion_properties({SYNC_KEY_FIELD: key}, {SYNC_KEY_FIELD: prop}, record_id=key)


def read_sync_key(
    properties: Mapping[str, Any], prop: NotionProperty = SYNC_KEY, *, record_id: str | None = None
) -> str | None:
    """The primary record id a page carries (canonical UUID string), or None if it has none.

    ``record_id`` (the page's id) is named in the error when the key is not a UUID.
    """
    text = from_notion_properties(properties, {SYNC_KEY_FIELD: prop}, record_id=record_id).get(SYNC_KEY_FIELD)
    if text is None or not text.strip():
        return None
    return str(_parse_sync_key(text.strip(), prop, record_id=record_id))


def _parse_sync_key(text: str, prop: NotionProperty, *, record_id: str | None) -> UUID:
    try:
        return UUID(text)
    except ValueError as exc:
        raise FieldMappingError(record_id, SYNC_KEY_FIELD, prop.name, text, "not a UUID") from exc
