"""The emulator's SOQL subset: each clause, each refusal with its error code, the queries the sync
sends, and WHERE / ORDER BY / LIMIT / OFFSET checked against plain Python over generated rows."""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_pipeline.salesforce_sandbox.soql import (
    MAX_OFFSET,
    BoundQuery,
    Comparison,
    FieldType,
    Junction,
    LikePattern,
    Not,
    OrderItem,
    SoqlError,
    parse_soql,
)
from crm_pipeline.salesforce_sandbox.soql_run import bind, execute

SCHEMA: dict[str, dict[str, FieldType]] = {
    "Opportunity": {
        "Id": "id", "Name": "string", "StageName": "picklist", "Amount": "currency", "CloseDate": "date",
        "Probability": "percent", "Description": "textarea", "Sync_Key__c": "string", "LastModifiedDate": "datetime",
        "LastModifiedById": "reference", "SystemModstamp": "datetime", "IsDeleted": "boolean", "IsWon": "boolean",
    },
    "OpportunityStage": {
        "Id": "id", "ApiName": "string", "MasterLabel": "string", "DefaultProbability": "percent",
        "ForecastCategoryName": "picklist", "IsClosed": "boolean", "IsWon": "boolean", "IsActive": "boolean",
        "SortOrder": "int",
    },
    "OpportunityFieldHistory": {
        "Id": "id", "OpportunityId": "reference", "Field": "picklist", "OldValue": "anyType", "NewValue": "anyType",
        "CreatedById": "reference", "CreatedDate": "datetime",
    },
    "User": {"Id": "id", "Username": "string"},
    "Task": {"Id": "id", "Subject": "string", "WhatId": "reference"},
}  # fmt: skip

OPP_IDS = [f"0060000000000{n:02d}AAA" for n in range(1, 6)]
USER = "005000000000001AAA"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def opportunity(n: int, stamp: datetime, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(SCHEMA["Opportunity"])
    row.update(
        Id=OPP_IDS[n], Name=f"Deal {n}", StageName="Prospecting", Amount=Decimal(n * 100), CloseDate=date(2026, 3, n + 1),
        Probability=Decimal(10), Sync_Key__c=f"key{n}", LastModifiedDate=stamp, LastModifiedById=USER,
        SystemModstamp=stamp, IsDeleted=False, IsWon=False,
    )  # fmt: skip
    row.update(values)
    return row


OPPORTUNITIES = [
    opportunity(0, T0 - timedelta(seconds=1)),
    opportunity(1, T0, Amount=None, Description="Long notes"),
    opportunity(2, T0 + timedelta(hours=1), StageName="Closed Won", IsWon=True, Name="ACME renewal"),
    opportunity(3, T0, Name="acme expansion"),
    opportunity(4, T0 + timedelta(minutes=5), IsDeleted=True, Name="50% off_deal"),
]


def run(soql: str, rows: list[dict[str, Any]] = OPPORTUNITIES) -> tuple[int, list[dict[str, Any]]]:
    return execute(bind(parse_soql(soql), SCHEMA), rows)


def ids(soql: str, rows: list[dict[str, Any]] = OPPORTUNITIES) -> list[str]:
    return [record["Id"] for record in run(soql, rows)[1]]


def error_code(soql: str) -> str:
    with pytest.raises(SoqlError) as caught:
        bind(parse_soql(soql), SCHEMA)
    assert caught.value.message
    return caught.value.error_code


# Parsing


def test_select_list_from_and_keywords_in_any_case() -> None:
    query = parse_soql("select Id,name , Sync_Key__c FrOm opportunity")
    assert (query.object_name, query.fields, query.count_only, query.where) == (
        "opportunity",
        ("Id", "name", "Sync_Key__c"),
        False,
        None,
    )


def test_count_only() -> None:
    query = parse_soql("SELECT COUNT() FROM Opportunity")
    assert (query.fields, query.count_only) == ((), True)


def test_where_operators_and_literals() -> None:
    where = parse_soql(
        "SELECT Id FROM Opportunity WHERE Name = 'it\\'s \\\\ \\n\\t\\\"' AND Amount <> -12.50 AND CloseDate <= 2026-03-31"
        " AND IsWon != TRUE AND Description = null AND StageName NOT IN ('a', 'b') AND Probability IN (10, 20)"
    ).where
    assert where == Junction(
        "AND",
        (
            Comparison("Name", "=", "it's \\ \n\t\""),
            Comparison("Amount", "!=", Decimal("-12.50")),
            Comparison("CloseDate", "<=", date(2026, 3, 31)),
            Comparison("IsWon", "!=", True),
            Comparison("Description", "=", None),
            Comparison("StageName", "NOT IN", ("a", "b")),
            Comparison("Probability", "IN", (Decimal(10), Decimal(20))),
        ),
    )


@pytest.mark.parametrize(
    ("literal", "utc"),
    [
        ("2026-01-01T00:00:00Z", datetime(2026, 1, 1, tzinfo=UTC)),
        ("2026-01-01T01:30:00+01:30", datetime(2026, 1, 1, tzinfo=UTC)),
        ("2025-12-31T16:00:00-08:00", datetime(2026, 1, 1, tzinfo=UTC)),
        ("2026-01-01T00:00:00.999999Z", datetime(2026, 1, 1, tzinfo=UTC)),  # whole seconds
    ],
)
def test_datetime_literals_are_utc_whole_seconds(literal: str, utc: datetime) -> None:
    assert parse_soql(f"SELECT Id FROM Opportunity WHERE SystemModstamp > {literal}").where == Comparison(
        "SystemModstamp", ">", utc
    )


def test_not_parentheses_and_like() -> None:
    where = parse_soql(
        "SELECT Id FROM Opportunity WHERE NOT (Name LIKE 'a\\%_%' OR Amount > 1) AND NOT IsWon = false"
    ).where
    assert where == Junction(
        "AND",
        (
            Not(
                Junction(
                    "OR",
                    (Comparison("Name", "LIKE", LikePattern("a%_%", "a%..*")), Comparison("Amount", ">", Decimal(1))),
                )
            ),
            Not(Comparison("IsWon", "=", False)),
        ),
    )


def test_order_by_defaults_limit_and_offset() -> None:
    query = parse_soql(
        "SELECT Id FROM Opportunity ORDER BY Name, Amount DESC, CloseDate ASC NULLS LAST, Id desc nulls first"
        " LIMIT 10 OFFSET 20"
    )
    assert query.order_by == (
        OrderItem("Name", False, True),
        OrderItem("Amount", True, False),
        OrderItem("CloseDate", False, False),
        OrderItem("Id", True, True),
    )
    assert (query.limit, query.offset) == (10, 20)


@pytest.mark.parametrize(
    "soql",
    [
        "",
        "SELECT FROM Opportunity",
        "SELECT Id Opportunity",
        "SELECT Id FROM Opportunity WHERE",
        "SELECT Id FROM Opportunity trailing",
        "SELECT Id, id FROM Opportunity",  # a field twice
        "SELECT Account.Name FROM Opportunity",  # relationship paths
        "SELECT Id, (SELECT Id FROM Tasks) FROM Opportunity",  # subqueries
        "SELECT Id FROM Opportunity WHERE AccountId IN (SELECT Id FROM Account)",
        "SELECT FIELDS(ALL) FROM Opportunity LIMIT 200",
        "SELECT COUNT(Id) FROM Opportunity",
        "SELECT toLabel(StageName) FROM Opportunity",
        "SELECT TYPEOF What WHEN Opportunity THEN Name END FROM Task",
        "SELECT StageName FROM Opportunity GROUP BY StageName",
        "SELECT Id FROM Opportunity WHERE Name = 'a' AND Amount = 1 OR IsWon = true",  # AND and OR mixed
        "SELECT Id FROM Opportunity WHERE Name = 'a' OR Amount = 1 AND IsWon = true",
        "SELECT Id FROM Opportunity WHERE CloseDate = TODAY",  # relative dates
        "SELECT Id FROM Opportunity WHERE CloseDate = LAST_N_DAYS:5",
        "SELECT Id FROM Opportunity WHERE Name = :name",  # bind variables
        "SELECT Id FROM Opportunity WHERE CALENDAR_YEAR(CloseDate) = 2026",
        'SELECT Id FROM Opportunity WHERE Name = "double"',
        "SELECT Id FROM Opportunity WHERE Name = 'unterminated",
        "SELECT Id FROM Opportunity WHERE Name = 'bad \\x escape'",
        "SELECT Id FROM Opportunity WHERE Name == 'a'",
        "SELECT Id FROM Opportunity WHERE Name NOT LIKE 'a%'",
        "SELECT Id FROM Opportunity WHERE Name LIKE null",
        "SELECT Id FROM Opportunity WHERE Name IN ()",
        "SELECT Id FROM Opportunity WHERE (Name = 'a'",
        "SELECT Id FROM Opportunity WHERE CloseDate = 2026-02-30",
        "SELECT Id FROM Opportunity WHERE SystemModstamp > 2026-01-01T00:00:00",  # no zone
        "SELECT Id FROM Opportunity WHERE SystemModstamp > 2026-01-01T00:00:00-0800",  # offset without a colon
        "SELECT Id FROM Opportunity WHERE SystemModstamp > 2026-01-01T25:00:00Z",
        "SELECT Id FROM Opportunity WHERE SystemModstamp > 2026-01-01T00:00:00+24:00",
        "SELECT Id FROM Opportunity LIMIT -1",
        "SELECT Id FROM Opportunity LIMIT 1.5",
        "SELECT Id FROM Opportunity OFFSET 5 LIMIT 5",  # LIMIT comes first
        "SELECT Id FROM Opportunity ORDER BY Name NULLS",
        "SELECT Id FROM Opportunity ORDER BY",
    ],
)
def test_malformed_queries(soql: str) -> None:
    with pytest.raises(SoqlError) as caught:
        parse_soql(soql)
    assert caught.value.error_code == "MALFORMED_QUERY"


def test_malformed_messages_name_the_column() -> None:
    with pytest.raises(SoqlError, match="column 23"):
        parse_soql("SELECT Id FROM Account.Name")


# Binding


def test_bind_gives_canonical_casing() -> None:
    query = bind(
        parse_soql("select id, NAME from opportunity where stagename = 'x' order by systemmodstamp desc"), SCHEMA
    )
    assert isinstance(query, BoundQuery)
    assert (query.object_name, query.fields) == ("Opportunity", ("Id", "Name"))
    assert query.where == Comparison("StageName", "=", "x")
    assert query.order_by == (OrderItem("SystemModstamp", True, False),)


@pytest.mark.parametrize(
    ("soql", "code"),
    [
        ("SELECT Id FROM Opportunities", "INVALID_TYPE"),
        ("SELECT Id FROM Account", "INVALID_TYPE"),
        ("SELECT Id, Foo__c FROM Opportunity", "INVALID_FIELD"),
        ("SELECT Id FROM Opportunity WHERE Foo__c = 'a'", "INVALID_FIELD"),
        ("SELECT Id FROM Opportunity WHERE NOT (Name = 'a' OR Foo__c IN ('a'))", "INVALID_FIELD"),
        ("SELECT Id FROM Opportunity ORDER BY Foo__c", "INVALID_FIELD"),
        # a literal of the wrong kind for its field
        ("SELECT Id FROM Opportunity WHERE CloseDate = 2026-01-01T00:00:00Z", "INVALID_FIELD"),
        ("SELECT Id FROM Opportunity WHERE SystemModstamp >= 2026-01-01", "INVALID_FIELD"),
        ("SELECT Id FROM Opportunity WHERE CloseDate = '2026-01-01'", "INVALID_FIELD"),
        ("SELECT Id FROM Opportunity WHERE Amount > '100'", "INVALID_FIELD"),
        ("SELECT Id FROM Opportunity WHERE Name = 5", "INVALID_FIELD"),
        ("SELECT Id FROM Opportunity WHERE IsWon = 'true'", "INVALID_FIELD"),
        ("SELECT Id FROM Opportunity WHERE IsWon = 1", "INVALID_FIELD"),
        ("SELECT Id FROM Opportunity WHERE Amount IN (1, 'two')", "INVALID_FIELD"),
        ("SELECT Id FROM Opportunity WHERE Id = 6", "INVALID_FIELD"),
        # history values cannot be filtered or sorted
        ("SELECT Id FROM OpportunityFieldHistory WHERE NewValue = 'x'", "INVALID_FIELD"),
        ("SELECT Id FROM OpportunityFieldHistory ORDER BY OldValue", "INVALID_FIELD"),
        # an operator the field's type does not take
        ("SELECT Id FROM Opportunity WHERE Amount LIKE '1%'", "INVALID_QUERY_FILTER_OPERATOR"),
        ("SELECT Id FROM Opportunity WHERE IsWon > false", "INVALID_QUERY_FILTER_OPERATOR"),
        ("SELECT Id FROM Opportunity WHERE Amount < null", "INVALID_QUERY_FILTER_OPERATOR"),
        ("SELECT Id FROM Opportunity WHERE Id = '006'", "INVALID_QUERY_FILTER_OPERATOR"),
        ("SELECT Id FROM Task WHERE WhatId IN ('0060000000000010AA', 'not-an-id')", "INVALID_QUERY_FILTER_OPERATOR"),
        (f"SELECT Id FROM Opportunity LIMIT 10 OFFSET {MAX_OFFSET + 1}", "NUMBER_OUTSIDE_VALID_RANGE"),
    ],
)
def test_bind_refusals(soql: str, code: str) -> None:
    assert error_code(soql) == code


def test_offset_up_to_the_cap_and_15_character_ids_bind() -> None:
    bind(parse_soql(f"SELECT Id FROM Opportunity WHERE Id = '006000000000001' OFFSET {MAX_OFFSET}"), SCHEMA)


# The sync's queries


def test_incremental_read() -> None:
    total, records = run(
        "SELECT Id, Name, StageName, Amount, CloseDate, Probability, Description, Sync_Key__c, LastModifiedDate,"
        " LastModifiedById, SystemModstamp, IsDeleted FROM Opportunity WHERE SystemModstamp >= 2026-01-01T00:00:00Z"
        " ORDER BY SystemModstamp, Id LIMIT 2000"
    )
    assert total == 4
    assert [r["Id"] for r in records] == [OPP_IDS[1], OPP_IDS[3], OPP_IDS[4], OPP_IDS[2]]
    assert list(records[0]) == [
        "Id", "Name", "StageName", "Amount", "CloseDate", "Probability", "Description", "Sync_Key__c",
        "LastModifiedDate", "LastModifiedById", "SystemModstamp", "IsDeleted",
    ]  # fmt: skip
    assert records[0]["Amount"] is None and records[0]["Description"] == "Long notes"


def test_keyset_continuation() -> None:
    assert ids(
        "SELECT Id FROM Opportunity WHERE (SystemModstamp > 2026-01-01T00:00:00Z)"
        f" OR (SystemModstamp = 2026-01-01T00:00:00Z AND Id > '{OPP_IDS[1]}') ORDER BY SystemModstamp, Id"
    ) == [OPP_IDS[3], OPP_IDS[4], OPP_IDS[2]]


def test_ids_in() -> None:
    assert ids(f"SELECT Id FROM Opportunity WHERE Id IN ('{OPP_IDS[4]}', '{OPP_IDS[0]}', '006000000000099AAA')") == [
        OPP_IDS[0],
        OPP_IDS[4],
    ]


def test_ids_compare_exactly() -> None:
    assert ids(f"SELECT Id FROM Opportunity WHERE Id = '{OPP_IDS[2].lower()}'") == []


def test_opportunity_stages() -> None:
    stages: list[dict[str, Any]] = [
        {"Id": "01J000000000001AAA", "ApiName": "Prospecting", "MasterLabel": "Prospecting",
         "DefaultProbability": Decimal(10), "ForecastCategoryName": "Pipeline", "IsClosed": False, "IsWon": False,
         "IsActive": True, "SortOrder": 1},
    ]  # fmt: skip
    total, records = run(
        "SELECT ApiName, MasterLabel, DefaultProbability, ForecastCategoryName, IsClosed, IsWon, IsActive, SortOrder"
        " FROM OpportunityStage",
        stages,
    )
    assert total == 1
    assert records == [{k: v for k, v in stages[0].items() if k != "Id"}]


def test_field_history() -> None:
    def change(n: int, opportunity: int, at: datetime) -> dict[str, Any]:
        return {"Id": f"017000000000{n:03d}AAA", "OpportunityId": OPP_IDS[opportunity], "Field": "StageName",
                "OldValue": "a", "NewValue": "b", "CreatedById": USER, "CreatedDate": at}  # fmt: skip

    history = [change(1, 0, T0 + timedelta(seconds=9)), change(2, 1, T0), change(3, 0, T0 - timedelta(seconds=1))]
    history.append(change(4, 2, T0 + timedelta(seconds=3)))
    total, records = run(
        "SELECT OpportunityId, Field, OldValue, NewValue, CreatedById, CreatedDate FROM OpportunityFieldHistory"
        f" WHERE CreatedDate >= 2026-01-01T00:00:00Z AND OpportunityId IN ('{OPP_IDS[0]}', '{OPP_IDS[1]}')"
        " ORDER BY CreatedDate",
        history,
    )
    assert total == 2
    assert [(r["OpportunityId"], r["CreatedDate"]) for r in records] == [
        (OPP_IDS[1], T0),
        (OPP_IDS[0], T0 + timedelta(seconds=9)),
    ]


def test_user_by_username_ignores_case() -> None:
    users = [{"Id": USER, "Username": "Sync@Example.com"}, {"Id": "005000000000002AAA", "Username": "other@x.com"}]
    assert run("SELECT Id FROM User WHERE Username = 'sync@example.COM'", users) == (1, [{"Id": USER}])


def test_tasks_of_an_opportunity() -> None:
    tasks: list[dict[str, Any]] = [
        {"Id": "00T000000000001AAA", "Subject": "Call", "WhatId": OPP_IDS[0]},
        {"Id": "00T000000000002AAA", "Subject": "Email", "WhatId": OPP_IDS[1]},
        {"Id": "00T000000000003AAA", "Subject": "Note", "WhatId": None},
    ]
    assert run(f"SELECT Id, Subject FROM Task WHERE WhatId = '{OPP_IDS[1]}'", tasks) == (
        1,
        [{"Id": "00T000000000002AAA", "Subject": "Email"}],
    )


# Execution semantics


def test_nulls_in_filters() -> None:
    assert ids("SELECT Id FROM Opportunity WHERE Amount = null") == [OPP_IDS[1]]
    assert len(ids("SELECT Id FROM Opportunity WHERE Amount != null")) == 4
    assert ids("SELECT Id FROM Opportunity WHERE Description != 'Long notes'") == [OPP_IDS[i] for i in (0, 2, 3, 4)]
    assert ids("SELECT Id FROM Opportunity WHERE Amount < 250") == [OPP_IDS[0], OPP_IDS[2]]
    assert ids("SELECT Id FROM Opportunity WHERE Amount NOT IN (0, 200)") == [OPP_IDS[i] for i in (1, 3, 4)]
    assert ids("SELECT Id FROM Opportunity WHERE Amount IN (null, 300)") == [OPP_IDS[1], OPP_IDS[3]]


def test_like_is_case_insensitive_with_escapes() -> None:
    assert ids("SELECT Id FROM Opportunity WHERE Name LIKE 'acme%'") == [OPP_IDS[2], OPP_IDS[3]]
    assert ids("SELECT Id FROM Opportunity WHERE Name LIKE 'deal _'") == [OPP_IDS[0], OPP_IDS[1]]
    assert ids("SELECT Id FROM Opportunity WHERE Name LIKE '50\\%%'") == [OPP_IDS[4]]
    assert ids("SELECT Id FROM Opportunity WHERE Name LIKE '%\\_deal'") == [OPP_IDS[4]]
    assert ids("SELECT Id FROM Opportunity WHERE Name LIKE '5_\\_%'") == []
    assert ids("SELECT Id FROM Opportunity WHERE Description LIKE '%'") == [OPP_IDS[1]]  # never a null


def test_text_equality_ignores_case() -> None:
    assert ids("SELECT Id FROM Opportunity WHERE StageName IN ('closed won')") == [OPP_IDS[2]]
    assert ids("SELECT Id FROM Opportunity WHERE Name = 'ACME EXPANSION'") == [OPP_IDS[3]]


def test_datetime_literal_with_offset_compares_in_utc() -> None:
    assert ids("SELECT Id FROM Opportunity WHERE SystemModstamp = 2026-01-01T01:00:00+01:00") == [
        OPP_IDS[1],
        OPP_IDS[3],
    ]


def test_stored_fractions_of_a_second_are_ignored() -> None:
    rows = [opportunity(0, T0 + timedelta(microseconds=999_999))]
    assert ids("SELECT Id FROM Opportunity WHERE SystemModstamp = 2026-01-01T00:00:00Z", rows) == [OPP_IDS[0]]


def test_order_by_nulls_and_text_case() -> None:
    assert ids("SELECT Id FROM Opportunity ORDER BY Amount") == [OPP_IDS[i] for i in (1, 0, 2, 3, 4)]
    assert ids("SELECT Id FROM Opportunity ORDER BY Amount DESC") == [OPP_IDS[i] for i in (4, 3, 2, 0, 1)]
    assert ids("SELECT Id FROM Opportunity ORDER BY Amount DESC NULLS FIRST")[0] == OPP_IDS[1]
    assert ids("SELECT Id FROM Opportunity ORDER BY Amount NULLS LAST")[-1] == OPP_IDS[1]
    assert ids("SELECT Id FROM Opportunity ORDER BY Name") == [OPP_IDS[i] for i in (4, 3, 2, 0, 1)]


def test_limit_offset_and_total_size() -> None:
    assert run("SELECT Id FROM Opportunity ORDER BY Id LIMIT 2 OFFSET 1") == (
        2,
        [{"Id": OPP_IDS[1]}, {"Id": OPP_IDS[2]}],
    )
    assert run("SELECT Id FROM Opportunity ORDER BY Id OFFSET 4") == (1, [{"Id": OPP_IDS[4]}])
    assert run("SELECT Id FROM Opportunity LIMIT 0") == (0, [])
    assert run("SELECT COUNT() FROM Opportunity") == (5, [])
    assert run("SELECT COUNT() FROM Opportunity WHERE IsWon = true OR IsDeleted = true") == (2, [])
    assert run("SELECT count() FROM Opportunity LIMIT 3") == (3, [])


# Properties: WHERE against a plain Python predicate; ORDER BY, LIMIT and OFFSET against a sort


FIELDS: dict[str, FieldType] = {
    "Id": "id",
    "Name": "string",
    "Amount": "currency",
    "CloseDate": "date",
    "IsWon": "boolean",
}
GEN_SCHEMA = {"Deal": FIELDS}
texts = st.text(alphabet="aAb'", max_size=3)
values: dict[str, st.SearchStrategy[Any]] = {
    "Name": texts,
    "Amount": st.integers(-3, 3).map(lambda n: Decimal(n) / 2),
    "CloseDate": st.dates(date(2026, 1, 1), date(2026, 1, 5)),
    "IsWon": st.booleans(),
}


@st.composite
def rows(draw: st.DrawFn) -> list[dict[str, Any]]:
    count = draw(st.integers(0, 12))
    return [
        {"Id": f"a00{n:015d}", **{name: draw(st.none() | strategy) for name, strategy in values.items()}}
        for n in range(count)
    ]


def soql_literal(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "TRUE" if value else "false"
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return str(value) if isinstance(value, Decimal) else value.isoformat()


@st.composite
def comparisons(draw: st.DrawFn) -> tuple[str, Any]:
    name = draw(st.sampled_from(sorted(values)))
    if name == "Name" and draw(st.booleans()):
        pattern = draw(st.text(alphabet="aB%_", max_size=3))
        return f"Name LIKE '{pattern}'", ("LIKE", name, pattern)
    ops = ["=", "!="] if name == "IsWon" else ["=", "!=", "<", "<=", ">", ">=", "IN", "NOT IN"]
    op = draw(st.sampled_from(ops))
    if op in ("IN", "NOT IN"):
        literals = draw(st.lists(st.none() | values[name], min_size=1, max_size=3))
        return f"{name} {op} ({', '.join(map(soql_literal, literals))})", (op, name, literals)
    literal = draw((st.none() | values[name]) if op in ("=", "!=") else values[name])
    return f"{name} {op} {soql_literal(literal)}", (op, name, literal)


def conditions() -> st.SearchStrategy[tuple[str, Any]]:
    def extend(inner: st.SearchStrategy[tuple[str, Any]]) -> st.SearchStrategy[tuple[str, Any]]:
        negated = inner.map(lambda c: (f"NOT ({c[0]})", ("NOT", c[1])))
        joined = st.tuples(st.sampled_from(["AND", "OR"]), st.lists(inner, min_size=2, max_size=3)).map(
            lambda j: (f" {j[0]} ".join(f"({c[0]})" for c in j[1]), (j[0], [c[1] for c in j[1]]))
        )
        return negated | joined

    return st.recursive(comparisons(), extend, max_leaves=6)


def folded(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def holds(tree: Any, row: Mapping[str, Any]) -> bool:
    """The subset's WHERE semantics written plainly: text ignores case, a null only equals null."""
    match tree:
        case ("NOT", inner):
            return not holds(inner, row)
        case ("AND" | "OR" as op, parts):
            return (all if op == "AND" else any)(holds(part, row) for part in parts)
        case ("LIKE", name, pattern):
            glob = pattern.replace("%", "*").replace("_", "?").lower()
            return row[name] is not None and fnmatch.fnmatchcase(str(row[name]).lower(), glob)
        case ("IN" | "NOT IN" as op, name, literals):
            return (folded(row[name]) in [folded(v) for v in literals]) is (op == "IN")
        case (op, name, literal):
            actual, expected = folded(row[name]), folded(literal)
            if actual is None or expected is None:
                return bool(op == ("=" if actual is expected else "!="))
            return bool({"=": actual == expected, "!=": actual != expected, "<": actual < expected,
                    "<=": actual <= expected, ">": actual > expected, ">=": actual >= expected}[op])  # fmt: skip
    raise AssertionError(tree)


@settings(deadline=None)  # a result, never a duration, decides these tests
@given(rows(), conditions())
def test_where_agrees_with_python(data: list[dict[str, Any]], condition: tuple[str, Any]) -> None:
    text, tree = condition
    total, records = execute(bind(parse_soql(f"SELECT Id FROM Deal WHERE {text}"), GEN_SCHEMA), data)
    expected = [row["Id"] for row in data if holds(tree, row)]
    assert (total, [r["Id"] for r in records]) == (len(expected), expected)


@settings(deadline=None)
@given(
    rows(),
    st.lists(st.tuples(st.sampled_from(sorted(values)), st.booleans(), st.none() | st.booleans()), max_size=3),
    st.none() | st.integers(0, 12),
    st.none() | st.integers(0, 12),
)
def test_order_by_sorts_and_limit_offset_slice(
    data: list[dict[str, Any]], keys: list[tuple[str, bool, bool | None]], limit: int | None, offset: int | None
) -> None:
    order = ", ".join(
        f"{name} {'DESC' if desc else 'ASC'}" + ("" if nulls is None else f" NULLS {'FIRST' if nulls else 'LAST'}")
        for name, desc, nulls in keys
    )
    soql = "SELECT Id, Name, Amount, CloseDate, IsWon FROM Deal" + (f" ORDER BY {order}" if keys else "")
    total, everything = execute(bind(parse_soql(soql), GEN_SCHEMA), data)
    assert total == len(data) and sorted(r["Id"] for r in everything) == [r["Id"] for r in data]

    def compare(a: Mapping[str, Any], b: Mapping[str, Any]) -> int:
        for name, desc, nulls in keys:
            x, y = folded(a[name]), folded(b[name])
            if (x is None) != (y is None):
                first = (not desc) if nulls is None else nulls  # nulls first ascending, last descending
                return -1 if (x is None) == first else 1
            if x is not None and x != y:
                return (-1 if x < y else 1) * (-1 if desc else 1)
        return 0

    assert everything == sorted(everything, key=functools.cmp_to_key(compare))
    sliced = soql + ("" if limit is None else f" LIMIT {limit}") + ("" if offset is None else f" OFFSET {offset}")
    start = offset or 0
    expected = everything[start : None if limit is None else start + limit]
    assert execute(bind(parse_soql(sliced), GEN_SCHEMA), data) == (len(expected), expected)
