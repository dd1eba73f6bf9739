"""Every kind of response the sandbox gives validates against the SDK-derived JSON Schemas (once the
keys real Notion sends beyond them are set aside, see `official`), and the schema examples' request
bodies are accepted. Responses come through the real SDK wherever it can make the request; raw HTTP
only sends what the SDK never would."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import httpx
import pytest
from notion_client import APIResponseError, AsyncClient, UnknownHTTPResponseError

from crm_pipeline.sandbox import RunningSandbox, SandboxControl
from crm_pipeline.sandbox.api import API_ROUTES
from crm_pipeline.sandbox.control import FAULT_KINDS
from crm_pipeline_tests.notion_schemas import (
    EXAMPLES_DIR,
    example,
    official,
    schema_errors,
    validate,
)

from .conftest import DEALS_SEED, title

DEALS_DS = "3b2c4d5e-6f70-4b8c-9dae-1f203a4b5c6d"
DEALS_DB = "2a1b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
CLOCK = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)  # after the example query's 2026-11-01 window opens

# The schema each /v1 route's success answer must match.
ROUTE_SCHEMAS = {
    "GET /v1/users/me": "UserObjectResponse",
    "GET /v1/users": "list of UserObjectResponse",  # the SDK has no type for the list itself
    "GET /v1/users/{user_id}": "UserObjectResponse",
    "POST /v1/search": "SearchResponse",
    "POST /v1/data_sources": "DataSourceObjectResponse",
    "POST /v1/databases": "DatabaseObjectResponse",
    "GET /v1/databases/{database_id}": "DatabaseObjectResponse",
    "GET /v1/data_sources/{data_source_id}": "DataSourceObjectResponse",
    "PATCH /v1/data_sources/{data_source_id}": "DataSourceObjectResponse",
    "POST /v1/data_sources/{data_source_id}/query": "QueryDataSourceResponse",
    "POST /v1/pages": "PageObjectResponse",
    "GET /v1/pages/{page_id}": "PageObjectResponse",
    "PATCH /v1/pages/{page_id}": "PageObjectResponse",
    "GET /v1/blocks/{block_id}/children": "ListBlockChildrenResponse",
    "PATCH /v1/blocks/{block_id}/children": "AppendBlockChildrenResponse",
}
# Documented by Notion (https://developers.notion.com/reference/status-codes) but missing from the
# SDK's APIErrorCode enum, so the schema's `code` enum cannot accept them.
CODES_BEYOND_THE_SDK = {"missing_version"}


@pytest.fixture
def deals(control: SandboxControl, sandbox: RunningSandbox) -> dict[str, Any]:
    """The Deals seed, created at CLOCK on the sandbox clock (which stays there)."""
    control.set_clock(CLOCK)
    return control.seed(DEALS_SEED)[0]


def validate_answer(route: str, answer: Any) -> None:
    """Validate a success answer against its route's schema; every answer carries a request_id."""
    assert isinstance(answer["request_id"], str) and answer["request_id"]
    schema = ROUTE_SCHEMAS[route]
    if schema.startswith("list of "):
        assert {k: v for k, v in answer.items() if k not in ("results", "next_cursor", "has_more", "request_id")} == {
            "object": "list",
            "type": "user",
            "user": {},
        }
        for item in answer["results"]:
            validate(schema.removeprefix("list of "), item)
    else:
        validate(schema, official(answer))


def validate_error(body: Any) -> None:
    if isinstance(body, dict) and body.get("code") in CODES_BEYOND_THE_SDK:
        assert schema_errors("APIErrorResponse", body) == [f"code: {body['code']!r} is not one of " + ENUM_TEXT]
    else:
        validate("APIErrorResponse", body)
    assert body["object"] == "error" and isinstance(body["status"], int) and body["request_id"]


ENUM_TEXT = schema_errors("APIErrorResponse", {"code": "?", "message": ""})[0].split(" is not one of ", 1)[1]


@pytest.mark.parametrize("path", sorted((EXAMPLES_DIR / "invalid").glob("*.json")), ids=lambda p: p.stem)
def test_schemas_reject_the_broken_examples(path: Path) -> None:
    schema = {
        "create_body": "CreatePageBodyParameters",
        "error": "APIErrorResponse",
        "page": "PageObjectResponse",
        "query_response": "QueryDataSourceResponse",
    }[next(prefix for prefix in ("create_body", "error", "page", "query_response") if path.stem.startswith(prefix))]
    assert schema_errors(schema, example(f"invalid/{path.stem}"))


def test_every_route_has_a_schema() -> None:
    assert set(ROUTE_SCHEMAS) == {f"{method} {template}" for method, template, _ in API_ROUTES}


async def test_users_me_is_the_tokens_bot_user(notion: AsyncClient, control: SandboxControl) -> None:
    me = await notion.users.me()
    validate_answer("GET /v1/users/me", me)
    # The keys a recorded answer from api.notion.com has (see notion_schemas/README.md).
    assert set(me["bot"]) == {"owner", "workspace_name", "workspace_id", "workspace_limits"}
    assert me["type"] == "bot" and me["bot"]["owner"] == {"type": "workspace", "workspace": True}
    assert me["id"] in {user["id"] for user in control.users() if user["type"] == "bot"}
    for user in control.users():
        validate("UserObjectResponse", user)


async def test_every_route_answers_in_its_schema(
    notion: AsyncClient, deals: dict[str, Any], control: SandboxControl
) -> None:
    answers: dict[str, list[Any]] = {}

    def seen(route: str, answer: Any) -> Any:
        answers.setdefault(route, []).append(answer)
        return answer

    me = seen("GET /v1/users/me", await notion.users.me())
    users = seen("GET /v1/users", await notion.users.list())
    assert me["id"] in {user["id"] for user in users["results"]}
    seen("GET /v1/users", await notion.users.list(page_size=1))
    assert seen("GET /v1/users/{user_id}", await notion.users.retrieve(me["id"])) == {**me, "request_id": ANY}
    database = seen("GET /v1/databases/{database_id}", await notion.databases.retrieve(DEALS_DB))
    assert database["data_sources"] == [{"id": DEALS_DS, "name": "Deals"}]
    source = seen("GET /v1/data_sources/{data_source_id}", await notion.data_sources.retrieve(DEALS_DS))
    assert source["parent"] == {"type": "database_id", "database_id": DEALS_DB}
    second = seen(
        "POST /v1/data_sources",
        await notion.data_sources.create(
            parent={"type": "database_id", "database_id": DEALS_DB},
            title=[{"text": {"content": "Renewals"}}],
            properties={"Renewal": {"title": {}}, "Due": {"date": {}}},
        ),
    )
    assert second["parent"] == {"type": "database_id", "database_id": DEALS_DB}
    seen(
        "PATCH /v1/data_sources/{data_source_id}",
        await notion.data_sources.update(DEALS_DS, properties={"Owner": {"rich_text": {}}}),
    )
    for parent in ({"type": "page_id", "page_id": "5d4e6f70-8192-4dae-bfc0-31425c6d7e8f"}, {"workspace": True}):
        seen(
            "POST /v1/databases",
            await notion.databases.create(
                parent=parent,
                title=[{"text": {"content": "Scratch"}}],
                initial_data_source={"properties": {"Name": {"title": {}}, "Score": {"number": {"format": "number"}}}},
            ),
        )

    created = seen("POST /v1/pages", await notion.pages.create(**example("create_page_body")))
    assert title(created) == "Acme Corp renewal"
    assert created["parent"] == {"type": "data_source_id", "data_source_id": DEALS_DS, "database_id": DEALS_DB}
    seen("GET /v1/pages/{page_id}", await notion.pages.retrieve(created["id"]))
    seen("GET /v1/pages/{page_id}", await notion.pages.retrieve(created["id"], filter_properties=["title"]))
    updated = seen("PATCH /v1/pages/{page_id}", await notion.pages.update(created["id"], **example("update_page_body")))
    assert updated["properties"]["Stage"]["select"]["name"] == "Closed Won"
    assert updated["properties"]["Contact"]["rich_text"] == []
    seen("PATCH /v1/pages/{page_id}", await notion.pages.update(created["id"], in_trash=True))
    seen("POST /v1/search", await notion.search(query="acme", page_size=2))
    for kind in ("page", "data_source"):
        seen("POST /v1/search", await notion.search(filter={"property": "object", "value": kind}))

    query = "POST /v1/data_sources/{data_source_id}/query"
    result = seen(query, await notion.data_sources.query(DEALS_DS, **example("query_data_source_body")))
    assert {page["id"] for page in result["results"]} == {page["id"] for page in control.all_pages(DEALS_DS)[:3]}
    seen(query, await notion.data_sources.query(DEALS_DS, in_trash=True, filter_properties=["title"]))
    control.configure(result_cap=2)
    capped = seen(query, await notion.data_sources.query(DEALS_DS, page_size=5))
    assert capped["request_status"] == {"type": "incomplete", "incomplete_reason": "query_result_limit_reached"}

    page_id = result["results"][0]["id"]
    children = "PATCH /v1/blocks/{block_id}/children"
    seen(children, await notion.blocks.children.append(page_id, **example("append_block_children_body")))
    headings = [
        {"heading_2": {"rich_text": [{"text": {"content": "Notes"}}]}},
        {"bulleted_list_item": {"rich_text": []}},
    ]
    seen(children, await notion.blocks.children.append(page_id, children=headings))
    listed = seen("GET /v1/blocks/{block_id}/children", await notion.blocks.children.list(page_id))
    assert [block["type"] for block in listed["results"]] == ["paragraph", "heading_2", "bulleted_list_item"]
    seen("GET /v1/blocks/{block_id}/children", await notion.blocks.children.list(page_id, page_size=1))

    assert set(answers) == set(ROUTE_SCHEMAS)
    for route, items in answers.items():
        for answer in items:
            validate_answer(route, answer)
    for answer in answers[query]:
        for page in official(answer)["results"]:
            for value in page["properties"].values():
                validate("PagePropertyValueWithIdResponse", value)


async def test_every_error_answer_validates(
    make_notion: Callable[..., AsyncClient],
    raw: httpx.AsyncClient,
    control: SandboxControl,
    deals: dict[str, Any],
    sandbox: RunningSandbox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    notion = make_notion()
    bodies: dict[str, Any] = {}

    async def sdk_error(request: Any) -> None:
        with pytest.raises((APIResponseError, UnknownHTTPResponseError)) as caught:
            await request
        body = httpx.Response(caught.value.status, text=caught.value.body).json()
        bodies.setdefault(body["code"], []).append(body)

    await sdk_error(notion.pages.retrieve(DEALS_DB))  # object_not_found
    me = await notion.users.me()
    assert bodies["object_not_found"][0]["additional_data"] == {"integration_id": me["id"]}
    assert bodies["object_not_found"][0]["message"].endswith(f'shared with your integration "{me["name"]}".')
    await sdk_error(notion.users.retrieve(DEALS_DB))  # object_not_found
    await sdk_error(notion.pages.update(DEALS_DB.replace("2a", "3a"), properties={}))  # object_not_found
    await sdk_error(notion.data_sources.query(DEALS_DS, page_size=101))  # validation_error
    await sdk_error(notion.pages.create(parent={"data_source_id": DEALS_DS}, properties={"Value": {"number": "1"}}))
    await sdk_error(notion.request(path="nowhere", method="get"))  # invalid_request_url
    await sdk_error(make_notion(auth="not-a-token").users.me())  # unauthorized

    monkeypatch.setattr(sandbox.sandbox.limiter, "clock", lambda: 1000.0)  # no refill between requests
    control.configure(rate_limit=1, burst=1)
    await notion.users.me()
    await sdk_error(notion.users.me())  # rate_limited
    control.configure(rate_limit=0)

    async def no_wait(seconds: float) -> None:
        pass

    monkeypatch.setattr(sandbox.sandbox, "sleep", no_wait)  # a hang ends at once: its 504 answer
    for kind in FAULT_KINDS:
        control.add_fault(kind, path="/v1/users/me", hang_seconds=1)
        if kind == "502":  # a gateway's HTML page, not Notion's JSON: nothing to validate
            with pytest.raises(UnknownHTTPResponseError) as gateway:
                await notion.users.me()
            assert gateway.value.body.startswith("<html>")
        else:
            await sdk_error(notion.users.me())

    for response in [  # what the SDK never sends
        await raw.post("/v1/pages", content=b"{"),  # invalid_json
        await raw.post("/v1/pages", content=b'{"a": "\\ud800"}'),  # validation_error
        await raw.post("/v1/pages", content=b"[" * 5000),  # validation_error
        await raw.get("/v1/users/me", headers={"Notion-Version": ""}),  # missing_version
    ]:
        bodies.setdefault(response.json()["code"], []).append(response.json())

    assert set(bodies) == {
        "object_not_found",
        "validation_error",
        "invalid_request_url",
        "unauthorized",
        "rate_limited",
        "internal_server_error",
        "service_unavailable",
        "gateway_timeout",
        "service_overload",
        "conflict_error",
        "invalid_json",
        "missing_version",
    }
    for code, answers in bodies.items():
        for body in answers:
            validate_error(body)
            assert body["code"] == code


@pytest.mark.parametrize(
    ("method", "path", "content"),
    [
        ("PUT", "/_sandbox/config", b'{"rate_limit": 1e400}'),
        ("POST", "/_sandbox/faults", b'{"kind": "nope"}'),
        ("POST", "/_sandbox/seed", b"[" * 5000),
        ("POST", "/_sandbox/clock", b"{"),
        ("GET", "/_sandbox/pages/nope", None),
        ("PUT", "/_sandbox/pages/nope/computed", b'{"properties": {}}'),
        ("POST", "/_sandbox/seed", b'{"users": [{"name": "No email"}], "databases": []}'),
    ],
)
async def test_control_surface_errors_are_notion_shaped(
    raw: httpx.AsyncClient, method: str, path: str, content: bytes | None
) -> None:
    response = await raw.request(method, path, content=content)
    assert 400 <= response.status_code < 500
    validate_error(response.json())
