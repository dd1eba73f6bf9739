"""The sandbox's stored objects.

Values are kept in one normalized, JSON-ready form per property type (see `properties`), so
persistence is a plain dump and query evaluation never has to re-parse request shapes.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

_HEX32 = re.compile(r"^[0-9a-fA-F]{32}$")
WORKSPACE_NAME = "Sandbox"
WORKSPACE_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "https://crm-pipeline.invalid/sandbox-workspace"))  # stable
MAX_FILE_UPLOAD_BYTES = 5 * 1024 * 1024  # a free workspace's limit, as Notion reports it


def new_id() -> str:
    return str(uuid.uuid4())


def normalize_id(raw: str) -> str | None:
    """Notion accepts ids with or without dashes; responses always carry the dashed form."""
    compact = raw.replace("-", "")
    if not _HEX32.match(compact):
        return None
    return str(uuid.UUID(compact))


def user_ref(user_id: str) -> dict[str, str]:
    return {"object": "user", "id": user_id}


@dataclass
class User:
    id: str
    name: str
    kind: str  # "bot" or "person"
    email: str | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "object": "user",
            "id": self.id,
            "name": self.name,
            "avatar_url": None,
            "type": self.kind,
        }
        if self.kind == "bot":
            body["bot"] = {
                "owner": {"type": "workspace", "workspace": True},
                "workspace_name": WORKSPACE_NAME,
                "workspace_id": WORKSPACE_ID,
                "workspace_limits": {"max_file_upload_size_in_bytes": MAX_FILE_UPLOAD_BYTES},
            }
        else:
            body["person"] = {"email": self.email}
        return body


@dataclass
class SelectOption:
    id: str
    name: str
    color: str
    description: str | None = None


@dataclass
class StatusGroup:
    id: str
    name: str
    color: str
    option_ids: list[str]


@dataclass
class PropertySchema:
    id: str
    name: str
    type: str
    description: str | None = None
    options: list[SelectOption] = field(default_factory=list)  # select, multi_select, status
    number_format: str = "number"
    groups: list[StatusGroup] = field(default_factory=list)  # status
    # The type's own configuration as Notion renders it: relation (data_source_id, database_id,
    # type, dual_property), rollup (names, ids, function), formula (expression), unique_id (prefix).
    settings: dict[str, Any] = field(default_factory=dict)
    next_number: int = 1  # unique_id: the number the next page gets

    def option_by_id(self, option_id: str) -> SelectOption | None:
        return next((o for o in self.options if o.id == option_id), None)

    def option_by_name(self, name: str) -> SelectOption | None:
        return next((o for o in self.options if o.name == name), None)


@dataclass
class DataSource:
    id: str
    database_id: str
    title: str
    properties: dict[str, PropertySchema]  # by property id, in schema order
    created_ms: int
    edited_ms: int
    created_by: str
    edited_by: str
    in_trash: bool = False
    pages: dict[str, Page] = field(default_factory=dict)  # creation order
    schema_version: int = 0  # bumped on schema changes; invalidates rendered pages
    rows_version: int = 0  # bumped on any row or schema change; invalidates cached query results

    def resolve(self, key: str) -> PropertySchema | None:
        return resolve_property(self.properties, key)

    def title_property(self) -> PropertySchema:
        return next(p for p in self.properties.values() if p.type == "title")


def resolve_property(properties: dict[str, PropertySchema], key: str) -> PropertySchema | None:
    """A property by name or by id (ids are stored URL-encoded, as Notion returns them)."""
    for prop in properties.values():
        if prop.name == key:
            return prop
    return properties.get(key) or properties.get(quote(key, safe=""))


@dataclass
class Database:
    id: str
    title: str
    parent: dict[str, Any]
    data_source_ids: list[str]
    created_ms: int
    edited_ms: int
    in_trash: bool = False
    is_inline: bool = False
    is_locked: bool = False


@dataclass
class Page:
    id: str
    data_source_id: str
    database_id: str
    seq: int  # creation order; the tie-breaker that keeps cursors stable
    created_ms: int
    edited_ms: int
    created_by: str
    edited_by: str
    values: dict[str, Any]  # property id -> normalized value
    keys: dict[str, Any] = field(default_factory=dict)  # property id -> comparable key
    in_trash: bool = False
    is_locked: bool = False
    icon: dict[str, Any] | None = None
    cover: dict[str, Any] | None = None
    children: list[str] = field(default_factory=list)
    rendered: tuple[int, str] | None = None  # (schema version at render, JSON text)


@dataclass
class Block:
    id: str
    parent: dict[str, Any]
    type: str
    content: dict[str, Any]
    created_ms: int
    created_by: str
    children: list[str] = field(default_factory=list)
