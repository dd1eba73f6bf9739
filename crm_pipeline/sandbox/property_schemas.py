"""Property configurations: the type a config declares, its settings (number formats, select
and status options and groups, formulas, unique id prefixes), new property ids and a schema's
read shape: what schema editing (crm_pipeline.sandbox.schema) needs. Page writes share only
the rule for option names (`check_option_name`)."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import quote

from .errors import MISSING, body_validation, too_long, validation
from .model import PropertySchema, SelectOption, StatusGroup, new_id
from .properties import COLORS, DEFAULT_STATUS, MAX_ARRAY, MAX_OPTION_NAME, SUPPORTED_TYPES, is_color


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
