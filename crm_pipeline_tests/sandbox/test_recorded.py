"""The sandbox's answers have the key paths and value formats of real Notion's, as recorded from
api.notion.com (`notion_schemas/recorded/`), beyond what the SDK's types say. Each endpoint with a
recording is asked the same thing; what differs on purpose is listed here and in docs/sandbox.md,
so a new difference, or a listed one that went away, fails."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from notion_client import APIResponseError, AsyncClient

from crm_pipeline.sandbox import SandboxControl
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


async def sandbox_answer(name: str, notion: AsyncClient, control: SandboxControl) -> Any:
    """The sandbox's answer to the request the recording made (same kind of object, same names)."""
    database = await notion.databases.create(
        parent={"page_id": PAGE},
        title=[{"text": {"content": "Test Database"}}],
        initial_data_source={"properties": {"title": {"title": {}}}},
    )
    source_id = database["data_sources"][0]["id"]
    content = [] if name == "search" else [{"text": {"content": "Test"}}]  # the recorded search found an untitled page
    page = await notion.pages.create(parent={"data_source_id": source_id}, properties={"title": content}, children=[])
    paragraphs = [{"paragraph": {"rich_text": [{"text": {"content": f"paragraph {i}"}}]}} for i in range(3)]
    await notion.blocks.children.append(page["id"], children=paragraphs)
    if name == "users_me":
        return await notion.users.me()
    if name == "users_list":
        return await notion.users.list()
    if name == "pages_create":
        return page
    if name == "databases_retrieve":
        return await notion.databases.retrieve(database["id"])
    if name == "data_sources_retrieve":
        named = await notion.databases.create(
            parent={"page_id": PAGE}, title=[{"text": {"content": "Test Data Source"}}]
        )
        return await notion.data_sources.retrieve(named["data_sources"][0]["id"])
    if name == "blocks_children_list":
        return await notion.blocks.children.list(page["id"], page_size=2)
    if name == "search":  # the recording's workspace holds pages only
        return await notion.search(filter={"property": "object", "value": "page"})
    assert name == "pages_retrieve_404"
    with pytest.raises(APIResponseError) as caught:
        await notion.pages.retrieve("00000000-0000-0000-0000-000000000000")
    return json.loads(caught.value.body)


@pytest.mark.parametrize("name", sorted(path.stem for path in RECORDED_DIR.glob("*.json")))
async def test_answers_have_real_notions_keys_and_formats(
    name: str, notion: AsyncClient, control: SandboxControl, sandbox: Any
) -> None:
    real = recorded(name)
    ours = await sandbox_answer(name, notion, control)
    assert real["request"]["path"].startswith("/v1/")
    expected, theirs = shape(real["response"]), shape(ours)
    only_real, only_ours, formats = DIFFERENCES.get(name, (set(), set(), {}))
    assert set(expected) - set(theirs) == only_real
    assert set(theirs) - set(expected) == only_ours
    differing = {
        path: (expected[path], theirs[path])
        for path in expected.keys() & theirs.keys()
        if expected[path] != theirs[path]
    }
    assert differing == formats
