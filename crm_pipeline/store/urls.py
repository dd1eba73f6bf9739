"""Database URLs and their secrets: a URL is parsed only when its parts are unambiguous, and text
about it (descriptions, the driver's messages) is scrubbed of every fragment of its user name and
password before anyone sees it.

A password with an unencoded ``@`` is the classic trap: SQLAlchemy splits at the first ``@``, so
the rest of the password becomes the host, and the driver then prints that "host" in its error.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NoReturn
from urllib.parse import quote

from sqlalchemy import URL, make_url

from crm_pipeline.store.errors import DatabaseURLError

MIN_SECRET_FRAGMENT = 4
"""Scrubbing removes every run of this many characters that also occurs in a secret: short enough
that no recognisable piece of a password survives, long enough that ordinary words in a driver's
message mostly do. A secret shorter than this is removed wherever it occurs whole."""

REDACTED = "***"

_WITHHELD = "(details withheld: they could reveal the password)"

# SQLAlchemy's own split of `dialect://user:password@` (sqlalchemy.engine.url._parse_url): the
# user name stops at ":" or "/", the password at the first "@".
_AFTER_USERINFO = re.compile(r"[\w+]+://(?:[^:/]*(?::[^@]*)?@)?(?P<rest>.*)", re.DOTALL)

_HOW_TO_ENCODE = (
    "percent-encode special characters in the user name and password "
    "(urllib.parse.quote(password, safe='') turns @ into %40, : into %3A, / into %2F)"
)


def parse_database_url(raw: str) -> URL:
    """`raw` as a SQLAlchemy URL, refused (naming no part of it) when it cannot be parsed or when
    its parts are ambiguous: an ``@`` after the user name and password means the password (or user
    name) holds an unencoded ``@``, and the rest of it would be taken for the host or database."""
    try:
        url = make_url(raw)
    except Exception:  # SQLAlchemy's ValueError may quote a piece of the URL, so it goes no further
        url = None
    after_userinfo = _AFTER_USERINFO.match(raw)
    if url is None or after_userinfo is None:
        raise DatabaseURLError(
            f"the database URL cannot be parsed: give dialect://user:password@host:port/database and {_HOW_TO_ENCODE}"
        )
    if "@" in after_userinfo["rest"]:
        raise DatabaseURLError(f"the database URL has more than one unencoded '@': {_HOW_TO_ENCODE}")
    return url


def url_secrets(url: URL) -> list[str]:
    """The password of `url` and its user name (which may be a misplaced password, unless too
    short to tell from ordinary text), each as given and percent-encoded."""
    parts = [url.password or "", url.username if len(url.username or "") >= MIN_SECRET_FRAGMENT else ""]
    return [variant for part in parts if part for variant in (part, quote(part, safe=""))]


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every stretch that shares `MIN_SECRET_FRAGMENT` consecutive characters with a
    secret (ignoring letter case) replaced by `REDACTED`."""
    grams = _fragments(secrets)
    if not grams:
        return text
    folded = _fold(text)
    hidden = [False] * len(text)
    for size, fragments in grams.items():
        for start in range(len(text) - size + 1):
            if folded[start : start + size] in fragments:
                hidden[start : start + size] = [True] * size
    pieces: list[str] = []
    for index, character in enumerate(text):
        if not hidden[index]:
            pieces.append(character)
        elif index == 0 or not hidden[index - 1]:
            pieces.append(REDACTED)
    redacted = "".join(pieces)
    # A secret holding "*" could meet the mask and its neighbours again: then say nothing at all.
    return _WITHHELD if _shares_a_fragment(_fold(redacted), grams) else redacted


def raise_unchained(error: BaseException) -> NoReturn:
    """Raise `error` with no exception chain: `raise ... from None` only hides the exception being
    handled, which still travels along as `__context__` (and a driver's error may hold the URL)."""
    try:
        raise error
    finally:
        error.__context__ = None
        error.__cause__ = None


def _fragments(secrets: Iterable[str]) -> dict[int, set[str]]:
    """Each fragment size (`MIN_SECRET_FRAGMENT`, or a shorter secret's length) → the fragments."""
    grams: dict[int, set[str]] = {}
    for secret in secrets:
        folded = _fold(secret)
        size = min(len(folded), MIN_SECRET_FRAGMENT)
        if size:
            grams.setdefault(size, set()).update(folded[i : i + size] for i in range(len(folded) - size + 1))
    return grams


def _fold(text: str) -> str:
    """`text` in lower case, character for character (so positions still match `text`)."""
    return "".join(lower if len(lower := character.lower()) == 1 else character for character in text)


def _shares_a_fragment(folded: str, grams: dict[int, set[str]]) -> bool:
    return any(
        folded[i : i + size] in fragments for size, fragments in grams.items() for i in range(len(folded) - size + 1)
    )
