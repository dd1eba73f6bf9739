"""Property types and values: what reads and writes share, and rendering Notion's read shape.

Stored values are normalized once on write: rich text as fully rendered items, selects and
statuses as option ids, multi-selects, people and relations as id lists, dates as
`{start, end, time_zone}`, formula and rollup results as their read shape. Each value also gets a
comparable *key* (plain text, number, option id, id tuple, epoch ms, bool) that filters and sorts
read without any parsing. The page's own times and editors back the four timestamp and user types,
so they are never stored. Validating a page write is in crm_pipeline.sandbox.value_parsing, property
configurations in crm_pipeline.sandbox.property_schemas.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from crm_pipeline.emulation.clock import iso_minute

from .errors import MISSING, body_validation, too_long, validation
from .model import Page, PropertySchema, SelectOption, User, user_ref

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


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


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
