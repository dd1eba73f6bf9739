"""Salesforce record ids: a three-character object prefix, twelve case-sensitive characters, and a
three-character suffix that encodes the case of the first fifteen so that the eighteen-character
form survives case-blind comparison. The API answers with the long form and accepts either."""

from __future__ import annotations

import string

BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
_SUFFIX = string.ascii_uppercase + "012345"
POD = "Sb0"  # the instance part of every id this org issues (any two alphanumerics, then a reserved digit)
_SERIAL_DIGITS = 15 - 3 - len(POD)


def checksum(short: str) -> str:
    """The suffix of a fifteen-character id: per block of five, a bit for each upper-case letter."""
    suffix = ""
    for block in range(3):
        bits = sum(1 << i for i, char in enumerate(short[block * 5 : block * 5 + 5]) if "A" <= char <= "Z")
        suffix += _SUFFIX[bits]
    return suffix


def make_id(prefix: str, serial: int) -> str:
    """The eighteen-character id of the ``serial``-th record with key prefix ``prefix``."""
    digits = ""
    for _ in range(_SERIAL_DIGITS):
        serial, digit = divmod(serial, 62)
        digits = BASE62[digit] + digits
    short = prefix + POD + digits
    return short + checksum(short)


def normal_id(raw: str) -> str | None:
    """The eighteen-character form of a 15- or 18-character id (the long form in any case: its
    suffix restores the case of the rest), or None when ``raw`` is not an id."""
    if len(raw) not in (15, 18) or not raw.isalnum() or not raw.isascii():
        return None
    if len(raw) == 15:
        return raw + checksum(raw)
    suffix = raw[15:].upper()
    if any(char not in _SUFFIX for char in suffix):
        return None
    short = ""
    for block, code in enumerate(suffix):
        bits = _SUFFIX.index(code)
        for i, char in enumerate(raw[block * 5 : block * 5 + 5]):
            short += char.upper() if bits >> i & 1 else char.lower() if char.isalpha() else char
    return short + suffix if checksum(short) == suffix else None
