"""Pure mapping between opportunity fields and Notion page properties, plus field ownership.

Nothing here does I/O or imports notion-client: adapters fetch and send, this module only turns
values into Notion property JSON and back, so every rule can be tested without a network.

Rules in one place (see docs/field-mapping.md for the reasoning):

* None clears a property. For the string types (title, rich_text, select, email) an empty string
  clears it too, and an empty value reads back as None; so does an empty multi_select (a list of
  option names, each a select name, no name twice).
* title/rich_text are split into text items of at most 2,000 UTF-16 code units (Notion measures
  with JavaScript string length) and at most 100 items; more is a FieldMappingError.
* numbers are sent as an int when integral, else as a float, and only when the float reads back as
  the same Decimal; they are read with ``Decimal(str(value))`` so 0.1 stays Decimal("0.1").
* a date read from a datetime keeps the calendar date on the page's wall clock: in ``time_zone``
  when Notion gives one, else in the offset written in ``start``.
* a property map may give each entry in the plan's shape (``{"notion_name", "type"}``) or as a
  ``NotionProperty``; ``as_property_map`` reads both, once, at every entry point.
* a map resolved against the data source schema (``resolve_property_ids``) is keyed by property id
  on write and found by id on read, so renaming a column in Notion does not break sync.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal, TypedDict, cast, get_args
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel

from crm_pipeline.crm.errors import FieldMappingError, PropertySchemaError
from crm_pipeline.models import DEAL_STAGES, OPPORTUNITY_FIELDS

__all__ = [
    "DEFAULT_FIELD_OWNERSHIP",
    "NOTION_PROPERTY_MAP",
    "SYNC_KEY",
    "SYNC_KEY_PROPERTY",
    "SYNCED_PROPERTY_MAP",
    "FieldMappingError",
    "FieldOwner",
    "FieldOwnershipConfig",
    "NotionProperty",
    "CLOSED_SELECT_FIELDS",
    "PropertyMap",
    "PropertySchemaError",
    "PropertySpec",
    "PropertyType",
    "ResolvedPropertyMap",
    "as_property_map",
    "from_notion_properties",
    "notion_properties_schema",
    "property_bindings",
    "read_sync_key",
    "resolve_property_ids",
    "sync_key_property",
    "to_notion_properties",
]

# --- field ownership ------------------------------------------------------------------------------


class FieldOwner(enum.StrEnum):
    """Who wins a conflict on a field: the agent, the human in the CRM, or the latest write."""

    AGENT = "agent"
    HUMAN = "human"
    SHARED = "shared"


@dataclass(frozen=True, init=False)
class FieldOwnershipConfig:
    """Which side owns each opportunity field; the sync engine resolves conflicts with it.

    Built as in the plan, ``FieldOwnershipConfig(agent_owned_fields=[...], human_owned_fields=[...],
    shared_fields=[...])``; any iterable of field names will do, and each group is kept as a
    frozenset, so the config stays immutable and hashable. Fields listed nowhere get
    ``default_owner`` (SHARED: last write wins), which covers the plain deal attributes such as
    product_line, source, contact_name and contact_email.
    """

    agent_owned_fields: frozenset[str]
    human_owned_fields: frozenset[str]
    shared_fields: frozenset[str]
    default_owner: FieldOwner
    _owners: dict[str, FieldOwner] = field(init=False, repr=False, compare=False)

    def __init__(
        self,
        agent_owned_fields: Iterable[str] = (),
        human_owned_fields: Iterable[str] = (),
        shared_fields: Iterable[str] = (),
        default_owner: FieldOwner = FieldOwner.SHARED,
    ) -> None:
        groups = {
            FieldOwner.AGENT: _field_names(agent_owned_fields, "agent_owned_fields"),
            FieldOwner.HUMAN: _field_names(human_owned_fields, "human_owned_fields"),
            FieldOwner.SHARED: _field_names(shared_fields, "shared_fields"),
        }
        # Frozen dataclasses set their fields through object; validated and inverted once.
        object.__setattr__(self, "agent_owned_fields", groups[FieldOwner.AGENT])
        object.__setattr__(self, "human_owned_fields", groups[FieldOwner.HUMAN])
        object.__setattr__(self, "shared_fields", groups[FieldOwner.SHARED])
        object.__setattr__(self, "default_owner", FieldOwner(default_owner))
        object.__setattr__(self, "_owners", _owners_by_field(groups))

    def owner_of(self, field_name: str) -> FieldOwner:
        """The owner of a writable opportunity field (``default_owner`` if it is not listed)."""
        _require_opportunity_field(field_name)
        return self._owners.get(field_name, self.default_owner)


def _field_names(names: Iterable[str], group: str) -> frozenset[str]:
    """A group of field names as a frozenset; a bare string would be read letter by letter."""
    if isinstance(names, str):
        raise TypeError(f"{group} takes a collection of field names, not the string {names!r}")
    return frozenset(names)


def _require_opportunity_field(field_name: str) -> None:
    if field_name not in OPPORTUNITY_FIELDS:
        raise ValueError(f"{field_name!r} is not an opportunity field (see OPPORTUNITY_FIELDS)")


def _owners_by_field(groups: Mapping[FieldOwner, frozenset[str]]) -> dict[str, FieldOwner]:
    """Invert the groups, refusing unknown fields and fields with two owners."""
    owners: dict[str, FieldOwner] = {}
    for owner, names in groups.items():
        for name in sorted(names):
            _require_opportunity_field(name)
            if name in owners:
                raise ValueError(f"field {name!r} has two owners: {owners[name].value} and {owner.value}")
            owners[name] = owner
    return owners


DEFAULT_FIELD_OWNERSHIP = FieldOwnershipConfig(
    agent_owned_fields=[
        "qualification_snapshot",
        "detection_confidence",
        "probability",
        "qualification_tracking",
        "stakeholder_map",
        "score_evidence",
    ],
    human_owned_fields=["custom_notes", "manual_tags", "override_stage"],
    shared_fields=["deal_stage", "estimated_value", "close_date", "name"],
)

# --- the property map -----------------------------------------------------------------------------

PropertyType = Literal["title", "rich_text", "select", "multi_select", "number", "date", "email"]
PROPERTY_TYPES: frozenset[str] = frozenset(get_args(PropertyType))


class PropertySpec(TypedDict):
    """A property map entry in the plan's shape: ``{"notion_name": "Deal Name", "type": "title"}``."""

    notion_name: str
    type: PropertyType


@dataclass(frozen=True)
class NotionProperty:
    """One Notion property a field maps to, with what the plan's ``PropertySpec`` cannot say.

    ``id`` and ``options`` are filled by ``resolve_property_ids``: ``id`` survives renames in
    Notion. ``closed`` marks a select that must not grow: Notion creates an unknown option on
    write, so a misspelt stage would become a new board column; for a closed select the resolved
    ``options`` are the only names a write may use.
    """

    name: str
    type: PropertyType
    closed: bool = False
    id: str | None = None
    options: frozenset[str] | None = None

    @property
    def key(self) -> str:
        """The key to write under: the id once bound (rename-proof), else the name."""
        return self.id if self.id is not None else self.name


PropertyMap = Mapping[str, NotionProperty | PropertySpec]
"""field name -> Notion property, each entry in the plan's shape or a ``NotionProperty``."""

ResolvedPropertyMap = dict[str, NotionProperty]
"""A normalised map (see ``as_property_map``); once from ``resolve_property_ids``, every property
has its ``id`` bound."""

NOTION_PROPERTY_MAP: dict[str, PropertySpec] = {
    "name": {"notion_name": "Deal Name", "type": "title"},
    "deal_stage": {"notion_name": "Stage", "type": "select"},
    "estimated_value": {"notion_name": "Value", "type": "number"},
    "close_date": {"notion_name": "Close Date", "type": "date"},
    "product_line": {"notion_name": "Product", "type": "select"},
    "probability": {"notion_name": "Probability", "type": "number"},
    "source": {"notion_name": "Source", "type": "select"},
    "contact_name": {"notion_name": "Contact", "type": "rich_text"},
    "contact_email": {"notion_name": "Email", "type": "email"},
}
"""The plan's deals map (field -> property name and type)."""

SYNCED_PROPERTY_MAP: dict[str, PropertySpec] = {
    **NOTION_PROPERTY_MAP,
    "custom_notes": {"notion_name": "Notes", "type": "rich_text"},
    "override_stage": {"notion_name": "Stage Override", "type": "select"},
    "manual_tags": {"notion_name": "Tags", "type": "multi_select"},
}
"""The deals map the sync uses: the plan's nine properties plus the human-owned fields, so every
ownership class can travel."""

CLOSED_SELECT_FIELDS: frozenset[str] = frozenset({"deal_stage", "override_stage"})
"""Fields whose select is closed when the map gives it in the plan's shape: a deal's stage is one
of the pipeline stages, so an unknown stage is an error rather than a new option. A
``NotionProperty`` entry says for itself (``closed=``)."""


def as_property_map(property_map: PropertyMap) -> ResolvedPropertyMap:
    """The map with every entry a ``NotionProperty``: the one place both shapes are read.

    A plan-shaped select is closed when its field is in ``CLOSED_SELECT_FIELDS``. An entry of
    neither shape, or of a type the mapping cannot handle, is a TypeError naming the field.
    """
    return {field_name: _as_notion_property(field_name, entry) for field_name, entry in property_map.items()}


def _as_notion_property(field_name: str, entry: object) -> NotionProperty:
    if isinstance(entry, NotionProperty):
        return entry
    if isinstance(entry, Mapping):
        name, kind = entry.get("notion_name"), entry.get("type")
        if isinstance(name, str) and isinstance(kind, str) and kind in PROPERTY_TYPES:
            closed = kind == "select" and field_name in CLOSED_SELECT_FIELDS
            return NotionProperty(name, cast(PropertyType, kind), closed=closed)
    raise TypeError(
        f"property map entry for {field_name!r} must be a NotionProperty or "
        f"{{'notion_name': str, 'type': one of {sorted(PROPERTY_TYPES)}}}, got {entry!r}"
    )


SYNC_KEY_PROPERTY = "Sync Key"
"""Default name of the rich_text property holding the primary record's id (idempotent creates)."""

SYNC_KEY = NotionProperty(SYNC_KEY_PROPERTY, "rich_text")
_SYNC_KEY_FIELD = "sync_key"

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
    return to_notion_properties({_SYNC_KEY_FIELD: key}, {_SYNC_KEY_FIELD: prop}, record_id=key)


def read_sync_key(
    properties: Mapping[str, Any], prop: NotionProperty = SYNC_KEY, *, record_id: str | None = None
) -> str | None:
    """The primary record id a page carries (canonical UUID string), or None if it has none.

    ``record_id`` (the page's id) is named in the error when the key is not a UUID.
    """
    text = from_notion_properties(properties, {_SYNC_KEY_FIELD: prop}, record_id=record_id).get(_SYNC_KEY_FIELD)
    if text is None or not text.strip():
        return None
    return str(_parse_sync_key(text.strip(), prop, record_id=record_id))


def _parse_sync_key(text: str, prop: NotionProperty, *, record_id: str | None) -> UUID:
    try:
        return UUID(text)
    except ValueError as exc:
        raise FieldMappingError(record_id, _SYNC_KEY_FIELD, prop.name, text, "not a UUID") from exc


# --- the schema a data source needs ------------------------------------------------------------


def notion_properties_schema(
    property_map: PropertyMap = SYNCED_PROPERTY_MAP,
    *,
    select_options: Mapping[str, Sequence[str]] | None = None,
    sync_key: NotionProperty | None = SYNC_KEY,
) -> dict[str, Any]:
    """The data source ``properties`` schema that a map (plus the sync key) writes into.

    Used to create the Notion database for a fresh workspace. The default map is the one the sync
    uses (the plan's nine properties and the human-owned ones), so a database created from the
    default schema is one the sync accepts. ``select_options`` gives the
    options of selects by field (default: the pipeline stages for ``deal_stage`` and
    ``override_stage``); other selects start empty and grow as values are written.
    """
    options = {"deal_stage": DEAL_STAGES, "override_stage": DEAL_STAGES} if select_options is None else select_options
    props = {**as_property_map(property_map), **({_SYNC_KEY_FIELD: sync_key} if sync_key is not None else {})}
    schema: dict[str, Any] = {}
    for field_name, prop in props.items():
        config: dict[str, Any] = {}
        if prop.type in ("select", "multi_select"):
            config = {"options": [{"name": name} for name in options.get(field_name, ())]}
        schema[prop.name] = {prop.type: config}
    return schema


# --- binding properties by id ---------------------------------------------------------------------


def resolve_property_ids(
    property_map: PropertyMap,
    data_source_properties: Mapping[str, Any],
    bindings: Mapping[str, str] | None = None,
) -> ResolvedPropertyMap:
    """Bind each mapped field to its property id in the data source schema.

    A field found in ``bindings`` (field -> property id, as persisted from ``property_bindings``)
    or already carrying an id is matched by id, so a renamed column still maps; other fields are
    matched by name (the first bind). The result carries current names and, for closed selects,
    the options the schema allows. A missing property or a type mismatch raises PropertySchemaError.
    """
    bindings = bindings or {}
    by_id = {schema.get("id"): schema for schema in data_source_properties.values()}
    resolved: ResolvedPropertyMap = {}
    for field_name, prop in as_property_map(property_map).items():
        bound_id = bindings.get(field_name, prop.id)
        if bound_id is None:
            schema = _schema_entry(field_name, prop, data_source_properties.get(prop.name), "name")
        else:
            schema = _schema_entry(field_name, prop, by_id.get(bound_id), f"bound id {bound_id!r}")
        resolved[field_name] = replace(prop, name=schema["name"], id=schema["id"], options=_options_of(prop, schema))
    return resolved


def _schema_entry(
    field_name: str, prop: NotionProperty, schema: Mapping[str, Any] | None, matched_by: str
) -> Mapping[str, Any]:
    """The schema entry found for a field, checked to exist and to have the mapped type."""
    if schema is None:
        raise PropertySchemaError(field_name, prop.name, f"no property with this {matched_by} in the data source")
    if schema.get("type") != prop.type:
        raise PropertySchemaError(
            field_name,
            schema["name"],
            f"property is of type {schema.get('type')!r}, expected {prop.type!r}",
        )
    return schema


def _options_of(prop: NotionProperty, schema: Mapping[str, Any]) -> frozenset[str] | None:
    if not (prop.closed and prop.type == "select"):
        return None
    return frozenset(option["name"] for option in schema["select"]["options"])


def property_bindings(resolved: ResolvedPropertyMap) -> dict[str, str]:
    """field -> property id, for an adapter to persist and pass back to ``resolve_property_ids``."""
    return {field_name: prop.id for field_name, prop in resolved.items() if prop.id is not None}
