"""Property schemas and values: validating writes per type and rendering Notion's read shape.

Stored values are normalized once on write: rich text as fully rendered items, selects as option
ids, dates as `{start, end, time_zone}`. Each value also gets a comparable *key* (plain text,
number, option id, epoch ms, bool) that filters and sorts read without any parsing.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote

from .errors import MISSING, body_validation, too_long, validation
from .model import PropertySchema, SelectOption, new_id

SUPPORTED_TYPES = ("title", "rich_text", "number", "select", "date", "email", "url", "phone_number", "checkbox")
TEXT_TYPES = frozenset({"title", "rich_text"})
STRING_LIMITS = {"email": 200, "phone_number": 200, "url": 2000}
MAX_TEXT_CONTENT = 2000
MAX_ARRAY = 100
MAX_OPTION_NAME = 100
COLORS = ("default", "gray", "brown", "orange", "yellow", "green", "blue", "purple", "pink", "red")
ANNOTATION_COLORS = frozenset(COLORS + tuple(f"{c}_background" for c in COLORS[1:]))
ANNOTATION_DEFAULTS: dict[str, Any] = {
    "bold": False,
    "italic": False,
    "strikethrough": False,
    "underline": False,
    "code": False,
    "color": "default",
}
EMPTY_VALUES: dict[str, Any] = {"title": [], "rich_text": [], "checkbox": False}
EMPTY_KEYS: dict[str, Any] = {
    "title": "",
    "rich_text": "",
    "email": "",
    "url": "",
    "phone_number": "",
    "checkbox": False,
}

# Select options created by a write, keyed by (property id, option name). They are added to the
# schema only once the whole request has validated, so a rejected write changes nothing.
NewOptions = dict[tuple[str, str], tuple[PropertySchema, SelectOption]]


def is_color(value: Any, palette: frozenset[str] | tuple[str, ...]) -> bool:
    return isinstance(value, str) and value in palette


# --- rich text -----------------------------------------------------------------------------------


def parse_rich_text(raw: Any, path: str) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        raise body_validation(path, "should be an array", raw)
    if len(raw) > MAX_ARRAY:
        raise too_long(path, MAX_ARRAY, len(raw))
    return [_parse_text_item(item, f"{path}[{i}]") for i, item in enumerate(raw)]


def _parse_text_item(item: Any, path: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise body_validation(path, "should be an object", item)
    kind = item.get("type", "text")
    if kind != "text":
        raise validation(f"body failed validation: {path}.type `{kind}` is not supported by the sandbox (only `text`).")
    text = item.get("text", MISSING)
    if not isinstance(text, dict):
        raise body_validation(f"{path}.text", "should be an object", text)
    content = text.get("content", MISSING)
    if not isinstance(content, str):
        raise body_validation(f"{path}.text.content", "should be a string", content)
    if len(content) > MAX_TEXT_CONTENT:
        raise too_long(f"{path}.text.content", MAX_TEXT_CONTENT, len(content))
    url = _parse_link(text.get("link"), f"{path}.text.link")
    return {
        "type": "text",
        "text": {"content": content, "link": {"url": url} if url else None},
        "annotations": _parse_annotations(item.get("annotations", {}), f"{path}.annotations"),
        "plain_text": content,
        "href": url,
    }


def _parse_link(link: Any, path: str) -> str | None:
    if link is None:
        return None
    url = link.get("url", MISSING) if isinstance(link, dict) else link
    if not isinstance(url, str):
        raise body_validation(f"{path}.url", "should be a string", url)
    if len(url) > STRING_LIMITS["url"]:
        raise too_long(f"{path}.url", STRING_LIMITS["url"], len(url))
    return url


def _parse_annotations(raw: Any, path: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise body_validation(path, "should be an object", raw)
    annotations = dict(ANNOTATION_DEFAULTS)
    for key, value in raw.items():
        if key not in ANNOTATION_DEFAULTS:
            raise body_validation(f"{path}.{key}", "should be not present", value)
        valid = is_color(value, ANNOTATION_COLORS) if key == "color" else isinstance(value, bool)
        if not valid:
            raise body_validation(
                f"{path}.{key}", "should be a boolean" if key != "color" else "should be a color", value
            )
        annotations[key] = value
    return annotations


def text_items(content: str) -> list[dict[str, Any]]:
    """Rich text for a plain string, split into 2,000-character items as Notion requires."""
    chunks = [content[i : i + MAX_TEXT_CONTENT] for i in range(0, len(content), MAX_TEXT_CONTENT)]
    return [_parse_text_item({"text": {"content": chunk}}, "") for chunk in chunks]


def plain_text(items: list[dict[str, Any]]) -> str:
    return "".join(item["plain_text"] for item in items)


# --- dates ---------------------------------------------------------------------------------------


def parse_instant(text: Any) -> tuple[int, bool] | None:
    """Epoch ms of an ISO-8601 date or datetime (UTC unless zoned), and whether it was date-only."""
    if not isinstance(text, str):
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000), True
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000), False


# --- values --------------------------------------------------------------------------------------


def parse_value(prop: PropertySchema, raw: Any, path: str, new_options: NewOptions) -> Any:
    """Validate one property write (`{type?: t, t: value}`) and return the normalized value."""
    if not isinstance(raw, dict):
        raise body_validation(path, "should be an object", raw)
    if raw.get("type", prop.type) != prop.type or prop.type not in raw:
        raise validation(f"{prop.name} is expected to be {prop.type}.")
    return _VALUE_PARSERS[prop.type](prop, raw[prop.type], f"{path}.{prop.type}", new_options)


def _parse_text_value(prop: PropertySchema, value: Any, path: str, _: NewOptions) -> Any:
    return parse_rich_text(value, path)


def _parse_number(prop: PropertySchema, value: Any, path: str, _: NewOptions) -> Any:
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)
    ):
        raise body_validation(path, "should be a number or `null`", value)
    return value


def _parse_checkbox(prop: PropertySchema, value: Any, path: str, _: NewOptions) -> Any:
    if not isinstance(value, bool):
        raise body_validation(path, "should be a boolean", value)
    return value


def _parse_string(prop: PropertySchema, value: Any, path: str, _: NewOptions) -> Any:
    if value is None:
        return None
    if not isinstance(value, str):
        raise body_validation(path, "should be a string or `null`", value)
    limit = STRING_LIMITS[prop.type]
    if len(value) > limit:
        raise too_long(path, limit, len(value))
    return value


def _parse_date(prop: PropertySchema, value: Any, path: str, _: NewOptions) -> Any:
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


def _parse_select(prop: PropertySchema, value: Any, path: str, new_options: NewOptions) -> Any:
    if value is None:
        return None
    if not isinstance(value, dict) or not ("name" in value or "id" in value):
        raise body_validation(path, "should be an object with `name` or `id`, or `null`", value)
    if "id" in value:
        option = prop.option_by_id(value["id"]) if isinstance(value["id"], str) else None
        if option is None:
            raise validation(f"Select option with id {value['id']!r} does not exist for property {prop.name}.")
        return option.id
    name = check_option_name(prop, value["name"], f"{path}.name")
    existing = prop.option_by_name(name)
    if existing is not None:
        return existing.id
    pending = new_options.get((prop.id, name))
    if pending is None:
        color = value.get("color") or COLORS[1 + (len(prop.options) + len(new_options)) % (len(COLORS) - 1)]
        if not is_color(color, COLORS):
            raise body_validation(f"{path}.color", "should be a select color", color)
        pending = (prop, SelectOption(new_id(), name, color))
        new_options[(prop.id, name)] = pending
    return pending[1].id


def check_option_name(prop: PropertySchema, name: Any, path: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise body_validation(path, "should be a non-empty string", name)
    if len(name) > MAX_OPTION_NAME:
        raise too_long(path, MAX_OPTION_NAME, len(name))
    if "," in name:
        raise validation(
            f"Invalid select option for property {prop.name}: option names can't contain commas ({name!r})."
        )
    return name


_VALUE_PARSERS: dict[str, Callable[[PropertySchema, Any, str, NewOptions], Any]] = {
    "title": _parse_text_value,
    "rich_text": _parse_text_value,
    "number": _parse_number,
    "select": _parse_select,
    "date": _parse_date,
    "email": _parse_string,
    "url": _parse_string,
    "phone_number": _parse_string,
    "checkbox": _parse_checkbox,
}


def commit_options(new_options: NewOptions) -> None:
    for prop, option in new_options.values():
        if prop.option_by_name(option.name) is None:
            prop.options.append(option)


def empty_value(prop_type: str) -> Any:
    return EMPTY_VALUES.get(prop_type)


def value_key(prop_type: str, value: Any) -> Any:
    """The comparable form filters and sorts use; text keys are "" when empty, others None."""
    if prop_type in TEXT_TYPES:
        return plain_text(value)
    if prop_type == "date":
        return None if value is None else parse_instant(value["start"])[0]  # type: ignore[index]
    if prop_type in STRING_LIMITS:
        return value or ""
    return value


def render_value(prop: PropertySchema, value: Any) -> dict[str, Any]:
    if prop.type == "select" and value is not None:
        option = prop.option_by_id(value)
        value = None if option is None else {"id": option.id, "name": option.name, "color": option.color}
    return {"id": prop.id, "type": prop.type, prop.type: value}


def shorthand_write(prop: PropertySchema, value: Any) -> dict[str, Any]:
    """Seed files may give plain values ("Acme", 1200, "Won", "2026-12-01"); expand to the write shape."""
    if isinstance(value, str) and prop.type in TEXT_TYPES:
        return {
            prop.type: [
                {"text": {"content": value[i : i + MAX_TEXT_CONTENT]}} for i in range(0, len(value), MAX_TEXT_CONTENT)
            ]
        }
    if isinstance(value, str) and prop.type == "select":
        return {"select": {"name": value}}
    if isinstance(value, str) and prop.type == "date":
        return {"date": {"start": value}}
    return {prop.type: value}


# --- schemas -------------------------------------------------------------------------------------


def new_property_id(taken: set[str]) -> str:
    """Short, URL-encoded ids like Notion's (`%3AsTg`); they never change when a property is renamed."""
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:;<=>?@[]^_`{|}~"
    while True:
        candidate = quote("".join(secrets.choice(alphabet) for _ in range(4)), safe="")
        if candidate not in taken and candidate != "title":
            return candidate


def config_type(raw: dict[str, Any], path: str) -> str | None:
    """The type a property config declares: `type`, or its single type-named key."""
    declared = raw.get("type")
    named = [key for key in raw if key not in ("name", "description", "type", "id")]
    kind = declared if declared is not None else (named[0] if len(named) == 1 else None)
    if kind is not None and kind not in SUPPORTED_TYPES:
        raise validation(f"body failed validation: {path} has type `{kind}`, which the sandbox does not support.")
    return kind


def apply_config(prop: PropertySchema, raw: dict[str, Any], path: str) -> None:
    """Set description and type-specific settings (number format, select options) from a config."""
    if "description" in raw:
        description = raw["description"]
        if description is not None and not isinstance(description, str):
            raise body_validation(f"{path}.description", "should be a string or `null`", description)
        prop.description = description
    settings = raw.get(prop.type, {})
    if not isinstance(settings, dict):
        raise body_validation(f"{path}.{prop.type}", "should be an object", settings)
    if prop.type == "number" and "format" in settings:
        if not isinstance(settings["format"], str):
            raise body_validation(f"{path}.number.format", "should be a string", settings["format"])
        prop.number_format = settings["format"]
    if prop.type == "select" and "options" in settings:
        prop.options = _parse_options(prop, settings["options"], f"{path}.select.options")


def _parse_options(prop: PropertySchema, raw: Any, path: str) -> list[SelectOption]:
    if not isinstance(raw, list):
        raise body_validation(path, "should be an array", raw)
    if len(raw) > MAX_ARRAY:
        raise too_long(path, MAX_ARRAY, len(raw))
    options: list[SelectOption] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise body_validation(f"{path}[{i}]", "should be an object", item)
        existing = prop.option_by_id(item["id"]) if isinstance(item.get("id"), str) else None
        name = check_option_name(prop, item.get("name", existing.name if existing else MISSING), f"{path}[{i}].name")
        existing = existing or prop.option_by_name(name)
        color = item.get("color", existing.color if existing else COLORS[1 + i % (len(COLORS) - 1)])
        if not is_color(color, COLORS):
            raise body_validation(f"{path}[{i}].color", "should be a select color", color)
        description = item.get("description")
        if description is not None and not isinstance(description, str):
            raise body_validation(f"{path}[{i}].description", "should be a string or `null`", description)
        options.append(SelectOption(existing.id if existing else new_id(), name, color, description))
    return options


def render_schema(prop: PropertySchema) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    if prop.type == "number":
        settings = {"format": prop.number_format}
    elif prop.type == "select":
        settings = {
            "options": [
                {"id": o.id, "name": o.name, "color": o.color, "description": o.description} for o in prop.options
            ]
        }
    return {"id": prop.id, "name": prop.name, "description": prop.description, "type": prop.type, prop.type: settings}
