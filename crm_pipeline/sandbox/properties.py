"""Property schemas and values: validating writes per type and rendering Notion's read shape.

Stored values are normalized once on write: rich text as fully rendered items, selects and
statuses as option ids, multi-selects, people and relations as id lists, dates as
`{start, end, time_zone}`, formula and rollup results as their read shape. Each value also gets a
comparable *key* (plain text, number, option id, id tuple, epoch ms, bool) that filters and sorts
read without any parsing. The page's own times and editors back the four timestamp and user types,
so they are never stored.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote

from crm_pipeline.emulation.clock import iso_minute

from .errors import MISSING, NotionError, body_validation, too_long, validation
from .model import Page, PropertySchema, SelectOption, StatusGroup, User, new_id, normalize_id, user_ref

# What a page write may set, in the order Notion's "Fix one" message lists them.
WRITABLE_TYPES = (
    "title", "rich_text", "number", "url", "select", "multi_select", "people", "email", "phone_number",
    "date", "checkbox", "relation", "files", "status",
)  # fmt: skip
COMPUTED_TYPES = ("formula", "rollup")  # read-only; results set through the control surface
PAGE_TYPES = ("created_time", "created_by", "last_edited_time", "last_edited_by")  # the page's own metadata
READ_ONLY_TYPES = frozenset((*COMPUTED_TYPES, *PAGE_TYPES, "unique_id"))
SUPPORTED_TYPES = (*WRITABLE_TYPES, *COMPUTED_TYPES, *PAGE_TYPES, "unique_id")
TEXT_TYPES = frozenset({"title", "rich_text"})
ID_LIST_TYPES = frozenset({"multi_select", "people", "relation"})
FORMULA_RESULTS = ("string", "number", "boolean", "date")
ROLLUP_RESULTS = ("number", "date", "array")
ROLLUP_FUNCTIONS = (
    "count", "count_values", "empty", "not_empty", "unique", "show_unique", "percent_empty",
    "percent_not_empty", "sum", "average", "median", "min", "max", "range", "earliest_date",
    "latest_date", "date_range", "checked", "unchecked", "percent_checked", "percent_unchecked",
    "count_per_group", "percent_per_group", "show_original",
)  # fmt: skip
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
EMPTY_VALUES: dict[str, Any] = {
    "title": [], "rich_text": [], "checkbox": False, "multi_select": [], "people": [], "relation": [], "files": [],
}  # fmt: skip
EMPTY_KEYS: dict[str, Any] = {
    "title": "", "rich_text": "", "email": "", "url": "", "phone_number": "", "checkbox": False,
    "multi_select": (), "people": (), "relation": (), "files": (),
}  # fmt: skip
DEFAULT_STATUS = (  # what Notion gives a new status property: (group, colour, its one option, colour)
    ("To-do", "gray", "Not started", "default"),
    ("In progress", "blue", "In progress", "blue"),
    ("Complete", "green", "Done", "green"),
)

# Select options created by a write, keyed by (property id, option name). They are added to the
# schema only once the whole request has validated, so a rejected write changes nothing.
NewOptions = dict[tuple[str, str], tuple[PropertySchema, SelectOption]]


@dataclass
class WriteContext:
    """What validating a page write needs beyond the property's schema."""

    users: Mapping[str, User]  # by id: people values must name a workspace user
    related: Callable[[str, str], bool]  # (data source id, page id): may a relation point there?
    new_options: NewOptions = field(default_factory=dict)


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


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


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


# --- formula and rollup results (set through the control surface) ------------------------------


def parse_computed(prop: PropertySchema, raw: Any, path: str) -> dict[str, Any] | None:
    """A formula or rollup result in its read shape (`{"type": "number", "number": 3}`); `null`
    forgets it. A rollup's `function` comes from its schema, not from here."""
    if raw is None:
        return None
    kinds = FORMULA_RESULTS if prop.type == "formula" else ROLLUP_RESULTS
    kind = raw.get("type") if isinstance(raw, dict) else None
    if not isinstance(kind, str) or kind not in kinds or set(raw) - {"type", kind, "function"}:
        raise body_validation(path, f"should be `{{type, <type>: value}}` with a type of {', '.join(kinds)}", raw)
    value = raw.get(kind)
    if kind == "array":
        result = {"type": "array", "array": value}
        try:  # filters read every item: one they cannot read is refused now, not at query time
            if not isinstance(value, list) or not all(_is_read_value(item) for item in value):
                raise TypeError(value)
            computed_key(result)
        except (KeyError, TypeError, AttributeError, ValueError):
            raise body_validation(
                f"{path}.array", "should be an array of property values in their read shape", value
            ) from None
        return result
    checks: dict[str, Callable[[Any], bool]] = {
        "string": lambda v: isinstance(v, str),
        "number": is_number,
        "boolean": lambda v: isinstance(v, bool),
        "date": lambda v: isinstance(v, dict) and parse_instant(v.get("start")) is not None,
    }
    if value is not None and not checks[kind](value):
        raise body_validation(f"{path}.{kind}", f"should be a {kind} result or `null`", value)
    if kind == "date" and value is not None:
        value = {"start": value["start"], "end": value.get("end"), "time_zone": value.get("time_zone")}
    return {"type": kind, kind: value}


def _is_read_value(item: Any) -> bool:
    kind = item.get("type") if isinstance(item, dict) else None
    return kind in SUPPORTED_TYPES and kind in item


def default_computed(prop: PropertySchema) -> dict[str, Any]:
    """What a formula or rollup shows until a result is set: an empty result of its likely type."""
    if prop.type == "formula":
        return {"type": "string", "string": None}
    function = prop.settings.get("function")
    if function in ("show_original", "show_unique"):
        return {"type": "array", "array": []}
    if function in ("earliest_date", "latest_date"):
        return {"type": "date", "date": None}
    return {"type": "number", "number": None}


def computed_key(result: dict[str, Any]) -> tuple[str, Any]:
    """(result type, comparable): "" for an empty string, NaN for an empty number or date, and for
    an array the (type, key) of each item; filters test the comparable when the type fits."""
    kind = result["type"]
    if kind == "array":
        return kind, tuple((item["type"], read_value_key(item)) for item in result["array"])
    return kind, _result_comparable(kind, result[kind])


def _result_comparable(kind: str, value: Any) -> Any:
    if kind == "string":
        return value or ""
    if kind == "boolean":
        return bool(value)
    if value is None:
        return math.nan
    return parse_instant(value["start"])[0] if kind == "date" else value  # type: ignore[index]


def read_value_key(item: dict[str, Any]) -> Any:
    """The key of a property value in its read shape (a rollup's items): selects by name."""
    kind, value = item["type"], item[item["type"]]
    if kind in TEXT_TYPES:
        return "".join(part.get("plain_text", part.get("text", {}).get("content", "")) for part in value)
    if kind in ("select", "status"):
        return value["name"] if value else ""
    if kind == "multi_select":
        return tuple(option["name"] for option in value)
    if kind in ("people", "relation"):
        return tuple(ref["id"] for ref in value)
    if kind == "files":
        return tuple(file["name"] for file in value)
    if kind in ("number", "date"):
        return _result_comparable(kind, value)
    if kind == "checkbox":
        return bool(value)
    return value or ""


def value_key(prop_type: str, value: Any) -> Any:
    """The comparable form filters and sorts use; text keys are "" when empty, id lists (), others None."""
    if prop_type in TEXT_TYPES:
        return plain_text(value)
    if prop_type == "date":
        return None if value is None else parse_instant(value["start"])[0]  # type: ignore[index]
    if prop_type in STRING_LIMITS:
        return value or ""
    if prop_type in ID_LIST_TYPES:
        return tuple(value)
    if prop_type == "files":
        return tuple(file["name"] for file in value)
    if prop_type in COMPUTED_TYPES:
        return None if value is None else computed_key(value)
    return value


def render_value(prop: PropertySchema, page: Page, users: Mapping[str, User]) -> dict[str, Any]:
    """The property's value on `page` in Notion's read shape."""
    kind = prop.type
    value: Any = page.values.get(prop.id, EMPTY_VALUES.get(kind))
    body: dict[str, Any] = {"id": prop.id, "type": kind}
    if kind in ("select", "status"):
        value = _render_option(prop, value)
    elif kind == "multi_select":
        value = [rendered for rendered in (_render_option(prop, option_id) for option_id in value) if rendered]
    elif kind == "people":
        value = [_render_user(users, user_id) for user_id in value]
    elif kind == "relation":
        value = [{"id": page_id} for page_id in value]
        body["has_more"] = False  # sent by Notion, absent from the SDK's types; the sandbox never truncates
    elif kind == "formula":
        value = value or default_computed(prop)
    elif kind == "rollup":
        value = {**(value or default_computed(prop)), "function": prop.settings["function"]}
    elif kind == "unique_id":
        value = {"prefix": prop.settings.get("prefix"), "number": value}
    elif kind in ("created_time", "last_edited_time"):
        value = iso_minute(page.created_ms if kind == "created_time" else page.edited_ms)
    elif kind in ("created_by", "last_edited_by"):
        value = _render_user(users, page.created_by if kind == "created_by" else page.edited_by)
    body[kind] = value
    return body


def _render_option(prop: PropertySchema, option_id: str | None) -> dict[str, Any] | None:
    option = prop.option_by_id(option_id) if option_id is not None else None
    return None if option is None else {"id": option.id, "name": option.name, "color": option.color}


def _render_user(users: Mapping[str, User], user_id: str) -> dict[str, Any]:
    """Full user objects, as Notion sends them in property values (a partial one if unknown)."""
    user = users.get(user_id)
    return user.to_json() if user is not None else user_ref(user_id)


def shorthand_write(prop: PropertySchema, value: Any) -> dict[str, Any]:
    """Seed files may give plain values ("Acme", 1200, "Won", "2026-12-01", ["VIP", "EMEA"]);
    expand to the write shape (people and relations are resolved by the workspace first)."""
    if isinstance(value, str) and prop.type in TEXT_TYPES:
        return {
            prop.type: [
                {"text": {"content": value[i : i + MAX_TEXT_CONTENT]}} for i in range(0, len(value), MAX_TEXT_CONTENT)
            ]
        }
    if isinstance(value, str) and prop.type in ("select", "status"):
        return {prop.type: {"name": value}}
    if isinstance(value, str) and prop.type == "date":
        return {"date": {"start": value}}
    if isinstance(value, list) and prop.type == "multi_select":
        return {"multi_select": [{"name": name} if isinstance(name, str) else name for name in value]}
    if isinstance(value, list) and prop.type == "files":
        return {"files": [_external_file(url) if isinstance(url, str) else url for url in value]}
    return {prop.type: value}


def _external_file(url: str) -> dict[str, Any]:
    return {"name": url.rstrip("/").rsplit("/", 1)[-1] or url, "external": {"url": url}}


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


def apply_config(prop: PropertySchema, raw: dict[str, Any], path: str, seeded: bool = False) -> None:
    """Set description and type-specific settings from a config. Relation and rollup settings
    name other properties and data sources, so the workspace resolves those. `seeded`: the
    configuration comes from a seed, which (unlike the API) may define status options."""
    if "description" in raw:
        description = raw["description"]
        if description is not None and not isinstance(description, str):
            raise body_validation(f"{path}.description", "should be a string or `null`", description)
        prop.description = description
    settings = raw.get(prop.type, {})
    if not isinstance(settings, dict):
        raise body_validation(f"{path}.{prop.type}", "should be an object", settings)
    at = f"{path}.{prop.type}"
    if prop.type == "number" and "format" in settings:
        if not isinstance(settings["format"], str):
            raise body_validation(f"{at}.format", "should be a string", settings["format"])
        prop.number_format = settings["format"]
    elif prop.type in ("select", "multi_select") and "options" in settings:
        prop.options = _parse_options(prop, settings["options"], f"{at}.options")
    elif prop.type == "status":
        _apply_status(prop, settings, at, seeded)
    elif prop.type == "formula" and ("expression" in settings or not prop.settings):
        expression = settings.get("expression", MISSING)
        if not isinstance(expression, str):
            raise body_validation(f"{at}.expression", "should be a string", expression)
        prop.settings = {"expression": expression}
    elif prop.type == "unique_id" and ("prefix" in settings or not prop.settings):
        prefix = settings.get("prefix")
        if prefix is not None and (not isinstance(prefix, str) or not prefix.isalnum() or len(prefix) > 10):
            raise body_validation(f"{at}.prefix", "should be up to 10 letters or digits, or `null`", prefix)
        prop.settings = {"prefix": prefix}


def _apply_status(prop: PropertySchema, settings: dict[str, Any], path: str, seeded: bool) -> None:
    """Options and groups: Notion's defaults for a new status property; a seed may give its own
    options and group them by name (`groups: [{name, color, options: [names]}]`)."""
    if settings and not seeded:
        raise validation(f"body failed validation: {path}: status options and groups can't be set through the API.")
    if prop.groups and not settings:
        return
    if "options" in settings:
        prop.options = _parse_options(prop, settings["options"], f"{path}.options")
    elif not prop.options:
        prop.options = [SelectOption(new_id(), option, color) for _, _, option, color in DEFAULT_STATUS]
    raw_groups = settings.get("groups")
    if raw_groups is None:
        prop.groups = [StatusGroup(new_id(), name, color, []) for name, color, _, _ in DEFAULT_STATUS]
        by_name = {option: group for (_, _, option, _), group in zip(DEFAULT_STATUS, prop.groups, strict=True)}
        for option in prop.options:
            by_name.get(option.name, prop.groups[0]).option_ids.append(option.id)
        return
    if not isinstance(raw_groups, list) or not raw_groups:
        raise body_validation(f"{path}.groups", "should be a non-empty array", raw_groups)
    prop.groups = []
    placed: set[str] = set()
    for i, group in enumerate(raw_groups):
        at = f"{path}.groups[{i}]"
        names = group.get("options", []) if isinstance(group, dict) else MISSING
        if not isinstance(group, dict) or not isinstance(group.get("name"), str) or not isinstance(names, list):
            raise body_validation(at, "should be `{name, color?, options: [option names]}`", group)
        color = group.get("color", "gray")
        if not is_color(color, COLORS):
            raise body_validation(f"{at}.color", "should be a select color", color)
        option_ids = []
        for name in names:
            named = prop.option_by_name(name) if isinstance(name, str) else None
            if named is None or named.id in placed:
                raise body_validation(f"{at}.options", "should name each status option once", name)
            placed.add(named.id)
            option_ids.append(named.id)
        prop.groups.append(StatusGroup(new_id(), group["name"], color, option_ids))
    prop.groups[0].option_ids.extend(o.id for o in prop.options if o.id not in placed)


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
    options = [{"id": o.id, "name": o.name, "color": o.color, "description": o.description} for o in prop.options]
    if prop.type == "number":
        settings = {"format": prop.number_format}
    elif prop.type in ("select", "multi_select"):
        settings = {"options": options}
    elif prop.type == "status":
        groups = [{"id": g.id, "name": g.name, "color": g.color, "option_ids": list(g.option_ids)} for g in prop.groups]
        settings = {"options": options, "groups": groups}
    elif prop.type in ("relation", "rollup", "formula", "unique_id"):
        settings = prop.settings
    return {"id": prop.id, "name": prop.name, "description": prop.description, "type": prop.type, prop.type: settings}
