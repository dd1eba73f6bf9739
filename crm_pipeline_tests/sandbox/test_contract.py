"""Every kind of response the sandbox gives validates against the SDK-derived JSON Schemas, and the
schema examples' request bodies are accepted."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from notion_client import AsyncClient

from crm_pipeline.sandbox import SandboxControl
from crm_pipeline_tests.notion_schemas import (
    EXAMPLES_DIR,
    example,
    schema_errors,
    validate,
)

from .conftest import title

DEALS_DS = "3b2c4d5e-6f70-4b8c-9dae-1f203a4b5c6d"
DEALS_DB = "2a1b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"


@pytest.mark.parametrize("path", sorted((EXAMPLES_DIR / "invalid").glob("*.json")), ids=lambda p: p.stem)
def test_schemas_reject_the_broken_examples(path: Path) -> None:
    schema = {
        "create_body": "CreatePageBodyParameters",
        "error": "APIErrorResponse",
        "page": "PageObjectResponse",
        "query_response": "QueryDataSourceResponse",
    }[next(prefix for prefix in ("create_body", "error", "page", "query_response") if path.stem.startswith(prefix))]
    assert schema_errors(schema, example(f"invalid/{path.stem}"))


async def test_users_me_is_the_tokens_bot_user(notion: AsyncClient, control: SandboxControl) -> None:
    me = await notion.users.me()
    # No schema for users exists among the SDK-derived ones; check the documented bot shape.
    assert set(me) == {"object", "id", "name", "avatar_url", "type", "bot"}
    assert me["object"] == "user" and me["type"] == "bot"
    assert me["bot"]["owner"] == {"type": "workspace", "workspace": True}
    assert me["id"] in {user["id"] for user in control.users() if user["type"] == "bot"}


async def test_database_and_data_source_shapes(notion: AsyncClient, deals: dict[str, Any]) -> None:
    database = await notion.databases.retrieve(DEALS_DB)
    validate("DatabaseObjectResponse", database)
    assert database["data_sources"] == [{"id": DEALS_DS, "name": "Deals"}]
    source = await notion.data_sources.retrieve(DEALS_DS)
    validate("DataSourceObjectResponse", source)
    assert source["parent"] == {"type": "database_id", "database_id": DEALS_DB}
    updated = await notion.data_sources.update(DEALS_DS, properties={"Owner": {"rich_text": {}}})
    validate("DataSourceObjectResponse", updated)
    created = await notion.databases.create(
        parent={"type": "page_id", "page_id": "5d4e6f70-8192-4dae-bfc0-31425c6d7e8f"},
        title=[{"text": {"content": "Scratch"}}],
        initial_data_source={"properties": {"Name": {"title": {}}, "Score": {"number": {"format": "number"}}}},
    )
    validate("DatabaseObjectResponse", created)


async def test_page_shapes_for_create_retrieve_update_and_query(notion: AsyncClient, deals: dict[str, Any]) -> None:
    created = await notion.pages.create(**example("create_page_body"))
    validate("PageObjectResponse", created)
    assert title(created) == "Acme Corp renewal"
    assert created["parent"] == {"type": "data_source_id", "data_source_id": DEALS_DS, "database_id": DEALS_DB}
    validate("PageObjectResponse", await notion.pages.retrieve(created["id"]))
    updated = await notion.pages.update(created["id"], **example("update_page_body"))
    validate("PageObjectResponse", updated)
    assert updated["properties"]["Stage"]["select"]["name"] == "Closed Won"
    assert updated["properties"]["Contact"]["rich_text"] == []
    result = await notion.data_sources.query(DEALS_DS, **example("query_data_source_body"))
    validate("QueryDataSourceResponse", result)
    assert created["id"] in {page["id"] for page in result["results"]}
    for page in result["results"]:
        for value in page["properties"].values():
            validate("PagePropertyValueWithIdResponse", value)


async def test_capped_query_response_validates(
    notion: AsyncClient, deals: dict[str, Any], control: SandboxControl
) -> None:
    control.configure(result_cap=2)
    result = await notion.data_sources.query(DEALS_DS, page_size=5)
    validate("QueryDataSourceResponse", result)
    assert result["request_status"] == {"type": "incomplete", "incomplete_reason": "query_result_limit_reached"}


async def test_block_children_shapes(notion: AsyncClient, deals: dict[str, Any]) -> None:
    page = (await notion.data_sources.query(DEALS_DS))["results"][0]
    appended = await notion.blocks.children.append(page["id"], **example("append_block_children_body"))
    validate("AppendBlockChildrenResponse", appended)
    headings = [
        {"heading_2": {"rich_text": [{"text": {"content": "Notes"}}]}},
        {"bulleted_list_item": {"rich_text": []}},
    ]
    validate("AppendBlockChildrenResponse", await notion.blocks.children.append(page["id"], children=headings))
    listed = await notion.blocks.children.list(page["id"])
    validate("ListBlockChildrenResponse", listed)
    assert [block["type"] for block in listed["results"]] == ["paragraph", "heading_2", "bulleted_list_item"]


@pytest.mark.parametrize("fault", ["500", "503", "504", "529", "409"])
async def test_fault_error_bodies_validate(raw: httpx.AsyncClient, control: SandboxControl, fault: str) -> None:
    control.add_fault(fault, path="/v1/users/me")
    response = await raw.get("/v1/users/me")
    assert response.status_code == int(fault)
    validate("APIErrorResponse", response.json())


async def test_error_bodies_validate(raw: httpx.AsyncClient, control: SandboxControl, deals: dict[str, Any]) -> None:
    control.configure(rate_limit=1, burst=1)
    responses = [
        await raw.get(f"/v1/pages/{DEALS_DB}"),  # 404
        await raw.get("/v1/nowhere"),  # 400 invalid_request_url
        await raw.post("/v1/pages", content=b"{"),  # 400 invalid_json
        await raw.get("/v1/users/me", headers={"Authorization": "Bearer nope"}),  # 401
        *await asyncio.gather(*(raw.get("/v1/users/me") for _ in range(3))),  # 429s
    ]
    assert {400, 401, 404, 429} <= {r.status_code for r in responses}
    for response in responses:
        if response.status_code != 200:
            body = response.json()
            validate("APIErrorResponse", body)
            assert body["object"] == "error" and body["status"] == response.status_code and body["request_id"]
