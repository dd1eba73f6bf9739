"""Malformed requests get Notion's status, code and a message naming the field; nothing is written."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from unittest.mock import ANY

import httpx
import pytest
from notion_client import APIResponseError, AsyncClient

from crm_pipeline.sandbox import SandboxControl

from .conftest import DEALS_SEED


def rich(content: str, items: int = 1) -> dict[str, Any]:
    return {"rich_text": [{"text": {"content": content}}] * items}


# (method, path, body, status, code, message fragment); {page} and {ds} are filled in per test.
CASES: list[tuple[str, str, Any, int, str, str]] = [
    ("PATCH", "/v1/pages/{page}", {"properties": {"Value": {"number": "12"}}}, 400, "validation_error",
     "body.properties.Value.number should be a number or `null`, instead was `\"12\"`"),
    ("PATCH", "/v1/pages/{page}", {"properties": {"Value": {"rich_text": []}}}, 400, "validation_error",
     "Value is expected to be number."),
    ("PATCH", "/v1/pages/{page}", {"properties": {"Contact": rich("x" * 2001)}}, 400, "validation_error",
     "body.properties.Contact.rich_text[0].text.content.length should be ≤ `2000`, instead was `2001`."),
    ("PATCH", "/v1/pages/{page}", {"properties": {"Contact": rich("x", 101)}}, 400, "validation_error",
     "body.properties.Contact.rich_text.length should be ≤ `100`, instead was `101`."),
    ("PATCH", "/v1/pages/{page}", {"properties": {"Email": {"email": "a" * 250}}}, 400, "validation_error",
     "body.properties.Email.email.length should be ≤ `200`, instead was `250`."),
    ("PATCH", "/v1/pages/{page}", {"properties": {"Nope": {"number": 1}}}, 400, "validation_error",
     "Nope is not a property that exists."),
    ("PATCH", "/v1/pages/{page}", {"properties": {"Stage": {"select": {"name": "Won, really"}}}}, 400, "validation_error",
     "property Stage"),
    ("PATCH", "/v1/pages/{page}", {"properties": {"Close Date": {"date": {"start": "2026-13-45"}}}}, 400, "validation_error",
     "body.properties.Close Date.date.start"),
    ("PATCH", "/v1/pages/{page}", {"in_trash": "yes"}, 400, "validation_error", "body.in_trash"),
    ("POST", "/v1/pages", {"parent": {"data_source_id": "{ds}"}, "properties": {"Deal Name": {"title": "plain"}}}, 400,
     "validation_error", "body.properties.Deal Name.title should be an array"),
    ("POST", "/v1/pages", {"parent": {"data_source_id": "00000000-0000-4000-8000-000000000000"}}, 404, "object_not_found",
     "Could not find data_source with ID: 00000000-0000-4000-8000-000000000000"),
    ("POST", "/v1/pages", {"properties": {}}, 400, "validation_error", "body.parent"),
    ("POST", "/v1/data_sources/{ds}/query", {"filter": {"property": "Nope", "number": {"equals": 1}}}, 400,
     "validation_error", "Could not find property with name or id: Nope"),
    ("POST", "/v1/data_sources/{ds}/query", {"filter": {"property": "Value", "number": {"contains": "1"}}}, 400,
     "validation_error", "body.filter.number.contains is not a valid filter operator for property Value"),
    ("POST", "/v1/data_sources/{ds}/query", {"filter": {"property": "Stage", "number": {"equals": 1}}}, 400,
     "validation_error", "must filter property Stage (type select) with a `select` condition"),
    ("POST", "/v1/data_sources/{ds}/query", {"filter": {"property": "Value", "number": {"equals": "1"}}}, 400,
     "validation_error", "body.filter.number.equals should be a number"),
    ("POST", "/v1/data_sources/{ds}/query", {"sorts": [{"property": "Nope", "direction": "ascending"}]}, 400,
     "validation_error", "Nope"),
    ("POST", "/v1/data_sources/{ds}/query", {"page_size": 101}, 400, "validation_error",
     "body.page_size should be an integer between 1 and 100, instead was `101`."),
    ("POST", "/v1/data_sources/{ds}/query", {"start_cursor": "not-a-cursor"}, 400, "validation_error",
     "The start_cursor provided is invalid: not-a-cursor"),
    ("PATCH", "/v1/blocks/{page}/children", {"children": [{"paragraph": rich("x")}] * 101}, 400, "validation_error",
     "body.children.length should be ≤ `100`, instead was `101`."),
    ("PATCH", "/v1/data_sources/{ds}", {"properties": {"Deal Name": None}}, 400, "validation_error", "title property"),
    ("GET", "/v1/pages/not-a-uuid", None, 400, "validation_error", "path.page_id should be a valid uuid"),
    ("GET", "/v1/nowhere", None, 400, "invalid_request_url", "Invalid request URL."),
    ("DELETE", "/v1/pages/{page}", None, 400, "invalid_request_url", "Invalid request URL."),
    ("GET", "/v1/blocks/{ds}/children?page_size=500", None, 404, "object_not_found", "Could not find block"),
    ("GET", "/v1/blocks/{page}/children?page_size=500", None, 400, "validation_error", "query.page_size"),
    ("GET", "/v1/users?page_size=0", None, 400, "validation_error", "query.page_size should be an integer"),
    ("GET", "/v1/users/{page}", None, 404, "object_not_found", "Could not find user"),
    ("GET", "/v1/users/not-a-uuid", None, 400, "validation_error", "path.user_id should be a valid uuid"),
    ("POST", "/v1/search", {"filter": {"property": "object", "value": "database"}}, 400, "validation_error",
     "body.filter should be"),
    ("POST", "/v1/search", {"sort": {"timestamp": "created_time", "direction": "ascending"}}, 400,
     "validation_error", "body.sort should be"),
    ("POST", "/v1/search", {"query": 7}, 400, "validation_error", "body.query should be a string"),
    ("POST", "/v1/search", {"page_size": 101}, 400, "validation_error", "body.page_size should be an integer"),
    ("POST", "/v1/data_sources", {"parent": {"page_id": "{page}"}}, 400, "validation_error",
     "body.parent should be `{database_id}`"),
    ("POST", "/v1/data_sources/{ds}/query", {"filter": {"property": "Stage", "select": {"equals": 3}}}, 400,
     "validation_error", "body.filter.select.equals should be a string or an array of strings"),
]  # fmt: skip


@pytest.fixture
async def ids(raw: httpx.AsyncClient, control: SandboxControl, sandbox: Any) -> dict[str, str]:
    ds = control.seed(DEALS_SEED)[0]["data_source_id"]
    page = (await raw.post(f"/v1/data_sources/{ds}/query", json={"page_size": 1})).json()["results"][0]["id"]
    return {"ds": ds, "page": page}


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code", "message"), CASES, ids=[f"{c[0]} {c[5][:40]}" for c in CASES]
)
async def test_bad_input_is_rejected_like_notion(
    raw: httpx.AsyncClient, control: SandboxControl, ids: dict[str, str],
    method: str, path: str, body: Any, status: int, code: str, message: str,
) -> None:  # fmt: skip
    before = control.all_pages(ids["ds"])
    content = None if body is None else json.dumps(body).replace("{ds}", ids["ds"]).replace("{page}", ids["page"])
    response = await raw.request(method, path.format(**ids), content=content)
    assert (response.status_code, response.json()["code"]) == (status, code), response.text
    assert message in response.json()["message"]
    assert control.all_pages(ids["ds"]) == before


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"{", "invalid_json"),
        (b'{"page_size": NaN}', "invalid_json"),
        (b"[1, 2]", "validation_error"),
        (b"\xff", "invalid_json"),
    ],
)
async def test_unparseable_bodies(raw: httpx.AsyncClient, ids: dict[str, str], content: bytes, code: str) -> None:
    response = await raw.post(f"/v1/data_sources/{ids['ds']}/query", content=content)
    assert response.status_code == 400 and response.json()["code"] == code


async def test_payload_over_500kb_is_rejected(raw: httpx.AsyncClient, ids: dict[str, str]) -> None:
    body = {"properties": {"Contact": rich("x" * 2000, 100)}, "padding": "y" * 400_000}
    response = await raw.patch(f"/v1/pages/{ids['page']}", json=body)
    assert response.status_code == 400 and response.json()["code"] == "validation_error"
    assert "too large" in response.json()["message"]


async def test_missing_version_and_bad_tokens(raw: httpx.AsyncClient, sandbox: Any) -> None:
    response = await raw.get("/v1/users/me", headers={"Notion-Version": ""})
    assert response.status_code == 400 and response.json()["code"] == "missing_version"
    assert "Notion-Version" in response.json()["message"]
    for auth in ("Bearer wrong-token", ""):
        response = await raw.get("/v1/users/me", headers={"Authorization": auth})
        assert response.status_code == 401 and response.json()["code"] == "unauthorized"


async def test_a_rejected_write_changes_nothing(
    notion: AsyncClient, ids: dict[str, str], control: SandboxControl
) -> None:
    control.set_clock(datetime(2030, 1, 1, tzinfo=UTC))  # any change would move last_edited_time
    before = await notion.pages.retrieve(ids["page"])
    body = {"Stage": {"select": {"name": "Brand new option"}}, "Value": {"number": 1}, "Email": {"email": "x" * 201}}
    with pytest.raises(APIResponseError, match=r"body\.properties\.Email\.email\.length"):
        await notion.pages.update(ids["page"], properties=body)
    assert await notion.pages.retrieve(ids["page"]) == {**before, "request_id": ANY}
    source = await notion.data_sources.retrieve(ids["ds"])
    assert "Brand new option" not in {o["name"] for o in source["properties"]["Stage"]["select"]["options"]}


JUNK: list[Any] = [None, 5, "x", True, [], [1], {}, {"a": 1}, [{"x": []}], 1e308, -1, "", {"name": []}, {"id": 5}]


async def test_junk_anywhere_is_a_4xx_never_a_500(raw: httpx.AsyncClient, ids: dict[str, str]) -> None:
    """Sweep junk values through every field the sandbox reads; all must be Notion 4xx errors or 200."""
    ds, page = ids["ds"], ids["page"]
    templates: list[tuple[str, str, Callable[[Any], Any]]] = [
        ("POST", f"/v1/data_sources/{ds}/query", lambda j: {"filter": j}),
        ("POST", f"/v1/data_sources/{ds}/query", lambda j: {"filter": {"property": "Value", "number": j}}),
        ("POST", f"/v1/data_sources/{ds}/query", lambda j: {"filter": {"and": [j]}}),
        ("POST", f"/v1/data_sources/{ds}/query", lambda j: {"filter": {"property": j, "select": {"equals": "x"}}}),
        ("POST", f"/v1/data_sources/{ds}/query", lambda j: {"filter": {"timestamp": j}}),
        ("POST", f"/v1/data_sources/{ds}/query", lambda j: {"sorts": j}),
        ("POST", f"/v1/data_sources/{ds}/query", lambda j: {"sorts": [{"property": j, "direction": "ascending"}]}),
        ("POST", f"/v1/data_sources/{ds}/query", lambda j: {"start_cursor": j, "page_size": j}),
        ("POST", f"/v1/data_sources/{ds}/query", lambda j: {"in_trash": j}),
        ("PATCH", f"/v1/pages/{page}", lambda j: {"properties": j}),
        ("PATCH", f"/v1/pages/{page}", lambda j: {"properties": {"Stage": {"select": j}}}),
        ("PATCH", f"/v1/pages/{page}", lambda j: {"properties": {"Close Date": {"date": j}}}),
        ("PATCH", f"/v1/pages/{page}", lambda j: {"properties": {"Contact": {"rich_text": [j]}}}),
        ("PATCH", f"/v1/pages/{page}", lambda j: {"properties": {"Contact": rich("x") | {"annotations": j}}}),
        ("PATCH", f"/v1/pages/{page}", lambda j: {"icon": j, "cover": j, "is_locked": j}),
        ("PATCH", f"/v1/pages/{page}", lambda j: {"in_trash": j, "archived": j}),
        ("POST", "/v1/pages", lambda j: {"parent": j}),
        ("POST", "/v1/pages", lambda j: {"parent": {"data_source_id": ds}, "children": j}),
        ("POST", "/v1/databases", lambda j: {"parent": j, "title": j}),
        (
            "POST",
            "/v1/databases",
            lambda j: {"parent": {"workspace": True}, "initial_data_source": {"properties": {"A": j}}},
        ),
        ("PATCH", f"/v1/data_sources/{ds}", lambda j: {"properties": {"Stage": {"select": {"options": [j]}}}}),
        ("PATCH", f"/v1/data_sources/{ds}", lambda j: {"properties": {"New": j}, "title": j}),
        ("PATCH", f"/v1/blocks/{page}/children", lambda j: {"children": [{"paragraph": j}], "after": j}),
    ]
    statuses: set[int] = set()
    unexpected = []
    for method, path, make in templates:
        for junk in JUNK:
            response = await raw.request(method, path, content=json.dumps(make(junk)))
            statuses.add(response.status_code)
            if response.status_code not in (200, 400, 404) or "object" not in response.json():
                unexpected.append((method, path, make(junk), response.status_code))
    assert unexpected == []
    assert 400 in statuses


# (method, path, hand-written JSON holding a `\ud800`-`\udfff` escape: valid JSON, but no UTF-8
# text can hold it; the field the error must name)
SURROGATE_CASES: list[tuple[str, str, str, str]] = [
    ("POST", "/v1/pages", '{"parent": {"data_source_id": "{ds}"}, "properties": {"Deal Name": {"title": [{"text": {"content": "a\\ud800"}}]}}}',
     "body.properties.Deal Name.title[0].text.content"),
    ("PATCH", "/v1/pages/{page}", '{"properties": {"Contact": {"rich_text": [{"text": {"content": "\\udfff"}}]}}}',
     "body.properties.Contact.rich_text[0].text.content"),
    ("PATCH", "/v1/pages/{page}", '{"properties": {"Stage": {"select": {"name": "\\ud800"}}}}', "body.properties.Stage.select.name"),
    ("PATCH", "/v1/pages/{page}", '{"properties": {"\\ud800": {"number": 1}}}', "body.properties has a key that should be valid Unicode"),
    ("POST", "/v1/data_sources/{ds}/query", '{"filter": {"property": "Deal Name", "title": {"equals": "\\ud800"}}}',
     "body.filter.title.equals"),
    ("PATCH", "/v1/data_sources/{ds}", '{"properties": {"Owner": {"name": "\\ud800", "rich_text": {}}}}', "body.properties.Owner.name"),
    ("POST", "/v1/databases", '{"parent": {"workspace": true}, "title": [{"text": {"content": "\\ud800"}}]}', "body.title[0].text.content"),
    ("PATCH", "/v1/blocks/{page}/children", '{"children": [{"paragraph": {"rich_text": [{"text": {"content": "\\ud800"}}]}}]}',
     "body.children[0].paragraph.rich_text[0].text.content"),
    ("POST", "/_sandbox/pages", '{"parent": {"data_source_id": "{ds}"}, "properties": {"Deal Name": {"title": [{"text": {"content": "\\ud800"}}]}}}',
     "body.properties.Deal Name.title[0].text.content"),
    ("POST", "/_sandbox/seed", '{"databases": [{"title": "\\ud800"}]}', "body.databases[0].title"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "content", "field"), SURROGATE_CASES, ids=[c[3] for c in SURROGATE_CASES])
async def test_lone_surrogates_are_refused_and_nothing_is_written(
    raw: httpx.AsyncClient,
    control: SandboxControl,
    ids: dict[str, str],
    method: str,
    path: str,
    content: str,
    field: str,
) -> None:
    before = control.all_pages(ids["ds"]), control.users()
    response = await raw.request(method, path.format(**ids), content=content.replace("{ds}", ids["ds"]).encode())
    assert (response.status_code, response.json()["code"]) == (400, "validation_error"), response.text
    assert field in response.json()["message"] and "lone UTF-16 surrogate" in response.json()["message"]
    assert (control.all_pages(ids["ds"]), control.users()) == before
    query = await raw.post(f"/v1/data_sources/{ids['ds']}/query", json={})
    assert query.status_code == 200 and len(query.json()["results"]) == 3


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [101, 5000])
@pytest.mark.parametrize(
    ("method", "path", "wrap"),
    [
        ("POST", "/v1/data_sources/{ds}/query", '{"filter": %s}'),
        ("POST", "/v1/pages", '{"parent": {"data_source_id": "{ds}"}, "properties": %s}'),
        ("PATCH", "/v1/pages/{page}", '{"properties": {"Contact": {"rich_text": %s}}}'),
        ("PATCH", "/v1/data_sources/{ds}", "%s"),
        ("POST", "/v1/databases", '{"title": %s}'),
        ("PATCH", "/v1/blocks/{page}/children", '{"children": %s}'),
        ("POST", "/_sandbox/faults", "%s"),
        ("POST", "/_sandbox/seed", '{"databases": %s}'),
        ("PUT", "/_sandbox/config", "%s"),
        ("PATCH", "/_sandbox/pages/{page}", "%s"),
    ],
)
async def test_deeply_nested_json_is_a_400(
    raw: httpx.AsyncClient, control: SandboxControl, ids: dict[str, str], method: str, path: str, wrap: str, depth: int
) -> None:
    before = control.all_pages(ids["ds"])
    content = wrap.replace("{ds}", ids["ds"]) % nested(depth)
    response = await raw.request(method, path.format(**ids), content=content)
    body = response.json()
    assert (response.status_code, body["object"], body["code"]) == (400, "error", "validation_error")
    assert "nested more than 100 levels deep" in body["message"]
    assert control.all_pages(ids["ds"]) == before and control.faults() == []


async def test_nesting_up_to_the_limit_is_parsed(raw: httpx.AsyncClient, ids: dict[str, str]) -> None:
    response = await raw.post(f"/v1/data_sources/{ids['ds']}/query", content='{"filter": ' + nested(99) + "}")
    assert response.json()["code"] == "validation_error" and "nested" not in response.json()["message"]


@pytest.mark.parametrize(
    ("content", "field"),
    [
        ('{"properties": {"Value": {"number": 1e400}}}', "body.properties.Value.number should be a finite number"),
        ('{"properties": {"Value": {"number": -1%s}}}' % ("0" * 400), "body.properties.Value.number"),
    ],
)
async def test_numbers_beyond_a_double_are_refused(
    raw: httpx.AsyncClient, control: SandboxControl, ids: dict[str, str], content: str, field: str
) -> None:
    before = control.all_pages(ids["ds"])
    response = await raw.patch(f"/v1/pages/{ids['page']}", content=content)
    assert (response.status_code, response.json()["code"]) == (400, "validation_error")
    assert field in response.json()["message"]
    assert control.all_pages(ids["ds"]) == before


@pytest.mark.parametrize(
    ("method", "path", "content"),
    [
        ("PUT", "/config", '{"rate_limit": 1e400}'),
        ("PUT", "/config", '{"rate_limit": 1e300}'),
        ("PUT", "/config", '{"result_cap": 1e400}'),
        ("PUT", "/config", '{"result_cap": 1e300}'),
        ("PUT", "/config", '{"result_cap": 0}'),
        ("PUT", "/config", '{"burst": 1%s}' % ("0" * 400)),
        ("PUT", "/config", '{"latency_ms": 1e300}'),
        ("PUT", "/config", '{"jitter_ms": -1}'),
        ("PUT", "/config", '{"rate_limit": "fast"}'),
        ("PUT", "/config", '{"burst": true}'),
        ("POST", "/clock", '{"advance_seconds": 1e300}'),
        ("POST", "/clock", '{"advance_seconds": -1e300}'),
        ("POST", "/clock", '{"set": "0001-01-01T00:00:00+00:00"}'),
        ("POST", "/faults", '{"kind": "hang", "hang_seconds": 1e300}'),
    ],
)
async def test_control_values_out_of_range_are_a_400(
    raw: httpx.AsyncClient, control: SandboxControl, sandbox: Any, method: str, path: str, content: str
) -> None:
    settings, clock = control.settings(), control.set_clock(datetime(2026, 11, 28, tzinfo=UTC))
    response = await raw.request(method, f"/_sandbox{path}", content=content)
    body = response.json()
    assert (response.status_code, body["object"], body["code"]) == (400, "error", "validation_error"), response.text
    assert control.settings() == settings and control.faults() == []
    assert (await raw.get("/_sandbox/clock")).json() == clock
