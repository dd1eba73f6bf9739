"""Page writes: each writable property type's value checked and brought to the normalized form
the workspace stores (`parse_value`), with select options a write creates held back until the
whole request has validated. Apart from crm_pipeline.sandbox.properties, which holds what reads
and writes share (types, limits, rich text, keys, rendering)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import MISSING, NotionError, body_validation, too_long, validation
from .model import PropertySchema, SelectOption, new_id, normalize_id
from .properties import (
    COLORS,
    MAX_ARRAY,
    READ_ONLY_TYPES,
    STRING_LIMITS,
    TEXT_TYPES,
    WRITABLE_TYPES,
    NewOptions,
    WriteContext,
    is_color,
    is_number,
    parse_instant,
    parse_rich_text,
)
from .property_schemas import check_option_name


def parse_value(prop: PropertySchema, raw: Any, path: str, ctx: WriteContext) -> Any:
    """Validate one property write (`{type?: t, t: value}`) and return the normalized value.
    Notion also takes a title or text as the bare rich-text array (as recorded)."""
    if isinstance(raw, list) and prop.type in TEXT_TYPES:
        raw = {prop.type: raw}
    if not isinstance(raw, dict):
        raise body_validation(path, "should be an object", raw)
    if prop.type in READ_ONLY_TYPES or not any(key in raw for key in WRITABLE_TYPES):
        raise fix_one(path)
    if raw.get("type", prop.type) != prop.type or prop.type not in raw:
        raise validation(f"{prop.name} is expected to be {prop.type}.")
    return _VALUE_PARSERS[prop.type](prop, raw[prop.type], f"{path}.{prop.type}", ctx)


def fix_one(path: str) -> NotionError:
    """Notion's answer to a value that matches no writable shape, a read-only type's included."""
    lines = [f"{path}.{kind} should be defined, instead was `undefined`." for kind in WRITABLE_TYPES]
    return validation("body failed validation. Fix one:\n" + "\n".join(lines))


def _parse_text_value(prop: PropertySchema, value: Any, path: str, _: WriteContext) -> Any:
    return parse_rich_text(value, path)


def _parse_number(prop: PropertySchema, value: Any, path: str, _: WriteContext) -> Any:
    if value is not None and not is_number(value):
        raise body_validation(path, "should be a number or `null`", value)
    return value


def _parse_checkbox(prop: PropertySchema, value: Any, path: str, _: WriteContext) -> Any:
    if not isinstance(value, bool):
        raise body_validation(path, "should be a boolean", value)
    return value


def _parse_string(prop: PropertySchema, value: Any, path: str, _: WriteContext) -> Any:
    if value is None:
        return None
    if not isinstance(value, str):
        raise body_validation(path, "should be a string or `null`", value)
    limit = STRING_LIMITS[prop.type]
    if len(value) > limit:
        raise too_long(path, limit, len(value))
    return value


def _parse_date(prop: PropertySchema, value: Any, path: str, _: WriteContext) -> Any:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise body_validation(path, "should be an object or `null`", value)
    start = value.get("start", MISSING)
    if parse_instant(start) is None:
        raise body_validation(f"{path}.start", "should be a valid ISO 8601 date string", start)
    end = value.get("end")
    if end is not None and parse_instant(end) is None:
        raise body_validation(f"{path}.end", "should be a valid ISO 8601 date string or `null`", end)
    time_zone = value.get("time_zone")
    if time_zone is not None and not isinstance(time_zone, str):
        raise body_validation(f"{path}.time_zone", "should be a string or `null`", time_zone)
    return {"start": start, "end": end, "time_zone": time_zone}


def _parse_select(prop: PropertySchema, value: Any, path: str, ctx: WriteContext) -> Any:
    if value is None:
        return None
    return _option_id(prop, value, path, ctx)


def _parse_status(prop: PropertySchema, value: Any, path: str, ctx: WriteContext) -> Any:
    """Like a select, except that a write can never create an option (nor can the API otherwise)."""
    if value is None:
        return None
    if isinstance(value, dict) and isinstance(value.get("name"), str) and prop.option_by_name(value["name"]) is None:
        raise validation(f"Invalid status option {value['name']!r} for property {prop.name}.")
    return _option_id(prop, value, path, ctx)


def _parse_multi_select(prop: PropertySchema, value: Any, path: str, ctx: WriteContext) -> Any:
    """The whole set, replacing the old one; new names become options, as with a select."""
    items = _array(value, path)
    return _unique([_option_id(prop, item, f"{path}[{i}]", ctx) for i, item in enumerate(items)])


def _option_id(prop: PropertySchema, value: Any, path: str, ctx: WriteContext) -> str:
    if not isinstance(value, dict) or not ("name" in value or "id" in value):
        raise body_validation(path, "should be an object with `name` or `id`", value)
    if "id" in value:
        option = prop.option_by_id(value["id"]) if isinstance(value["id"], str) else None
        if option is None:
            raise validation(f"Select option with id {value['id']!r} does not exist for property {prop.name}.")
        return option.id
    name = check_option_name(prop, value["name"], f"{path}.name")
    existing = prop.option_by_name(name)
    if existing is not None:
        return existing.id
    new_options = ctx.new_options
    pending = new_options.get((prop.id, name))
    if pending is None:
        color = value.get("color") or COLORS[1 + (len(prop.options) + len(new_options)) % (len(COLORS) - 1)]
        if not is_color(color, COLORS):
            raise body_validation(f"{path}.color", "should be a select color", color)
        pending = (prop, SelectOption(new_id(), name, color))
        new_options[(prop.id, name)] = pending
    return pending[1].id


def _parse_people(prop: PropertySchema, value: Any, path: str, ctx: WriteContext) -> Any:
    ids = []
    for i, item in enumerate(_array(value, path)):
        user_id = _reference(item, f"{path}[{i}]")
        if item.get("object", "user") != "user":
            raise body_validation(f"{path}[{i}].object", "should be `user` (the sandbox has no groups)", item["object"])
        if user_id not in ctx.users:
            raise validation(f"Could not find user with ID: {user_id}.")
        ids.append(user_id)
    return _unique(ids)


def _parse_relation(prop: PropertySchema, value: Any, path: str, ctx: WriteContext) -> Any:
    ids = []
    for i, item in enumerate(_array(value, path)):
        page_id = _reference(item, f"{path}[{i}]")
        if not ctx.related(prop.settings["data_source_id"], page_id):
            raise validation(
                f"Could not find page with ID: {page_id} in the data source property {prop.name} relates to."
            )
        ids.append(page_id)
    return _unique(ids)


def _parse_files(prop: PropertySchema, value: Any, path: str, _: WriteContext) -> Any:
    files = []
    for i, item in enumerate(_array(value, path)):
        at = f"{path}[{i}]"
        if not isinstance(item, dict) or item.get("type", "external") != "external" or "external" not in item:
            raise body_validation(at, "should be an external file `{name, external: {url}}` (no file uploads)", item)
        name, external = item.get("name", MISSING), item["external"]
        if not isinstance(name, str) or not name:
            raise body_validation(f"{at}.name", "should be a non-empty string", name)
        url = external.get("url", MISSING) if isinstance(external, dict) else MISSING
        if not isinstance(url, str):
            raise body_validation(f"{at}.external.url", "should be a string", url)
        if len(url) > STRING_LIMITS["url"]:
            raise too_long(f"{at}.external.url", STRING_LIMITS["url"], len(url))
        files.append({"name": name, "type": "external", "external": {"url": url}})
    return files


def _array(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise body_validation(path, "should be an array", value)
    if len(value) > MAX_ARRAY:
        raise too_long(path, MAX_ARRAY, len(value))
    return value


def _reference(item: Any, path: str) -> str:
    """The normalized id of `{id, ...}` (a user or a page)."""
    raw = item.get("id", MISSING) if isinstance(item, dict) else MISSING
    object_id = normalize_id(raw) if isinstance(raw, str) else None
    if object_id is None:
        raise body_validation(f"{path}.id", "should be a valid uuid", raw)
    return object_id


def _unique(ids: list[str]) -> list[str]:
    return list(dict.fromkeys(ids))


_VALUE_PARSERS: dict[str, Callable[[PropertySchema, Any, str, WriteContext], Any]] = {
    "title": _parse_text_value,
    "rich_text": _parse_text_value,
    "number": _parse_number,
    "select": _parse_select,
    "status": _parse_status,
    "multi_select": _parse_multi_select,
    "date": _parse_date,
    "email": _parse_string,
    "url": _parse_string,
    "phone_number": _parse_string,
    "checkbox": _parse_checkbox,
    "people": _parse_people,
    "relation": _parse_relation,
    "files": _parse_files,
}


def commit_options(new_options: NewOptions) -> None:
    for prop, option in new_options.values():
        if prop.option_by_name(option.name) is None:
            prop.options.append(option)
