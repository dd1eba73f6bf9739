"""Creating databases and data sources and editing their schemas: property add, rename, re-type
and delete, and the relations and rollups that tie data sources together (a two-way relation's
other side follows every change). The subtlest part of the workspace, so it stands alone."""

from __future__ import annotations

import copy
from typing import Any

from .errors import MISSING, body_validation, validation
from .model import Database, DataSource, PropertySchema, User, new_id, normalize_id, resolve_property
from .properties import ROLLUP_FUNCTIONS, parse_rich_text, plain_text
from .property_schemas import apply_config, config_type, new_property_id
from .tables import WorkspaceTables


class WorkspaceSchema(WorkspaceTables):
    """Databases, data sources and their properties."""

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
        properties = _unlinked_properties(raw_properties, linked, path, seeded)
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
        retyped, linked = _edit_properties(properties, raw, path)
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


def _unlinked_properties(
    raw_properties: dict[str, Any], linked: dict[str, Any], path: str, seeded: bool
) -> dict[str, PropertySchema]:
    """A new data source's properties other than relations and rollups, with exactly one title
    (`Name` when none is given)."""
    properties: dict[str, PropertySchema] = {}
    for name, config in raw_properties.items():
        if name not in linked:
            prop = _new_property(name, config, f"{path}.{name}", properties, seeded)
            properties[prop.id] = prop
    titles = [p for p in properties.values() if p.type == "title"]
    if len(titles) > 1:
        raise validation(f"body failed validation: {path} has {len(titles)} title properties; exactly one is allowed.")
    if not titles:
        properties = {"title": PropertySchema("title", "Name", "title"), **properties}
    return properties


def _edit_properties(
    properties: dict[str, PropertySchema], raw: dict[str, Any], path: str
) -> tuple[set[str], dict[str, dict[str, Any]]]:
    """Apply a schema update's property edits to ``properties`` (a copy: a refused edit leaves the
    data source as it was); return the ids of the properties added or re-typed, and the relations
    and rollups whose configuration is still to be linked (property id -> its config)."""
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
    return retyped, linked


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


def _database_parent(parent: Any) -> dict[str, Any]:
    if isinstance(parent, dict) and parent.get("workspace") is True:
        return {"type": "workspace", "workspace": True}
    if isinstance(parent, dict) and isinstance(parent.get("page_id"), str):
        page_id = normalize_id(parent["page_id"])
        if page_id is None:
            raise body_validation("body.parent.page_id", "should be a valid uuid", parent["page_id"])
        return {"type": "page_id", "page_id": page_id}
    raise body_validation("body.parent", "should be `{page_id}` or `{workspace: true}`", parent)
