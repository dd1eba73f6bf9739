"""Notion's JSON Schemas (from the official JS SDK's types) and a validator for tests.

`validate("PageObjectResponse", page)` raises AssertionError naming the first offending field.
Adapter tests use the `*BodyParameters` schemas to check the request bodies they send.
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
