"""The in-memory workspace: users, databases, data sources, pages and blocks, plus persistence.

Every mutating operation validates the whole request before touching anything, so a rejected
write changes nothing. Timestamps come from the sandbox `Clock`, floored to the minute.
The tables and persistence live in crm_pipeline.sandbox.tables, schema editing in
crm_pipeline.sandbox.schema; this module adds pages, blocks and seeding on top.
"""

from __future__ import annotations

from typing import Any

from .errors import MISSING, body_validation, validation
from .model import Block, DataSource, Page, PropertySchema, User, new_id, normalize_id
from .properties import COMPUTED_TYPES, WriteContext, parse_computed, plain_text, shorthand_write
from .request_parsing import (
    known_property,
    optional_id,
    parse_blocks,
    parse_cover,
    parse_icon,
    parse_properties,
    path_id,
    reject_unsupported,
    trash_flag,
)
from .schema import WorkspaceSchema
from .tables import HUMAN_USER_ID, bot_user_id
from .value_parsing import commit_options

__all__ = ["HUMAN_USER_ID", "Workspace", "bot_user_id"]

ARCHIVED_PAGE_MESSAGE = "Can't update a page that is archived. You must unarchive the page before updating."


class Workspace(WorkspaceSchema):
    """The whole workspace the sandbox API serves."""

    # --- pages -----------------------------------------------------------------------------------

    def create_page(self, actor: User, body: dict[str, Any]) -> Page:
        reject_unsupported(body, ("content", "markdown", "template", "position"))
        ds = self._page_parent(body.get("parent", MISSING))
        ctx = self._write_context()
        writes = parse_properties(ds, body.get("properties", {}), ctx)
        icon, cover = parse_icon(body.get("icon"), "body.icon"), parse_cover(body.get("cover"), "body.cover")
        blocks = parse_blocks(body["children"], "body.children") if body.get("children") is not None else []
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
        reject_unsupported(body, ("template",))
        ds = self.source_of(page)
        trash = trash_flag(body)
        ctx = self._write_context()
        writes = parse_properties(ds, body.get("properties", {}), ctx)
        edits_content = bool(writes) or any(body.get(k) is not None for k in ("icon", "cover"))
        if page.in_trash and trash is not False and edits_content:
            raise validation(ARCHIVED_PAGE_MESSAGE)
        icon = parse_icon(body.get("icon"), "body.icon") if "icon" in body else page.icon
        cover = parse_cover(body.get("cover"), "body.cover") if "cover" in body else page.cover
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
            prop = known_property(ds, key)
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
        reject_unsupported(body, ("position",))
        children = self.children_of(raw_id)
        parsed = parse_blocks(body.get("children", MISSING), "body.children")
        after = body.get("after")
        if after is not None and (not isinstance(after, str) or normalize_id(after) not in children):
            raise body_validation("body.after", "should be the id of a child block", after)
        holder_id = path_id(raw_id, "block_id")
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

    # --- seeding ---------------------------------------------------------------------------------

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
        db = self._add_database(title, {"type": "workspace", "workspace": True}, optional_id(spec.get("id")))
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
                optional_id(source.get("id")),
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
            prop = known_property(ds, name)
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
