"""Validation of ids and request bodies shared by the workspace's schema, page and block
operations: each raises the Notion-shaped error for a bad value before anything changes."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from .errors import MISSING, body_validation, not_found, too_long, validation
from .model import DataSource, PropertySchema, normalize_id
from .properties import ANNOTATION_COLORS, MAX_ARRAY, WriteContext, is_color, parse_rich_text
from .value_parsing import parse_value

BLOCK_TYPES = ("paragraph", "heading_1", "heading_2", "heading_3", "bulleted_list_item")
T = TypeVar("T")


def path_id(raw_id: str, param: str) -> str:
    object_id = normalize_id(raw_id)
    if object_id is None:
        raise validation(
            f"path failed validation: path.{param} should be a valid uuid, instead was `{json.dumps(raw_id)}`."
        )
    return object_id


def lookup(table: dict[str, T], raw_id: str, param: str, kind: str) -> T:
    if param.startswith("body."):
        object_id = normalize_id(raw_id)
        if object_id is None:
            raise body_validation(param, "should be a valid uuid", raw_id)
    else:
        object_id = path_id(raw_id, param)
    found = table.get(object_id)
    if found is None:
        raise not_found(kind, object_id)
    return found


def optional_id(raw: Any) -> str | None:
    if raw is None:
        return None
    object_id = normalize_id(str(raw))
    if object_id is None:
        raise validation(f"Seed id {raw!r} is not a valid uuid.")
    return object_id


def known_property(ds: DataSource, key: str) -> PropertySchema:
    prop = ds.resolve(key)
    if prop is None:
        raise validation(f"{key} is not a property that exists.")
    return prop


def parse_properties(ds: DataSource, raw: Any, ctx: WriteContext) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise body_validation("body.properties", "should be an object", raw)
    writes: dict[str, Any] = {}
    for key, value in raw.items():
        prop = known_property(ds, key)
        writes[prop.id] = parse_value(prop, value, f"body.properties.{key}", ctx)
    return writes


def trash_flag(body: dict[str, Any]) -> bool | None:
    flags = {key: body[key] for key in ("in_trash", "archived") if body.get(key) is not None}
    for key, flag in flags.items():
        if not isinstance(flag, bool):
            raise body_validation(f"body.{key}", "should be a boolean", flag)
    if len(set(flags.values())) > 1:
        raise validation("body failed validation: body.in_trash and body.archived disagree.")
    return next(iter(flags.values()), None)


def reject_unsupported(body: dict[str, Any], keys: tuple[str, ...]) -> None:
    for key in keys:
        if body.get(key) is not None:
            raise validation(f"body failed validation: body.{key} is not supported by the sandbox.")


def parse_icon(raw: Any, path: str) -> dict[str, Any] | None:
    if raw is None:
        return None
    if isinstance(raw, dict) and isinstance(raw.get("emoji"), str):
        return {"type": "emoji", "emoji": raw["emoji"]}
    return parse_cover(raw, path)


def parse_cover(raw: Any, path: str) -> dict[str, Any] | None:
    if raw is None:
        return None
    external = raw.get("external") if isinstance(raw, dict) else None
    if not isinstance(external, dict) or not isinstance(external.get("url"), str):
        raise body_validation(path, "should be an emoji or `{external: {url}}` (the sandbox has no file uploads)", raw)
    if len(external["url"]) > 2000:
        raise too_long(f"{path}.external.url", 2000, len(external["url"]))
    return {"type": "external", "external": {"url": external["url"]}}


def parse_blocks(raw: Any, path: str) -> list[tuple[str, dict[str, Any]]]:
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
