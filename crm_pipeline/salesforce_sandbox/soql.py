"""The strict SOQL subset the sync sends, parsed (here), then checked against a schema and run over
rows in memory (``soql_run``).

Anything outside the subset is refused the way Salesforce refuses it, so a connector that leans on
SOQL the emulator does not model fails here instead of in production. The grammar is a dozen rules, so
a hand-written tokenizer and recursive-descent parser serve better than a parser library: no new
dependency, and each refusal gets Salesforce's own error code and a column.

Choices where Salesforce is only partly known (callers match on ``error_code`` only):

* A literal of the wrong kind for its field (a dateTime against a date field, a string against a
  number, a number against a string) is ``INVALID_FIELD``, as Salesforce reports a filter value of the
  wrong type. An operator the field's type does not take (``LIKE`` on a number, ``<`` on a boolean,
  ``<`` with ``null``) and an id literal that is not 15 or 18 letters and digits are
  ``INVALID_QUERY_FILTER_OPERATOR``. ``anyType`` fields (field history values) cannot be filtered or
  sorted: ``INVALID_FIELD``.
* ``totalSize`` is the number of rows the query returns: after WHERE, OFFSET and LIMIT, before the
  caller cuts it into pages. ``COUNT()`` counts the same rows and returns no records.
* Relative date literals (``TODAY``, ``LAST_N_DAYS:n``) and bind variables are refused with
  ``MALFORMED_QUERY``: the sync always sends absolute UTC timestamps.
* Text (string, textarea, picklist) compares and sorts case-insensitively; ids and references compare
  exactly, in comparisons and ORDER BY alike, so keyset paging on ``Id`` stays consistent. 15-character
  ids are not widened to 18. Datetimes compare in UTC at whole seconds.
* A null never satisfies ``=``, ``<``, ``IN`` or ``LIKE`` with a value, and always satisfies ``!=`` and
  ``NOT IN`` (SOQL, unlike SQL, has no unknown truth value).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Literal, NoReturn

FieldType = Literal[
    "id", "string", "textarea", "picklist", "currency", "percent", "double", "int", "date", "datetime", "boolean",
    "reference", "anyType",
]  # fmt: skip
Value = str | Decimal | bool | date | datetime | None
Operator = Literal["=", "!=", "<", "<=", ">", ">=", "IN", "NOT IN", "LIKE"]
MAX_OFFSET = 2_000

TEXT_TYPES: frozenset[str] = frozenset({"string", "textarea", "picklist"})
ID_TYPES: frozenset[str] = frozenset({"id", "reference"})
NUMBER_TYPES: frozenset[str] = frozenset({"currency", "percent", "double", "int"})
_RESERVED = frozenset(
    "select from where and or not in like order by asc desc nulls limit offset null true false count group having "
    "includes excludes typeof using with for update".split()
)
_ESCAPES = {"'": "'", '"': '"', "\\": "\\", "n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", "%": "%", "_": "_"}
ID_PATTERN = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?")
_DATETIME = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.\d+)?(Z|[+-]\d\d:\d\d)")
_TOKEN = re.compile(
    rf"""(?P<space>\s+)
    | (?P<datetime>{_DATETIME.pattern})(?![\w:.])
    | (?P<date>\d{{4}}-\d\d-\d\d)(?![\w:.])
    | (?P<number>-?\d+(?:\.\d+)?)(?![\w.])
    | (?P<string>'(?:[^'\\]|\\.)*')
    | (?P<name>[A-Za-z][A-Za-z0-9_]*)
    | (?P<op>!=|<>|<=|>=|=|<|>|[(),])""",
    re.VERBOSE | re.DOTALL,
)


class SoqlError(Exception):
    """A query Salesforce would refuse: ``error_code`` is Salesforce's errorCode (MALFORMED_QUERY,
    INVALID_FIELD, INVALID_TYPE, NUMBER_OUTSIDE_VALID_RANGE, INVALID_QUERY_FILTER_OPERATOR), ``message``
    a human message naming the problem (position / the field)."""

    def __init__(self, error_code: str, message: str) -> None:
        super().__init__(f"{error_code}: {message}")
        self.error_code = error_code
        self.message = message


@dataclass(frozen=True)
class LikePattern:
    """A LIKE operand: ``pattern`` as written (escapes resolved), ``regex`` what it matches."""

    pattern: str
    regex: str


@dataclass(frozen=True)
class Comparison:
    field: str
    op: Operator
    value: Value | tuple[Value, ...] | LikePattern  # a tuple for IN / NOT IN, a LikePattern for LIKE


@dataclass(frozen=True)
class Not:
    operand: Condition


@dataclass(frozen=True)
class Junction:
    """Operands joined by one connective: SOQL refuses AND and OR mixed without parentheses."""

    op: Literal["AND", "OR"]
    operands: tuple[Condition, ...]


Condition = Comparison | Not | Junction


@dataclass(frozen=True)
class OrderItem:
    field: str
    descending: bool = False
    nulls_first: bool = True  # Salesforce's default is nulls first ascending, nulls last descending


@dataclass(frozen=True)
class Query:
    """A parsed query, not yet checked against a schema; names as written."""

    object_name: str
    fields: tuple[str, ...]  # empty when count_only
    count_only: bool
    where: Condition | None = None
    order_by: tuple[OrderItem, ...] = ()
    limit: int | None = None
    offset: int | None = None


@dataclass(frozen=True)
class BoundQuery:
    """A query checked against a schema; every name in its canonical casing."""

    object_name: str
    fields: tuple[str, ...]  # response keys use these
    count_only: bool
    where: Condition | None
    order_by: tuple[OrderItem, ...]
    limit: int | None
    offset: int | None
    field_types: Mapping[str, FieldType] = dataclass_field(hash=False)  # of every field the query names


@dataclass(frozen=True)
class _Token:
    kind: str  # a group name of _TOKEN, or "end"
    text: str
    column: int  # 1-based, as Salesforce's "ERROR at Row:1:Column:N"

    def is_word(self, *words: str) -> bool:
        return self.kind == "name" and self.text.lower() in words


def _malformed(message: str, token: _Token | None = None) -> NoReturn:
    where = "" if token is None else f" at column {token.column}"
    raise SoqlError("MALFORMED_QUERY", message + where)


def _tokenize(text: str) -> list[_Token]:
    tokens, position = [], 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            _malformed(f"unexpected character {text[position]!r}", _Token("", "", position + 1))
        if match.lastgroup != "space":
            tokens.append(_Token(str(match.lastgroup), match.group(), position + 1))
        position = match.end()
    return [*tokens, _Token("end", "end of query", len(text) + 1)]


def _string(token: _Token, like: bool) -> str:
    """The characters of a quoted literal; for LIKE, as a regex (``%``/``_`` wild unless escaped)."""
    out, raw, i = [], token.text[1:-1], 0
    while i < len(raw):
        char, i = raw[i], i + 1
        if char == "\\":
            if raw[i] not in _ESCAPES:
                _malformed(f"invalid escape sequence \\{raw[i]} in string literal", token)
            char, i = _ESCAPES[raw[i]], i + 1
            out.append(re.escape(char) if like else char)
        elif like:
            out.append({"%": ".*", "_": "."}.get(char) or re.escape(char))
        else:
            out.append(char)
    return "".join(out)


def _datetime(token: _Token) -> datetime:
    match = _DATETIME.fullmatch(token.text)
    assert match is not None  # the tokenizer matched it
    local, zone = match.groups()
    try:  # fractional seconds are dropped: Salesforce compares whole seconds
        offset = timedelta() if zone == "Z" else timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
        value = datetime.fromisoformat(local).replace(tzinfo=timezone(-offset if zone[0] == "-" else offset))
    except ValueError:
        _malformed(f"invalid dateTime {token.text}", token)
    return value.astimezone(UTC)


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.index = 0

    @property
    def peek(self) -> _Token:
        return self.tokens[self.index]

    def take(self) -> _Token:
        token = self.tokens[self.index]
        self.index += min(1, len(self.tokens) - 1 - self.index)
        return token

    def expect_word(self, *words: str) -> _Token:
        if not self.peek.is_word(*words):
            _malformed(f"expected {' or '.join(w.upper() for w in words)}, found {self.peek.text!r}", self.peek)
        return self.take()

    def expect_op(self, op: str) -> None:
        if self.peek.kind != "op" or self.peek.text != op:
            _malformed(f"expected {op!r}, found {self.peek.text!r}", self.peek)
        self.take()

    def name(self, what: str) -> str:
        token = self.take()
        if token.kind != "name" or token.text.lower() in _RESERVED:
            _malformed(f"expected {what}, found {token.text!r}", token)
        if self.peek.kind == "op" and self.peek.text == "(":
            _malformed(f"functions such as {token.text}() are not supported", token)
        return token.text

    def query(self) -> Query:
        self.expect_word("select")
        count_only, fields = self.select_list()
        self.expect_word("from")
        object_name = self.name("an object name")
        where: Condition | None = None
        order_by: tuple[OrderItem, ...] = ()
        if self.peek.is_word("where"):
            self.take()
            where = self.condition()
        if self.peek.is_word("order"):
            self.take()
            self.expect_word("by")
            order_by = self.order_items()
        limit = self.count("limit")
        offset = self.count("offset")
        if self.peek.kind != "end":
            _malformed(f"unexpected token {self.peek.text!r}", self.peek)
        return Query(object_name, fields, count_only, where, order_by, limit, offset)

    def select_list(self) -> tuple[bool, tuple[str, ...]]:
        if self.peek.is_word("count"):
            self.take()
            self.expect_op("(")
            self.expect_op(")")
            return True, ()
        fields = [self.name("a field name")]
        while self.peek.text == ",":
            self.take()
            fields.append(self.name("a field name"))
        folded = [name.lower() for name in fields]
        for index, name in enumerate(fields):
            if folded.index(name.lower()) != index:
                _malformed(f"duplicate field selected: {name}")
        return False, tuple(fields)

    def order_items(self) -> tuple[OrderItem, ...]:
        items = []
        while True:
            name = self.name("a field name")
            descending = self.peek.is_word("asc", "desc") and self.take().text.lower() == "desc"
            nulls_first = not descending
            if self.peek.is_word("nulls"):
                self.take()
                nulls_first = self.expect_word("first", "last").text.lower() == "first"
            items.append(OrderItem(name, descending, nulls_first))
            if self.peek.text != ",":
                return tuple(items)
            self.take()

    def count(self, keyword: str) -> int | None:
        if not self.peek.is_word(keyword):
            return None
        self.take()
        token = self.take()
        if token.kind != "number" or not token.text.isdigit():
            _malformed(f"{keyword.upper()} takes a non-negative integer, found {token.text!r}", token)
        return int(token.text)

    def condition(self) -> Condition:
        operands = [self.term()]
        connective = self.peek.text.upper() if self.peek.is_word("and", "or") else None
        while self.peek.is_word("and", "or"):
            if self.peek.text.upper() != connective:
                _malformed("AND and OR mixed without parentheses", self.peek)
            self.take()
            operands.append(self.term())
        if connective is None:
            return operands[0]
        return Junction("AND" if connective == "AND" else "OR", tuple(operands))

    def term(self) -> Condition:
        if self.peek.is_word("not"):
            self.take()
            return Not(self.term())
        if self.peek.text == "(":
            self.take()
            inner = self.condition()
            self.expect_op(")")
            return inner
        return self.comparison()

    def comparison(self) -> Comparison:
        name = self.name("a field name")
        token = self.take()
        if token.is_word("like"):
            operand = self.take()
            if operand.kind != "string":
                _malformed(f"LIKE takes a quoted string, found {operand.text!r}", operand)
            return Comparison(name, "LIKE", LikePattern(_string(operand, False), _string(operand, True)))
        if token.is_word("not") or token.is_word("in"):
            if token.is_word("not"):
                self.expect_word("in")
            return Comparison(name, "NOT IN" if token.is_word("not") else "IN", self.literal_list())
        if token.kind != "op" or token.text in ("(", ")", ","):
            _malformed(f"expected a comparison operator, found {token.text!r}", token)
        op: Operator = "!=" if token.text == "<>" else token.text  # type: ignore[assignment]
        return Comparison(name, op, self.literal())

    def literal_list(self) -> tuple[Value, ...]:
        self.expect_op("(")
        values = [self.literal()]
        while self.peek.text == ",":
            self.take()
            values.append(self.literal())
        self.expect_op(")")
        return tuple(values)

    def literal(self) -> Value:
        token = self.take()
        if token.kind == "string":
            return _string(token, False)
        if token.kind == "number":
            return Decimal(token.text)
        if token.kind == "datetime":
            return _datetime(token)
        if token.kind == "date":
            try:
                return date.fromisoformat(token.text)
            except ValueError:
                _malformed(f"invalid date {token.text}", token)
        if token.is_word("null", "true", "false"):
            return {"null": None, "true": True, "false": False}[token.text.lower()]
        if token.kind == "name":
            _malformed(f"unsupported literal {token.text} (relative dates and bind variables are not emulated)", token)
        _malformed(f"expected a literal, found {token.text!r}", token)


def parse_soql(text: str) -> Query:
    """Parse one statement of the subset; anything else raises ``SoqlError("MALFORMED_QUERY", …)``."""
    return _Parser(text).query()
