"""Notion's JSON Schemas (from the official JS SDK's types), real recorded answers, and a
validator for tests.

`validate("PageObjectResponse", page)` raises AssertionError naming the first offending field.
Adapter tests use the `*BodyParameters` schemas to check the request bodies they send.
Real answers carry keys the SDK's types lack (`request_id` on every answer, `has_more` on a
relation value); `official(answer)` removes exactly those before validating.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator
from jsonschema.exceptions import best_match

SCHEMA_DIR = Path(__file__).parent
EXAMPLES_DIR = SCHEMA_DIR / "examples"
RECORDED_DIR = SCHEMA_DIR / "recorded"


@cache
def validator(schema_name: str) -> Draft7Validator:
    """Each file is self-contained: every `$ref` points into its own `definitions`."""
    schema = json.loads((SCHEMA_DIR / f"{schema_name}.schema.json").read_text(encoding="utf-8"))
    return Draft7Validator(schema)


def schema_errors(schema_name: str, instance: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator(schema_name).iter_errors(instance)]


def validate(schema_name: str, instance: Any) -> None:
    errors = list(validator(schema_name).iter_errors(instance))
    if errors:
        error = best_match(errors)
        where = "/".join(map(str, error.absolute_path)) or "<root>"
        raise AssertionError(f"{schema_name}: {where}: {error.message}")


def example(name: str) -> Any:
    return json.loads((EXAMPLES_DIR / f"{name}.json").read_text(encoding="utf-8"))


def recorded(name: str) -> Any:
    """A real answer from api.notion.com: `{"request": {method, path, body}, "status", "response"}`."""
    return json.loads((RECORDED_DIR / f"{name}.json").read_text(encoding="utf-8"))


def official(answer: Any) -> Any:
    """The answer without the keys real Notion sends beyond the SDK's types: the top-level
    `request_id`, and `has_more` on relation values (in a page, or in each page of a list)."""
    if not isinstance(answer, dict):
        return answer
    stripped = {key: value for key, value in answer.items() if key != "request_id"}
    if isinstance(stripped.get("results"), list):
        stripped["results"] = [_without_relation_has_more(item) for item in stripped["results"]]
    return _without_relation_has_more(stripped)


def _without_relation_has_more(item: Any) -> Any:
    if not isinstance(item, dict) or not isinstance(item.get("properties"), dict) or item.get("object") != "page":
        return item
    properties = {
        name: {k: v for k, v in value.items() if not (value.get("type") == "relation" and k == "has_more")}
        for name, value in item["properties"].items()
    }
    return {**item, "properties": properties}
