"""The workspace's tables (users, databases, data sources, pages, blocks) with their lookups,
the bookkeeping every change shares, and saving and loading them: the layer the schema, page
and seeding operations (crm_pipeline.sandbox.schema and .state) build on."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from crm_pipeline.emulation.clock import Clock
from crm_pipeline.emulation.files import write_atomically

from .errors import body_validation, not_found, validation
from .model import Block, Database, DataSource, Page, PropertySchema, SelectOption, StatusGroup, User
from .properties import COMPUTED_TYPES, value_key
from .query import QueryEngine
from .request_parsing import lookup, optional_id, path_id

_USER_NAMESPACE = uuid.UUID("6f1c3e0a-5b7d-4c2e-9a8f-1d2b3c4d5e6f")
HUMAN_USER_ID = str(uuid.uuid5(_USER_NAMESPACE, "human"))
STATE_FORMAT = 1


def bot_user_id(token: str) -> str:
    """Derived from the token so a bot keeps its id across restarts and state files."""
    return str(uuid.uuid5(_USER_NAMESPACE, f"bot:{token}"))


class WorkspaceTables:
    """What the workspace holds, and the steps every kind of change shares."""

    def __init__(self, tokens: Sequence[str]) -> None:
        self.clock = Clock()
        self.queries = QueryEngine()
        self.bots = {
            token: User(bot_user_id(token), f"crm_pipeline sandbox integration {i + 1}", "bot")
            for i, token in enumerate(tokens)
        }
        self.human = User(HUMAN_USER_ID, "Sandbox Human", "person", "human@sandbox.example")
        self.people = {self.human.id: self.human}  # the workspace's members; seeds add more
        self.user_table = self._index_users()
        self.databases: dict[str, Database] = {}
        self.data_sources: dict[str, DataSource] = {}
        self.pages: dict[str, Page] = {}
        self.blocks: dict[str, Block] = {}
        self.revision = 0  # bumped by every change; the saver compares it
        self._seq = 0

    def clear(self) -> None:
        self.people = {self.human.id: self.human}
        self.user_table = self._index_users()
        self.databases.clear()
        self.data_sources.clear()
        self.pages.clear()
        self.blocks.clear()
        self.queries.clear()
        self.revision += 1

    def users(self) -> list[User]:
        return [*self.bots.values(), *self.people.values()]

    def _index_users(self) -> dict[str, User]:
        return {user.id: user for user in self.users()}

    def user(self, raw_id: str) -> User:
        return lookup(self.user_table, raw_id, "user_id", "user")

    def add_person(self, raw: Any, path: str) -> User:
        """A workspace member from a seed (`{name, email, id?}`): someone a people property can name."""
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not isinstance(raw.get("email"), str):
            raise body_validation(path, "should be `{name, email, id?}`", raw)
        user_id = optional_id(raw.get("id")) or str(uuid.uuid5(_USER_NAMESPACE, f"person:{raw['email']}"))
        person = User(user_id, raw["name"], "person", raw["email"])
        known = self.user_table.get(user_id)
        if known == person:  # seeded before (a seed applied again to a saved workspace)
            return known
        if known is not None:
            raise validation(f"A different user with id {user_id} already exists.")
        self.people[user_id] = person
        self.user_table[user_id] = person
        self.revision += 1
        return person

    # --- lookups ---------------------------------------------------------------------------------

    def database(self, raw_id: str, param: str = "database_id") -> Database:
        return lookup(self.databases, raw_id, param, "database")

    def data_source(self, raw_id: str, param: str = "data_source_id") -> DataSource:
        return lookup(self.data_sources, raw_id, param, "data_source")

    def page(self, raw_id: str, param: str = "page_id") -> Page:
        return lookup(self.pages, raw_id, param, "page")

    def children_of(self, raw_id: str) -> list[str]:
        """A page id is also a block id: both hold children."""
        object_id = path_id(raw_id, "block_id")
        holder = self.pages.get(object_id) or self.blocks.get(object_id)
        if holder is None:
            raise not_found("block", object_id)
        return holder.children

    def source_of(self, page: Page) -> DataSource:
        return self.data_sources[page.data_source_id]

    # --- shared change steps -----------------------------------------------------------------------

    def _changed(self, ds: DataSource, schema_editor: User | None = None) -> None:
        """Invalidate cached query results, and rendered pages too when the schema changed."""
        if schema_editor is not None:
            ds.schema_version += 1
            ds.edited_ms = self.clock.minute_ms()
            ds.edited_by = schema_editor.id
        ds.rows_version += 1
        self.revision += 1

    def _number(self, page: Page, prop: PropertySchema) -> None:
        self._store(page, prop.id, prop.next_number)
        prop.next_number += 1

    def _store(self, page: Page, prop_id: str, value: Any) -> None:
        schema = self.data_sources[page.data_source_id].properties[prop_id]
        if value is None and schema.type in COMPUTED_TYPES:
            page.values.pop(prop_id, None)
            page.keys.pop(prop_id, None)
        else:
            page.values[prop_id] = value
            page.keys[prop_id] = value_key(schema.type, value)
        page.rendered = None

    # --- persistence -----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "seq": self._seq,
            "databases": [asdict(db) for db in self.databases.values()],
            "data_sources": [
                {
                    **{k: v for k, v in asdict_shallow(ds).items() if k != "pages"},
                    "properties": [asdict(p) for p in ds.properties.values()],
                }
                for ds in self.data_sources.values()
            ],
            "pages": [
                {k: v for k, v in asdict_shallow(page).items() if k not in ("keys", "rendered")}
                for page in self.pages.values()
            ],
            "blocks": [asdict(block) for block in self.blocks.values()],
            "people": [asdict(person) for person in self.people.values()],
        }

    def restore(self, doc: dict[str, Any]) -> None:
        self.clear()
        self.people.update((raw["id"], User(**raw)) for raw in doc.get("people", []))
        self.user_table = self._index_users()
        self._seq = doc["seq"]
        for raw in doc["databases"]:
            self.databases[raw["id"]] = Database(**raw)
        for raw in doc["data_sources"]:
            props = [
                PropertySchema(
                    **{
                        **p,
                        "options": [SelectOption(**o) for o in p["options"]],
                        "groups": [StatusGroup(**g) for g in p.get("groups", [])],
                    }
                )
                for p in raw["properties"]
            ]
            ds = DataSource(**{**raw, "properties": {p.id: p for p in props}})
            self.data_sources[ds.id] = ds
        for raw in sorted(doc["pages"], key=lambda r: r["seq"]):
            page = Page(**raw)
            ds = self.data_sources[page.data_source_id]
            page.keys = {
                pid: value_key(ds.properties[pid].type, v) for pid, v in page.values.items() if pid in ds.properties
            }
            ds.pages[page.id] = page
            self.pages[page.id] = page
        for raw in doc["blocks"]:
            self.blocks[raw["id"]] = Block(**raw)

    def save(self, path: Path) -> None:
        """Write atomically: a crash leaves the previous complete file, never a torn one."""
        data = json.dumps(self.snapshot(), ensure_ascii=False).encode("utf-8")  # fails before any file is touched
        write_atomically(path, data)

    def load(self, path: Path) -> None:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("format") != STATE_FORMAT:
            raise ValueError(f"{path}: unsupported sandbox state format {doc.get('format')!r}")
        self.restore(doc)


def asdict_shallow(obj: Any) -> dict[str, Any]:
    """Fields of a dataclass without recursing (pages hold back-references via their source)."""
    return {name: getattr(obj, name) for name in obj.__dataclass_fields__}
