"""The in-memory workspace: users, databases, data sources, pages and blocks, plus persistence.

Every mutating operation validates the whole request before touching anything, so a rejected
write changes nothing. Timestamps come from the sandbox `Clock`, floored to the minute.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

from crm_pipeline.emulation.clock import Clock
from crm_pipeline.emulation.files import write_atomically

from .errors import MISSING, body_validation, not_found, too_long, validation
from .model import (
    Block,
    Database,
    DataSource,
    Page,
    PropertySchema,
    SelectOption,
    StatusGroup,
    User,
    new_id,
    normalize_id,
    resolve_property,
)
from .properties import (
    ANNOTATION_COLORS,
    COMPUTED_TYPES,
    MAX_ARRAY,
    ROLLUP_FUNCTIONS,
    WriteContext,
    apply_config,
    commit_options,
    config_type,
    is_color,
    new_property_id,
    parse_computed,
    parse_rich_text,
    parse_value,
    plain_text,
    shorthand_write,
    value_key,
)
from .query import QueryEngine

_USER_NAMESPACE = uuid.UUID("6f1c3e0a-5b7d-4c2e-9a8f-1d2b3c4d5e6f")
HUMAN_USER_ID = str(uuid.uuid5(_USER_NAMESPACE, "human"))
BLOCK_TYPES = ("paragraph", "heading_1", "heading_2", "heading_3", "bulleted_list_item")
ARCHIVED_PAGE_MESSAGE = "Can't update a page that is archived. You must unarchive the page before updating."
STATE_FORMAT = 1
T = TypeVar("T")


def bot_user_id(token: str) -> str:
    """Derived from the token so a bot keeps its id across restarts and state files."""
    return str(uuid.uuid5(_USER_NAMESPACE, f"bot:{token}"))


class Workspace:
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
        return _lookup(self.user_table, raw_id, "user_id", "user")

    def add_person(self, raw: Any, path: str) -> User:
        """A workspace member from a seed (`{name, email, id?}`): someone a people property can name."""
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not isinstance(raw.get("email"), str):
            raise body_validation(path, "should be `{name, email, id?}`", raw)
        user_id = _optional_id(raw.get("id")) or str(uuid.uuid5(_USER_NAMESPACE, f"person:{raw['email']}"))
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
        return _lookup(self.databases, raw_id, param, "database")

    def data_source(self, raw_id: str, param: str = "data_source_id") -> DataSource:
        return _lookup(self.data_sources, raw_id, param, "data_source")

    def page(self, raw_id: str, param: str = "page_id") -> Page:
        return _lookup(self.pages, raw_id, param, "page")

    def children_of(self, raw_id: str) -> list[str]:
        """A page id is also a block id: both hold children."""
        object_id = _path_id(raw_id, "block_id")
        holder = self.pages.get(object_id) or self.blocks.get(object_id)
        if holder is None:
            raise not_found("block", object_id)
        return holder.children

    def source_of(self, page: Page) -> DataSource:
        return self.data_sources[page.data_source_id]

    # --- databases and data sources --------------------------------------------------------------

    def create_database(self, actor: User, body: dict[str, Any]) -> Database:
        parent = _database_parent(body.get("parent", MISSING))
        title = plain_text(parse_rich_text(body.get("title", []), "body.title"))
        initial = body.get("initial_data_source", {})
        if not isinstance(initial, dict):
            raise body_validation("body.initial_data_source", "should be an object", initial)
        is_inline = body.get("is_inline", False)
        if not isinstance(is_inline, bool):
            raise body_validation("body.is_inline", "should be a boolean", is_inline)
        db = self._add_database(title, parent, is_inline=is_inline)
        try:
            self._add_data_source(
                actor, db, title, initial.get("properties", {}), "body.initial_data_source.properties"
            )
        except Exception:
            self._drop_database(db.id)
            raise
        return db

    def create_data_source(self, actor: User, body: dict[str, Any]) -> DataSource:
        """Another data source in an existing database (`POST /v1/data_sources`)."""
        parent = body.get("parent", MISSING)
        if not isinstance(parent, dict) or not isinstance(parent.get("database_id"), str):
            raise body_validation("body.parent", "should be `{database_id}`", parent)
        db = self.database(parent["database_id"], "body.parent.database_id")
        title = plain_text(parse_rich_text(body.get("title", []), "body.title"))
        return self._add_data_source(actor, db, title, body.get("properties", {}), "body.properties")

    def _add_database(
        self, title: str, parent: dict[str, Any], database_id: str | None = None, is_inline: bool = False
    ) -> Database:
        if database_id in self.databases:
            raise validation(f"A database with id {database_id} already exists.")
        now = self.clock.now_ms()  # databases keep their times to the millisecond
        db = Database(database_id or new_id(), title, parent, [], now, now, is_inline=is_inline)
        self.databases[db.id] = db
        self.revision += 1
        return db

    def _add_data_source(
        self,
        actor: User,
        db: Database,
        title: str,
        raw_properties: Any,
        path: str,
        data_source_id: str | None = None,
        seeded: bool = False,
    ) -> DataSource:
        """Relations and rollups name data sources and properties, so they are added once the
        others exist (which lets a relation point at its own data source)."""
        if data_source_id in self.data_sources:
            raise validation(f"A data source with id {data_source_id} already exists.")
        if not isinstance(raw_properties, dict):
            raise body_validation(path, "should be an object", raw_properties)
        linked = {
            name: config
            for name, config in raw_properties.items()
            if isinstance(config, dict) and config_type(config, f"{path}.{name}") in ("relation", "rollup")
        }
        properties: dict[str, PropertySchema] = {}
        for name, config in raw_properties.items():
            if name not in linked:
                prop = _new_property(name, config, f"{path}.{name}", properties, seeded)
                properties[prop.id] = prop
        titles = [p for p in properties.values() if p.type == "title"]
        if len(titles) > 1:
            raise validation(
                f"body failed validation: {path} has {len(titles)} title properties; exactly one is allowed."
            )
        if not titles:
            properties = {"title": PropertySchema("title", "Name", "title"), **properties}
        now = self.clock.minute_ms()
        ds = DataSource(data_source_id or new_id(), db.id, title, properties, now, now, actor.id, actor.id)
        db.data_source_ids.append(ds.id)
        self.data_sources[ds.id] = ds
        self.revision += 1
        if linked:
            try:
                self.update_data_source(actor, ds, {"properties": linked}, path=path)
            except Exception:
                db.data_source_ids.remove(ds.id)
                del self.data_sources[ds.id]
                raise
        return ds

    def update_data_source(
        self, actor: User, ds: DataSource, body: dict[str, Any], path: str = "body.properties"
    ) -> DataSource:
        """Add, rename, re-type or delete properties (`null`); ids survive renames. A two-way
        relation's other side follows: it is created, renamed and deleted with this one."""
        title = plain_text(parse_rich_text(body["title"], "body.title")) if "title" in body else ds.title
        raw = body.get("properties", {})
        if not isinstance(raw, dict):
            raise body_validation(path, "should be an object", raw)
        properties = copy.deepcopy(ds.properties)
        retyped: set[str] = set()
        linked: dict[str, dict[str, Any]] = {}  # property id -> its relation or rollup config
        for key, config in raw.items():
            at = f"{path}.{key}"
            prop = resolve_property(properties, key)
            if config is None:
                if prop is None:
                    raise validation(f"{key} is not a property that exists.")
                if prop.type == "title":
                    raise validation("The title property of a data source can't be deleted.")
                del properties[prop.id]
                continue
            if prop is None:
                if not isinstance(config, dict):
                    raise body_validation(at, "should be an object or `null`", config)
                prop = _new_property(config.get("name", key), config, at, properties)
                properties[prop.id] = prop
                retyped.add(prop.id)
            elif _change_property(prop, config, at, properties):
                retyped.add(prop.id)
            if prop.type in ("relation", "rollup") and (prop.id in retyped or prop.type in config):
                linked[prop.id] = config
        partners = [
            self._link(ds, properties, properties[prop_id], config, f"{path}.{properties[prop_id].name}")
            for prop_id, config in linked.items()
            if properties[prop_id].type == "relation"
        ]
        for prop_id, config in linked.items():  # after the relations: a rollup may use a new one
            if properties[prop_id].type == "rollup":
                self._link_rollup(ds, properties, properties[prop_id], config, f"{path}.{properties[prop_id].name}")
        self._commit_schema(actor, ds, title, properties, retyped, [p for p in partners if p is not None])
        return ds

    def _link(
        self, ds: DataSource, properties: dict[str, PropertySchema], prop: PropertySchema, config: Any, path: str
    ) -> tuple[DataSource, PropertySchema] | None:
        """Resolve a relation config; for a new two-way relation, the property its data source gets."""
        raw = config.get("relation", MISSING)
        at = f"{path}.relation"
        if not isinstance(raw, dict) or not isinstance(raw.get("data_source_id"), str):
            raise body_validation(at, "should be `{data_source_id, type?, single_property | dual_property}`", raw)
        target_id = normalize_id(raw["data_source_id"])
        target = ds if target_id == ds.id else self.data_source(raw["data_source_id"], f"{at}.data_source_id")
        kind = raw.get("type") or ("dual_property" if "dual_property" in raw else "single_property")
        if kind not in ("single_property", "dual_property") or not isinstance(raw.get(kind, {}), dict):
            raise body_validation(f"{at}.type", "should be `single_property` or `dual_property`", kind)
        old = prop.settings
        prop.settings = {"data_source_id": target.id, "database_id": target.database_id, "type": kind}
        if kind == "single_property":
            prop.settings["single_property"] = {}
            return None
        if old.get("type") == "dual_property" and old["data_source_id"] == target.id:
            prop.settings["dual_property"] = old["dual_property"]  # the other side already exists
            return None
        names = properties if target is ds else target.properties
        name = raw["dual_property"].get("synced_property_name") or f"Related to {ds.title} ({prop.name})"
        if not isinstance(name, str) or resolve_property(names, name) is not None:
            raise validation(f"{at}.dual_property.synced_property_name: a property named {name} already exists.")
        taken = set(names) | set(properties)
        back = PropertySchema(new_property_id(taken), name, "relation")
        back.settings = {
            "data_source_id": ds.id,
            "database_id": ds.database_id,
            "type": "dual_property",
            "dual_property": {"synced_property_id": prop.id, "synced_property_name": prop.name},
        }
        prop.settings["dual_property"] = {"synced_property_id": back.id, "synced_property_name": back.name}
        if target is ds:
            properties[back.id] = back
            return None
        return target, back

    def _link_rollup(
        self, ds: DataSource, properties: dict[str, PropertySchema], prop: PropertySchema, config: Any, path: str
    ) -> None:
        raw = config.get("rollup", MISSING)
        at = f"{path}.rollup"
        if not isinstance(raw, dict):
            raise body_validation(at, "should be `{relation_property_name, rollup_property_name, function}`", raw)
        relation = resolve_property(properties, str(raw.get("relation_property_id", raw.get("relation_property_name"))))
        if relation is None or relation.type != "relation":
            raise validation(f"body failed validation: {at} should name a relation property of this data source.")
        related_id = relation.settings["data_source_id"]
        related = properties if related_id == ds.id else self.data_sources[related_id].properties
        target = resolve_property(related, str(raw.get("rollup_property_id", raw.get("rollup_property_name"))))
        if target is None:
            raise validation(f"body failed validation: {at} should name a property of the related data source.")
        function = raw.get("function", MISSING)
        if function not in ROLLUP_FUNCTIONS:
            raise body_validation(f"{at}.function", "should be a rollup function", function)
        prop.settings = {
            "relation_property_name": relation.name,
            "relation_property_id": relation.id,
            "rollup_property_name": target.name,
            "rollup_property_id": target.id,
            "function": function,
        }

    def _commit_schema(
        self,
        actor: User,
        ds: DataSource,
        title: str,
        properties: dict[str, PropertySchema],
        retyped: set[str],
        partners: list[tuple[DataSource, PropertySchema]],
    ) -> None:
        old = ds.properties
        gone = [prop for prop_id, prop in old.items() if prop_id not in properties or prop_id in retyped]
        renamed, ds.title = title != ds.title, title
        ds.properties = properties
        for page in ds.pages.values():
            for prop_id in [p for p in page.values if p not in properties or p in retyped]:
                del page.values[prop_id]
                page.keys.pop(prop_id, None)
        for prop in properties.values():
            if prop.type == "unique_id" and prop.id in retyped:
                for page in ds.pages.values():  # Notion numbers the existing pages in creation order
                    self._number(page, prop)
        for target, back in partners:
            target.properties[back.id] = back
            self._changed(target, schema_editor=actor)
        self._follow_partners(actor, ds, gone)
        db = self.databases[ds.database_id]
        if renamed and len(db.data_source_ids) == 1:  # a lone data source's title is its database's
            db.title = title
        self._changed(ds, schema_editor=actor)

    def _follow_partners(self, actor: User, ds: DataSource, gone: list[PropertySchema]) -> None:
        """Keep each two-way relation's other side in step: renamed with it, deleted with it."""
        for prop in [*gone, *ds.properties.values()]:
            if prop.type != "relation" or prop.settings.get("type") != "dual_property":
                continue
            target = self.data_sources.get(prop.settings["data_source_id"])
            if target is None:
                continue
            back = target.properties.get(prop.settings["dual_property"]["synced_property_id"])
            if back is None or back.settings.get("dual_property", {}).get("synced_property_id") != prop.id:
                continue
            if prop in gone and ds.properties.get(prop.id) is not prop:
                del target.properties[back.id]
                for page in target.pages.values():
                    page.values.pop(back.id, None)
                    page.keys.pop(back.id, None)
            elif back.settings["dual_property"]["synced_property_name"] != prop.name:
                back.settings["dual_property"]["synced_property_name"] = prop.name
            else:
                continue
            if target is not ds:
                self._changed(target, schema_editor=actor)

    def _changed(self, ds: DataSource, schema_editor: User | None = None) -> None:
        """Invalidate cached query results, and rendered pages too when the schema changed."""
        if schema_editor is not None:
            ds.schema_version += 1
            ds.edited_ms = self.clock.minute_ms()
            ds.edited_by = schema_editor.id
        ds.rows_version += 1
        self.revision += 1

    # --- pages -----------------------------------------------------------------------------------

    def create_page(self, actor: User, body: dict[str, Any]) -> Page:
        _reject_unsupported(body, ("content", "markdown", "template", "position"))
        ds = self._page_parent(body.get("parent", MISSING))
        ctx = self._write_context()
        writes = _parse_properties(ds, body.get("properties", {}), ctx)
        icon, cover = _parse_icon(body.get("icon"), "body.icon"), _parse_cover(body.get("cover"), "body.cover")
        blocks = _parse_blocks(body["children"], "body.children") if body.get("children") is not None else []
        now = self.clock.minute_ms()
        self._seq += 1
        page = Page(
            new_id(), ds.id, ds.database_id, self._seq, now, now, actor.id, actor.id, {}, icon=icon, cover=cover
        )
        for prop in ds.properties.values():
            if prop.type == "unique_id":
                self._number(page, prop)
        ds.pages[page.id] = page
        self.pages[page.id] = page
        self._write_values(ds, page, writes, ctx)
        self._add_blocks(actor, page.children, {"type": "page_id", "page_id": page.id}, blocks, None)
        return page

    def update_page(self, actor: User, page: Page, body: dict[str, Any]) -> Page:
        _reject_unsupported(body, ("template",))
        ds = self.source_of(page)
        trash = _trash_flag(body)
        ctx = self._write_context()
        writes = _parse_properties(ds, body.get("properties", {}), ctx)
        edits_content = bool(writes) or any(body.get(k) is not None for k in ("icon", "cover"))
        if page.in_trash and trash is not False and edits_content:
            raise validation(ARCHIVED_PAGE_MESSAGE)
        icon = _parse_icon(body.get("icon"), "body.icon") if "icon" in body else page.icon
        cover = _parse_cover(body.get("cover"), "body.cover") if "cover" in body else page.cover
        is_locked = body.get("is_locked", page.is_locked)
        if not isinstance(is_locked, bool):
            raise body_validation("body.is_locked", "should be a boolean", is_locked)
        if body.get("erase_content") is True:
            page.children.clear()
        page.icon, page.cover, page.is_locked = icon, cover, is_locked
        if trash is not None:
            page.in_trash = trash
        page.edited_ms = self.clock.minute_ms()
        page.edited_by = actor.id
        self._write_values(ds, page, writes, ctx)
        return page

    def set_computed(self, page: Page, body: dict[str, Any]) -> Page:
        """Set formula and rollup results (`{"properties": {name: result | null}}`), which the
        sandbox does not evaluate. Like Notion recomputing them, this edits nobody's timestamp."""
        ds = self.source_of(page)
        raw = body.get("properties", MISSING)
        if not isinstance(raw, dict):
            raise body_validation("body.properties", "should be an object", raw)
        results = {}
        for key, value in raw.items():
            prop = _known(ds, key)
            if prop.type not in COMPUTED_TYPES:
                raise validation(f"{prop.name} is a {prop.type} property; only formula and rollup results can be set.")
            results[prop.id] = parse_computed(prop, value, f"body.properties.{key}")
        for prop_id, result in results.items():
            self._store(page, prop_id, result)
        self._changed(ds)
        return page

    def _write_context(self) -> WriteContext:
        def related(data_source_id: str, page_id: str) -> bool:
            page = self.pages.get(page_id)
            return page is not None and page.data_source_id == data_source_id

        return WriteContext(self.user_table, related)

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

    def _write_values(self, ds: DataSource, page: Page, writes: dict[str, Any], ctx: WriteContext) -> None:
        commit_options(ctx.new_options)
        for prop_id, value in writes.items():
            prop = ds.properties[prop_id]
            if prop.settings.get("type") == "dual_property":
                self._sync_back(page, prop, page.values.get(prop_id, []), value)
            self._store(page, prop_id, value)
        page.rendered = None  # its times, editor and trash state may have changed too
        self._changed(ds)

    def _sync_back(self, page: Page, prop: PropertySchema, old: list[str], new: list[str]) -> None:
        """A two-way relation: each page added to (or removed from) this side gains (or loses)
        this page on the other. Only the relation changes there; its edit time stays."""
        target = self.data_sources[prop.settings["data_source_id"]]
        back_id = prop.settings["dual_property"]["synced_property_id"]
        for other_id in set(old) ^ set(new):
            other = self.pages[other_id]
            linked = [i for i in other.values.get(back_id, []) if i != page.id]
            self._store(other, back_id, linked + [page.id] if other_id in new else linked)
        self._changed(target)

    def _page_parent(self, parent: Any) -> DataSource:
        if not isinstance(parent, dict):
            raise body_validation("body.parent", "should be an object", parent)
        if "data_source_id" in parent:
            return self.data_source(str(parent["data_source_id"]), "body.parent.data_source_id")
        if "database_id" in parent:
            db = self.database(str(parent["database_id"]), "body.parent.database_id")
            if len(db.data_source_ids) != 1:
                raise validation("Database has multiple data sources; use a data_source_id parent.")
            return self.data_sources[db.data_source_ids[0]]
        raise validation(
            "body failed validation: body.parent must name a data_source_id or database_id (the sandbox has no standalone pages)."
        )

    # --- blocks ----------------------------------------------------------------------------------

    def append_children(self, actor: User, raw_id: str, body: dict[str, Any]) -> list[Block]:
        _reject_unsupported(body, ("position",))
        children = self.children_of(raw_id)
        parsed = _parse_blocks(body.get("children", MISSING), "body.children")
        after = body.get("after")
        if after is not None and (not isinstance(after, str) or normalize_id(after) not in children):
            raise body_validation("body.after", "should be the id of a child block", after)
        holder_id = _path_id(raw_id, "block_id")
        parent = (
            {"type": "page_id", "page_id": holder_id}
            if holder_id in self.pages
            else {"type": "block_id", "block_id": holder_id}
        )
        position = children.index(normalize_id(after)) + 1 if after is not None else None  # type: ignore[arg-type]
        return self._add_blocks(actor, children, parent, parsed, position)

    def _add_blocks(
        self,
        actor: User,
        children: list[str],
        parent: dict[str, Any],
        parsed: list[tuple[str, dict[str, Any]]],
        position: int | None,
    ) -> list[Block]:
        now = self.clock.minute_ms()
        created = [Block(new_id(), parent, kind, content, now, actor.id) for kind, content in parsed]
        for block in created:
            self.blocks[block.id] = block
        at = len(children) if position is None else position
        children[at:at] = [block.id for block in created]
        self.revision += 1
        return created

    # --- seeding and persistence -----------------------------------------------------------------

    def seed(self, doc: Any) -> list[dict[str, Any]]:
        """Create users, databases, data sources and pages from a seed document (format in
        docs/sandbox.md). All or nothing: a bad row leaves no part of the seed behind."""
        if not isinstance(doc, dict) or not isinstance(doc.get("databases"), list):
            raise validation("A seed document needs a `databases` array.")
        known_databases, known_people = set(self.databases), dict(self.people)
        try:
            for i, person in enumerate(doc.get("users", [])):
                self.add_person(person, f"users[{i}]")
            return [self._seed_database(spec, f"databases[{i}]") for i, spec in enumerate(doc["databases"])]
        except Exception:
            for database_id in [i for i in self.databases if i not in known_databases][::-1]:
                self._drop_database(database_id)
            self.people = known_people
            self.user_table = self._index_users()
            raise

    def _seed_database(self, spec: Any, path: str) -> dict[str, Any]:
        """One database: either a single data source (`properties`, `pages`, `data_source_id`
        beside the title) or several (`data_sources: [{title, id, properties, pages}]`)."""
        if not isinstance(spec, dict):
            raise body_validation(path, "should be an object", spec)
        title = str(spec.get("title", "Untitled"))
        sources = spec.get("data_sources", [{**spec, "id": spec.get("data_source_id")}])
        if not isinstance(sources, list) or not sources:
            raise body_validation(f"{path}.data_sources", "should be a non-empty array", sources)
        db = self._add_database(title, {"type": "workspace", "workspace": True}, _optional_id(spec.get("id")))
        summary = []
        for i, source in enumerate(sources):
            at = f"{path}.data_sources[{i}]"
            if not isinstance(source, dict):
                raise body_validation(at, "should be an object", source)
            ds = self._add_data_source(
                self.human,
                db,
                str(source.get("title", title)),
                source.get("properties", {}),
                f"{at}.properties",
                _optional_id(source.get("id")),
                seeded=True,
            )
            for row in source.get("pages", []):
                if not isinstance(row, dict):
                    raise body_validation(f"{at}.pages", "should hold objects", row)
                self._seed_page(ds, row)
            summary.append({"id": ds.id, "title": ds.title, "pages": len(ds.pages)})
        first = summary[0]
        return {
            "database_id": db.id,
            "data_source_id": first["id"],
            "title": db.title,
            "pages": first["pages"],
            "data_sources": summary,
        }

    def _seed_page(self, ds: DataSource, row: dict[str, Any]) -> None:
        """Plain values are expanded (people by name or email, relations by the related page's
        title); formula and rollup results are set as given, plain or typed."""
        writes, computed = {}, {}
        for name, value in row.items():
            prop = _known(ds, name)
            if prop.type in COMPUTED_TYPES:
                computed[name] = _typed_result(value)
            elif prop.type == "people" and isinstance(value, list):
                writes[name] = {"people": [self._person_named(v) if isinstance(v, str) else v for v in value]}
            elif prop.type == "relation" and isinstance(value, list):
                target = self.data_sources[prop.settings["data_source_id"]]
                writes[name] = {"relation": [_page_titled(target, v) if isinstance(v, str) else v for v in value]}
            else:
                writes[name] = shorthand_write(prop, value)
        page = self.create_page(self.human, {"parent": {"data_source_id": ds.id}, "properties": writes})
        if computed:
            self.set_computed(page, {"properties": computed})

    def _person_named(self, name: str) -> dict[str, str]:
        user = next((u for u in self.user_table.values() if name in (u.name, u.email)), None)
        if user is None:
            raise validation(f"No user is named {name!r}; add them to the seed's `users`.")
        return {"object": "user", "id": user.id}

    def _drop_database(self, database_id: str) -> None:
        """Forget a database with everything in it (seeded pages have no blocks), and the other
        side of each two-way relation it had with other data sources."""
        for ds_id in self.databases.pop(database_id).data_source_ids:
            ds = self.data_sources[ds_id]
            gone, ds.properties = list(ds.properties.values()), {}
            self._follow_partners(self.human, ds, gone)
            for page_id in self.data_sources.pop(ds_id).pages:
                del self.pages[page_id]
        self.queries.clear()
        self.revision += 1

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


# --- request parsing helpers -----------------------------------------------------------------------


def _path_id(raw_id: str, param: str) -> str:
    object_id = normalize_id(raw_id)
    if object_id is None:
        raise validation(
            f"path failed validation: path.{param} should be a valid uuid, instead was `{json.dumps(raw_id)}`."
        )
    return object_id


def _lookup(table: dict[str, T], raw_id: str, param: str, kind: str) -> T:
    if param.startswith("body."):
        object_id = normalize_id(raw_id)
        if object_id is None:
            raise body_validation(param, "should be a valid uuid", raw_id)
    else:
        object_id = _path_id(raw_id, param)
    found = table.get(object_id)
    if found is None:
        raise not_found(kind, object_id)
    return found


def _optional_id(raw: Any) -> str | None:
    if raw is None:
        return None
    object_id = normalize_id(str(raw))
    if object_id is None:
        raise validation(f"Seed id {raw!r} is not a valid uuid.")
    return object_id


def _known(ds: DataSource, key: str) -> PropertySchema:
    prop = ds.resolve(key)
    if prop is None:
        raise validation(f"{key} is not a property that exists.")
    return prop


def _new_property(
    name: Any, config: Any, path: str, existing: dict[str, PropertySchema], seeded: bool = False
) -> PropertySchema:
    if not isinstance(config, dict):
        raise body_validation(path, "should be an object", config)
    if not isinstance(name, str) or not name.strip():
        raise body_validation(f"{path}.name", "should be a non-empty string", name)
    if any(p.name == name for p in existing.values()):
        raise validation(f"A property named {name} already exists.")
    kind = config_type(config, path)
    if kind is None:
        raise validation(f"body failed validation: {path} should declare exactly one property type.")
    prop_id = "title" if kind == "title" else new_property_id(set(existing))
    prop = PropertySchema(prop_id, name, kind)
    apply_config(prop, config, path, seeded)
    return prop


def _change_property(prop: PropertySchema, config: Any, path: str, properties: dict[str, PropertySchema]) -> bool:
    """Apply a rename / re-type / settings change; True when the type changed (values are dropped)."""
    if not isinstance(config, dict):
        raise body_validation(path, "should be an object or `null`", config)
    name = config.get("name", prop.name)
    if not isinstance(name, str) or not name.strip():
        raise body_validation(f"{path}.name", "should be a non-empty string", name)
    if name != prop.name and any(p.name == name for p in properties.values()):
        raise validation(f"A property named {name} already exists.")
    prop.name = name
    kind = config_type(config, path) or prop.type
    retyped = kind != prop.type
    if retyped and "title" in (kind, prop.type):
        raise validation(f"The type of property {prop.name} can't be changed to or from title.")
    if retyped:
        prop.type, prop.options, prop.number_format, prop.groups, prop.settings = kind, [], "number", [], {}
    apply_config(prop, config, path)
    return retyped


def _parse_properties(ds: DataSource, raw: Any, ctx: WriteContext) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise body_validation("body.properties", "should be an object", raw)
    writes: dict[str, Any] = {}
    for key, value in raw.items():
        prop = _known(ds, key)
        writes[prop.id] = parse_value(prop, value, f"body.properties.{key}", ctx)
    return writes


def _typed_result(value: Any) -> Any:
    """A seed's plain formula or rollup result (`7200`, `"Hot"`, `true`) in its typed read shape."""
    if isinstance(value, bool):
        return {"type": "boolean", "boolean": value}
    if isinstance(value, int | float):
        return {"type": "number", "number": value}
    if isinstance(value, str):
        return {"type": "string", "string": value}
    return value


def _page_titled(ds: DataSource, title: str) -> dict[str, str]:
    """A seed links pages by title; the related data source's pages must come earlier."""
    title_id = ds.title_property().id
    page = next((p for p in ds.pages.values() if plain_text(p.values.get(title_id, [])) == title), None)
    if page is None:
        raise validation(f"No page titled {title!r} in data source {ds.title}; seed it before linking to it.")
    return {"id": page.id}


def _trash_flag(body: dict[str, Any]) -> bool | None:
    flags = {key: body[key] for key in ("in_trash", "archived") if body.get(key) is not None}
    for key, flag in flags.items():
        if not isinstance(flag, bool):
            raise body_validation(f"body.{key}", "should be a boolean", flag)
    if len(set(flags.values())) > 1:
        raise validation("body failed validation: body.in_trash and body.archived disagree.")
    return next(iter(flags.values()), None)


def _reject_unsupported(body: dict[str, Any], keys: tuple[str, ...]) -> None:
    for key in keys:
        if body.get(key) is not None:
            raise validation(f"body failed validation: body.{key} is not supported by the sandbox.")


def _database_parent(parent: Any) -> dict[str, Any]:
    if isinstance(parent, dict) and parent.get("workspace") is True:
        return {"type": "workspace", "workspace": True}
    if isinstance(parent, dict) and isinstance(parent.get("page_id"), str):
        page_id = normalize_id(parent["page_id"])
        if page_id is None:
            raise body_validation("body.parent.page_id", "should be a valid uuid", parent["page_id"])
        return {"type": "page_id", "page_id": page_id}
    raise body_validation("body.parent", "should be `{page_id}` or `{workspace: true}`", parent)


def _parse_icon(raw: Any, path: str) -> dict[str, Any] | None:
    if raw is None:
        return None
    if isinstance(raw, dict) and isinstance(raw.get("emoji"), str):
        return {"type": "emoji", "emoji": raw["emoji"]}
    return _parse_cover(raw, path)


def _parse_cover(raw: Any, path: str) -> dict[str, Any] | None:
    if raw is None:
        return None
    external = raw.get("external") if isinstance(raw, dict) else None
    if not isinstance(external, dict) or not isinstance(external.get("url"), str):
        raise body_validation(path, "should be an emoji or `{external: {url}}` (the sandbox has no file uploads)", raw)
    if len(external["url"]) > 2000:
        raise too_long(f"{path}.external.url", 2000, len(external["url"]))
    return {"type": "external", "external": {"url": external["url"]}}


def _parse_blocks(raw: Any, path: str) -> list[tuple[str, dict[str, Any]]]:
    if not isinstance(raw, list):
        raise body_validation(path, "should be an array", raw)
    if len(raw) > MAX_ARRAY:
        raise too_long(path, MAX_ARRAY, len(raw))
    return [_parse_block(item, f"{path}[{i}]") for i, item in enumerate(raw)]


def _parse_block(item: Any, path: str) -> tuple[str, dict[str, Any]]:
    if not isinstance(item, dict):
        raise body_validation(path, "should be an object", item)
    kind = item.get("type") or next((k for k in item if k in BLOCK_TYPES), None)
    if kind not in BLOCK_TYPES or not isinstance(item.get(kind), dict):
        raise validation(
            f"body failed validation: {path} should be one of the block types the sandbox supports: {', '.join(BLOCK_TYPES)}."
        )
    content = item[kind]
    if content.get("children"):
        raise validation(
            f"body failed validation: {path}.{kind}.children: nested children are not supported by the sandbox."
        )
    color = content.get("color", "default")
    if not is_color(color, ANNOTATION_COLORS):
        raise body_validation(f"{path}.{kind}.color", "should be a color", color)
    rendered: dict[str, Any] = {
        "rich_text": parse_rich_text(content.get("rich_text", MISSING), f"{path}.{kind}.rich_text"),
        "color": color,
    }
    if kind == "paragraph":
        rendered["icon"] = None
    elif kind.startswith("heading_"):
        rendered["is_toggleable"] = bool(content.get("is_toggleable", False))
    return kind, rendered
