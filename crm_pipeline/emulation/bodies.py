"""Request bodies, parsed once for the emulated APIs and their control surfaces alike.

JSON allows things no handler should ever see: nesting deep enough to exhaust Python's recursion
limit, `\\ud800` escapes that decode to lone UTF-16 surrogates (which cannot be encoded as UTF-8,
so a stored one would break every later response and every save), and numbers beyond a double
(`1e400` parses as infinity). All are refused here, before anything is read or written, with a
`BadRequest` naming the field, which each emulator renders as its API's 400.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from .errors import BadRequest

MAX_DEPTH = 100  # nested arrays and objects; real API bodies stay far below this
_Path = tuple[Any, ...] | None  # (parent path, key) chains, turned into text only for an error


def parse_json_body(raw: bytes) -> Any:
    """Strict UTF-8 JSON without NaN or Infinity, at most MAX_DEPTH deep, every string valid Unicode
    and every number a finite double; `{}` for an empty body."""
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except RecursionError:
        raise _too_deep() from None
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("Error parsing JSON body.", "invalid_json") from None
    _check(body)
    return body


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def _too_deep() -> BadRequest:
    return BadRequest(f"body failed validation: body is nested more than {MAX_DEPTH} levels deep.")


def _check(body: Any) -> None:
    """One iterative walk (no recursion, so depth alone cannot break it)."""
    stack: list[tuple[Any, int, _Path]] = [(body, 1, None)]
    while stack:
        value, depth, path = stack.pop()
        if depth > MAX_DEPTH:
            raise _too_deep()
        if isinstance(value, dict):
            for key, item in value.items():
                if not _is_unicode(key):
                    raise _not_unicode(f"{_text(path)} has a key that", key)
                _check_item(stack, item, depth, (path, key))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                _check_item(stack, item, depth, (path, index))


def _check_item(stack: list[tuple[Any, int, _Path]], item: Any, depth: int, path: _Path) -> None:
    if isinstance(item, dict | list):
        stack.append((item, depth + 1, path))
    elif isinstance(item, str):
        if not _is_unicode(item):
            raise _not_unicode(_text(path), item)
    elif isinstance(item, int | float) and not isinstance(item, bool) and not abs(item) <= sys.float_info.max:
        raise BadRequest(
            f"body failed validation: {_text(path)} should be a finite number, instead was `{json.dumps(item)}`."
        )


def _is_unicode(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _not_unicode(subject: str, text: str) -> BadRequest:
    shown = json.dumps(text)  # ASCII escapes: the message itself must stay encodable
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return BadRequest(
        f"body failed validation: {subject} should be valid Unicode text "
        f"(it holds a lone UTF-16 surrogate), instead was `{shown}`."
    )


def _text(path: _Path) -> str:
    keys: list[Any] = []
    while path is not None:
        path, key = path
        keys.append(key)
    text = "body"
    for key in reversed(keys):
        text += f"[{key}]" if isinstance(key, int) else f".{key}"
    return text
