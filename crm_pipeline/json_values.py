"""What a text or JSON value must be for PostgreSQL to store it as given: the checks the domain
models run on every text and JSON field before anything is written."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, TypeVar

from pydantic_core import to_json

JsonValue = Any
"""A JSON-shaped value (dict, list, str, number, bool or None) stored as PostgreSQL jsonb."""

MAX_JSON_DEPTH = 32
"""How deeply a JSON field may nest (each object or array is one level). Deal data is a few levels
deep; far deeper is a bug or hostile input, refused before it costs recursion in the change diff,
the serialisers and PostgreSQL's jsonb functions."""

MAX_JSON_BYTES = 256 * 1024
"""The most one JSON field may take, serialised as compact UTF-8 JSON. Every write copies the field
into the change log (old and new value) and every sync sends it to the CRM, so a field is kept to
what an agent's notes on one deal plausibly need (Notion itself caps rich text far lower)."""

_NUL = "\x00"
_T = TypeVar("_T")


def without_nul(text: str) -> str:
    """PostgreSQL text (and jsonb strings) cannot hold the NUL character: refuse it here."""
    if _NUL in text:
        raise ValueError("must not contain the NUL character (\\x00): PostgreSQL cannot store it")
    return text


def json_checked(value: _T) -> _T:
    """Refuse what jsonb cannot hold (see `_json_problem`) and values over `MAX_JSON_BYTES`."""
    found = _json_problem(value, 1)
    if found is not None:
        problem, path = found
        where = "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in reversed(path))
        raise ValueError(problem + (f" (at {where.removeprefix('.')})" if where else ""))
    size = len(to_json(value))
    if size > MAX_JSON_BYTES:
        raise ValueError(f"is {size} bytes as JSON; the most a JSON field may take is {MAX_JSON_BYTES} bytes")
    return value


def _json_problem(value: Any, depth: int) -> tuple[str, list[str | int]] | None:
    """Why `value` is not plain JSON that jsonb stores as given, and where (the path from the
    innermost step out), or None if it is.

    Only what `json.loads` returns is allowed: no sets, tuples, datetimes, bytes or Decimals (each
    serialiser would convert them differently, or not at all), no NaN or Infinity (not JSON), no
    NUL in strings or keys (jsonb refuses \\u0000), and no nesting beyond `MAX_JSON_DEPTH`.
    """
    if value is None or isinstance(value, bool | int):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else (f"holds {value}, which JSON cannot represent", [])
    if isinstance(value, str):
        return ("holds a NUL character (\\u0000), which jsonb cannot store", []) if _NUL in value else None
    if not isinstance(value, dict | list):
        return f"holds a {type(value).__name__}, which is not a JSON value (use a string or number)", []
    if depth > MAX_JSON_DEPTH:
        return f"nests deeper than {MAX_JSON_DEPTH} levels", []
    items: Iterable[tuple[str | int, Any]]
    if isinstance(value, list):
        items = enumerate(value)
    else:
        for key in value:
            if not isinstance(key, str):
                return f"has a key of type {type(key).__name__} ({key!r}); JSON object keys are strings", []
            if _NUL in key:
                return "has a key holding a NUL character (\\u0000), which jsonb cannot store", []
        items = value.items()
    for step, item in items:
        found = _json_problem(item, depth + 1)
        if found is not None:
            found[1].append(step)
            return found
    return None
