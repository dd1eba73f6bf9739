"""Stored objects in Notion's response shapes (as typed by the SDK-derived JSON Schemas)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from crm_pipeline.emulation.clock import iso_millis, iso_minute

from .model import Block, Database, DataSource, Page, User, user_ref
from .properties import plain_text, render_value, text_items
from .property_schemas import render_schema


def notion_url(title: str, object_id: str) -> str:
    """`https://app.notion.com/p/<title slug>-<id>` for pages, `…/p/<id>` otherwise, as recorded."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", title).strip("-")
    compact = object_id.replace("-", "")
    return f"https://app.notion.com/p/{slug}-{compact}" if slug else f"https://app.notion.com/p/{compact}"


def page_title(ds: DataSource, page: Page) -> str:
    return plain_text(page.values.get(ds.title_property().id, []))


def page_json(ds: DataSource, page: Page, users: Mapping[str, User], only: set[str] | None = None) -> dict[str, Any]:
    properties = {
        prop.name: render_value(prop, page, users) for prop in ds.properties.values() if only is None or prop.id in only
    }
    title = page_title(ds, page)
    return {
        "object": "page",
        "id": page.id,
        "created_time": iso_minute(page.created_ms),
        "last_edited_time": iso_minute(page.edited_ms),
        "created_by": user_ref(page.created_by),
        "last_edited_by": user_ref(page.edited_by),
        "cover": page.cover,
        "icon": page.icon,
        "parent": {"type": "data_source_id", "data_source_id": ds.id, "database_id": ds.database_id},
        "in_trash": page.in_trash,
        "archived": page.in_trash,
        "is_archived": False,
        "is_locked": page.is_locked,
        "properties": properties,
        "url": notion_url(title, page.id),
        "public_url": None,
    }


def page_text(ds: DataSource, page: Page, users: Mapping[str, User]) -> str:
    """The page as JSON text, cached until the page or its schema changes (queries just join these)."""
    if page.rendered is None or page.rendered[0] != ds.schema_version:
        page.rendered = (ds.schema_version, json.dumps(page_json(ds, page, users), ensure_ascii=False))
    return page.rendered[1]


def data_source_json(ds: DataSource, db: Database) -> dict[str, Any]:
    return {
        "object": "data_source",
        "id": ds.id,
        "title": text_items(ds.title),
        "description": [],
        "parent": {"type": "database_id", "database_id": db.id},
        "database_parent": db.parent,
        "is_inline": db.is_inline,
        "in_trash": ds.in_trash,
        "archived": ds.in_trash,
        "created_time": iso_minute(ds.created_ms),
        "last_edited_time": iso_minute(ds.edited_ms),
        "created_by": user_ref(ds.created_by),
        "last_edited_by": user_ref(ds.edited_by),
        "properties": {prop.name: render_schema(prop) for prop in ds.properties.values()},
        "icon": None,
        "cover": None,
        "url": notion_url("", ds.id),
        "public_url": None,
    }


def database_json(db: Database, sources: list[DataSource]) -> dict[str, Any]:
    return {
        "object": "database",
        "id": db.id,
        "title": text_items(db.title),
        "description": [],
        "parent": db.parent,
        "is_inline": db.is_inline,
        "in_trash": db.in_trash,
        "archived": db.in_trash,
        "is_locked": db.is_locked,
        "created_time": iso_millis(db.created_ms),
        "last_edited_time": iso_millis(db.edited_ms),
        "data_sources": [{"id": ds.id, "name": ds.title} for ds in sources],
        "icon": None,
        "cover": None,
        "url": notion_url("", db.id),
        "public_url": None,
    }


def block_json(block: Block) -> dict[str, Any]:
    return {
        "object": "block",
        "id": block.id,
        "type": block.type,
        block.type: block.content,
        "parent": block.parent,
        "created_time": iso_minute(block.created_ms),
        "last_edited_time": iso_minute(block.created_ms),
        "created_by": user_ref(block.created_by),
        "last_edited_by": user_ref(block.created_by),
        "has_children": bool(block.children),
        "in_trash": False,
        "archived": False,
    }


def list_json(results: list[Any], next_cursor: str | None, kind: str) -> dict[str, Any]:
    return {
        "object": "list",
        "results": results,
        "next_cursor": next_cursor,
        "has_more": next_cursor is not None,
        "type": kind,
        kind: {},
    }
