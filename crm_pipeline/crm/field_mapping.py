"""The plan's ``crm/field_mapping.py``: its names, re-exported from where they live.

* field ownership (``FieldOwner``, ``FieldOwnershipConfig``, ``DEFAULT_FIELD_OWNERSHIP``) is the
  sync core's, in ``crm_pipeline.sync.ownership``: no CRM's;
* which Notion property each field maps to (the maps, ``NotionProperty``, the schema, binding by
  id) is in ``crm_pipeline.crm.notion.properties``;
* the values both ways (``to_notion_properties``, ``from_notion_properties``, the sync key) are the
  Notion codecs, in ``crm_pipeline.crm.notion.codecs``.

Like ``crm/sync.py`` this is the one kind of module under ``crm/`` that imports ``sync/``: nothing
in the package imports it, so the connectors never depend on the sync core.
"""

from crm_pipeline.crm.errors import FieldMappingError, PropertySchemaError
from crm_pipeline.crm.notion.codecs import (
    from_notion_properties,
    read_sync_key,
    sync_key_property,
    to_notion_properties,
)
from crm_pipeline.crm.notion.properties import (
    CLOSED_SELECT_FIELDS,
    NOTION_PROPERTY_MAP,
    SYNC_KEY,
    SYNC_KEY_PROPERTY,
    SYNCED_PROPERTY_MAP,
    NotionProperty,
    PropertyMap,
    PropertySpec,
    PropertyType,
    ResolvedPropertyMap,
    as_property_map,
    notion_properties_schema,
    property_bindings,
    resolve_property_ids,
)
from crm_pipeline.sync.ownership import DEFAULT_FIELD_OWNERSHIP, FieldOwner, FieldOwnershipConfig

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
