"""Which Notion property each opportunity field maps to: the maps, the schema a data source
needs, and binding the map to property ids.

Pure, like the codecs (codecs.py) that read and write the values. See docs/field-mapping.md.

* a property map may give each entry in the plan's shape (``{"notion_name", "type"}``) or as a
  ``NotionProperty``; ``as_property_map`` reads both, once, at every entry point.
* a map resolved against the data source schema (``resolve_property_ids``) is keyed by property id
  on write and found by id on read, so renaming a column in Notion does not break sync.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, TypedDict, cast, get_args

from crm_pipeline.crm.errors import PropertySchemaError
from crm_pipeline.models import DEAL_STAGES

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

SYNC_KEY_FIELD = "sync_key"
"""The name the sync key is mapped under when read or written like a field (it is no opportunity field)."""


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
    props = {**as_property_map(property_map), **({SYNC_KEY_FIELD: sync_key} if sync_key is not None else {})}
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
