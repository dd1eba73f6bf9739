"""The sandbox's answers have the key paths and value formats of real Notion's, as recorded from
api.notion.com (`notion_schemas/recorded/`), beyond what the SDK's types say. Each endpoint with a
recording is asked the same thing; what differs on purpose is listed here and in docs/sandbox.md,
so a new difference, or a listed one that went away, fails."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from notion_client import APIResponseError, AsyncClient

from crm_pipeline.sandbox.api import API_ROUTES
from crm_pipeline_tests.notion_schemas import RECORDED_DIR, recorded

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
FORMATS: list[tuple[str, Callable[[str], bool]]] = [
    ("uuid", lambda s: bool(UUID.match(s))),
    ("time to the minute, Z", lambda s: bool(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:00\.000Z", s))),
    ("time to the ms, +00:00", lambda s: bool(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", s))),
    ("app.notion.com/p/ url", lambda s: s.startswith("https://app.notion.com/p/")),
    ("url", lambda s: s.startswith("https://")),
    ("string", lambda s: True),
]
PAGE = "00000000-0000-4000-8000-000000000000"  # the workspace page the sandbox's databases sit in

# name -> (paths only the recording has, paths only the sandbox has, {path: formats that differ})
DIFFERENCES: dict[str, tuple[set[str], set[str], dict[str, tuple[set[str], set[str]]]]] = {
    # The sandbox has no standalone pages: its pages live in a data source.
    "pages_create": ({"parent.page_id"}, {"parent.data_source_id", "parent.database_id"}, {}),
    "search": ({"results[].parent.workspace"}, {"results[].parent.data_source_id", "results[].parent.database_id"}, {}),
    # Sandbox users have no avatar, and a person's email is not marked verified.
    "users_list": ({"results[].person.email_verified"}, set(), {"results[].avatar_url": ({"url", "null"}, {"null"})}),
    # Data sources have no icon in the sandbox.
    "data_sources_retrieve": ({"icon.type", "icon.emoji"}, set(), {"icon": ({"object"}, {"null"})}),
}


def shape(value: Any, path: str = "", into: dict[str, set[str]] | None = None) -> dict[str, set[str]]:
    """Every key path (list items as `[]`) with the formats of its values."""
    into = {} if into is None else into
    if isinstance(value, dict):
        kind = "object"
        for key, item in value.items():
            shape(item, f"{path}.{key}" if path else key, into)
    elif isinstance(value, list):
        kind = "array"
        for item in value:
            shape(item, f"{path}[]", into)
    elif value is None or isinstance(value, bool):
        kind = "null" if value is None else "boolean"
    elif isinstance(value, int | float):
        kind = "number"
    else:
        kind = next(name for name, matches in FORMATS if matches(value))
    if path:
        into.setdefault(path, set()).add(kind)
    return into


# Every /v1 route, with the recording of the same kind of answer it is compared with.
ROUTE_RECORDINGS = {
    "GET /v1/users/me": "users_me",
    "GET /v1/users": "users_list",
    "GET /v1/users/{user_id}": "users_me",
    "POST /v1/search": "search",
    "POST /v1/databases": "databases_retrieve",
    "GET /v1/databases/{database_id}": "databases_retrieve",
    "POST /v1/data_sources": "data_sources_retrieve",
    "GET /v1/data_sources/{data_source_id}": "data_sources_retrieve",
    "PATCH /v1/data_sources/{data_source_id}": "data_sources_retrieve",
    "POST /v1/data_sources/{data_source_id}/query": "search",  # the same list of pages
    "POST /v1/pages": "pages_create",
    "GET /v1/pages/{page_id}": "pages_create",
    "PATCH /v1/pages/{page_id}": "pages_create",
    "GET /v1/blocks/{block_id}/children": "blocks_children_list",
    "PATCH /v1/blocks/{block_id}/children": "blocks_children_list",
}
# An append answers with the blocks it added, all of them: no next page.
ROUTE_FORMATS = {"PATCH /v1/blocks/{block_id}/children": {"next_cursor": ({"uuid"}, {"null"})}}


async def sandbox_answer(route: str, notion: AsyncClient) -> Any:
    """The sandbox's answer on `route` to what its recording asked (same kind of object, same names)."""
    untitled = route in ("POST /v1/search", "POST /v1/data_sources/{data_source_id}/query")
    database = await notion.databases.create(
        parent={"page_id": PAGE},
        title=[{"text": {"content": "Test Database"}}],
        initial_data_source={"properties": {"title": {"title": {}}}},
    )
    source_id = database["data_sources"][0]["id"]
    content = [] if untitled else [{"text": {"content": "Test"}}]  # the recorded search found an untitled page
    page = await notion.pages.create(parent={"data_source_id": source_id}, properties={"title": content}, children=[])
    paragraphs = [{"paragraph": {"rich_text": [{"text": {"content": f"paragraph {i}"}}]}} for i in range(3)]
    named = await notion.databases.create(parent={"page_id": PAGE}, title=[{"text": {"content": "Test Data Source"}}])
    named_source = named["data_sources"][0]["id"]
    me = await notion.users.me()
    answers: dict[str, Callable[[], Awaitable[Any]]] = {
        "GET /v1/users/me": notion.users.me,
        "GET /v1/users": notion.users.list,
        "GET /v1/users/{user_id}": lambda: notion.users.retrieve(me["id"]),
        "POST /v1/search": lambda: notion.search(filter={"property": "object", "value": "page"}),
        "POST /v1/databases": lambda: _value(database),
        "GET /v1/databases/{database_id}": lambda: notion.databases.retrieve(database["id"]),
        "POST /v1/data_sources": lambda: notion.data_sources.create(
            parent={"database_id": named["id"]}, title=[{"text": {"content": "Second"}}]
        ),
        "GET /v1/data_sources/{data_source_id}": lambda: notion.data_sources.retrieve(named_source),
        "PATCH /v1/data_sources/{data_source_id}": lambda: notion.data_sources.update(
            named_source, title=[{"text": {"content": "Renamed"}}]
        ),
        "POST /v1/data_sources/{data_source_id}/query": lambda: notion.data_sources.query(source_id),
        "POST /v1/pages": lambda: _value(page),
        "GET /v1/pages/{page_id}": lambda: notion.pages.retrieve(page["id"]),
        "PATCH /v1/pages/{page_id}": lambda: notion.pages.update(page["id"], properties={}),
        "GET /v1/blocks/{block_id}/children": lambda: notion.blocks.children.list(page["id"], page_size=2),
        "PATCH /v1/blocks/{block_id}/children": lambda: notion.blocks.children.append(
            page["id"], children=paragraphs[:2]
        ),
    }
    if route == "GET /v1/blocks/{block_id}/children":
        await notion.blocks.children.append(page["id"], children=paragraphs)
    return await answers[route]()


async def _value(answer: Any) -> Any:
    return answer


async def not_found_answer(notion: AsyncClient) -> Any:
    with pytest.raises(APIResponseError) as caught:
        await notion.pages.retrieve("00000000-0000-0000-0000-000000000000")
    return json.loads(caught.value.body)


def test_every_route_is_compared() -> None:
    assert set(ROUTE_RECORDINGS) == {f"{method} {template}" for method, template, _ in API_ROUTES}
    assert set(ROUTE_RECORDINGS.values()) | {"pages_retrieve_404"} == {p.stem for p in RECORDED_DIR.glob("*.json")}


def assert_same_shape(real: Any, ours: Any, name: str, formats: dict[str, tuple[set[str], set[str]]]) -> None:
    expected, theirs = shape(real), shape(ours)
    only_real, only_ours, known_formats = DIFFERENCES.get(name, (set(), set(), {}))
    assert set(expected) - set(theirs) == only_real
    assert set(theirs) - set(expected) == only_ours
    differing = {
        path: (expected[path], theirs[path])
        for path in expected.keys() & theirs.keys()
        if expected[path] != theirs[path]
    }
    assert differing == {**known_formats, **formats}


@pytest.mark.parametrize("route", sorted(ROUTE_RECORDINGS))
async def test_answers_have_real_notions_keys_and_formats(route: str, notion: AsyncClient, sandbox: Any) -> None:
    name = ROUTE_RECORDINGS[route]
    real = recorded(name)
    assert real["status"] == 200
    assert_same_shape(real["response"], await sandbox_answer(route, notion), name, ROUTE_FORMATS.get(route, {}))


async def test_a_not_found_answer_has_real_notions_keys_and_formats(notion: AsyncClient, sandbox: Any) -> None:
    real = recorded("pages_retrieve_404")
    assert real["status"] == 404
    assert_same_shape(real["response"], await not_found_answer(notion), "pages_retrieve_404", {})
