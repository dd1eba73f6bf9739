"""Page and schema behaviour that sync correctness depends on."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from notion_client import APIResponseError, AsyncClient

from crm_pipeline.sandbox import (
    DEFAULT_TOKEN,
    NOTION_VERSION,
    RunningSandbox,
    SandboxConfig,
    SandboxControl,
    serve_in_thread,
)

from .conftest import DEALS_SEED, SDK_LOGGER, eventually, title


def text(content: str) -> dict[str, Any]:
    return {"rich_text": [{"text": {"content": content}}]}


async def first_page(notion: AsyncClient, ds_id: str) -> dict[str, Any]:
    return (await notion.data_sources.query(ds_id, page_size=1))["results"][0]


async def test_times_round_down_and_edits_in_one_minute_share_a_timestamp(
    notion: AsyncClient, deals: dict[str, Any], control: SandboxControl
) -> None:
    control.set_clock(datetime(2026, 11, 28, 9, 15, 2, tzinfo=UTC))
    page = await notion.pages.create(parent={"data_source_id": deals["data_source_id"]}, properties={})
    assert page["created_time"] == page["last_edited_time"] == "2026-11-28T09:15:00.000Z"
    control.advance_clock(50)
    edited = await notion.pages.update(page["id"], properties={"Contact": text("Second edit, same minute")})
    assert edited["last_edited_time"] == "2026-11-28T09:15:00.000Z"
    control.advance_clock(10)
    edited = await notion.pages.update(page["id"], properties={"Value": {"number": 3}})
    assert edited["last_edited_time"] == "2026-11-28T09:16:00.000Z"
    assert edited["created_time"] == "2026-11-28T09:15:00.000Z"


async def test_last_edited_by_is_the_editor(
    notion: AsyncClient, deals: dict[str, Any], control: SandboxControl
) -> None:
    me = await notion.users.me()
    human = next(user for user in control.users() if user["type"] == "person")
    page = control.human_create_page({"parent": {"data_source_id": deals["data_source_id"]}, "properties": {}})
    assert page["created_by"]["id"] == page["last_edited_by"]["id"] == human["id"]
    ours = await notion.pages.update(page["id"], properties={"Value": {"number": 1}})
    assert ours["last_edited_by"] == {"object": "user", "id": me["id"]}
    assert ours["created_by"]["id"] == human["id"]
    theirs = control.human_update_page(page["id"], {"properties": {"Stage": {"select": {"name": "Lead"}}}})
    assert theirs["last_edited_by"]["id"] == human["id"]
    assert (await notion.pages.retrieve(page["id"]))["properties"]["Stage"]["select"]["name"] == "Lead"


async def test_property_writes_bump_last_edited_time_but_content_appends_do_not(
    notion: AsyncClient, deals: dict[str, Any], control: SandboxControl
) -> None:
    control.set_clock(datetime(2026, 11, 28, 8, 0, tzinfo=UTC))
    page = await notion.pages.create(parent={"data_source_id": deals["data_source_id"]}, properties={})
    control.advance_clock(600)
    await notion.blocks.children.append(page["id"], children=[{"paragraph": text("note")}])
    assert (await notion.pages.retrieve(page["id"]))["last_edited_time"] == "2026-11-28T08:00:00.000Z"
    bumped = await notion.pages.update(page["id"], properties={"Value": {"number": 5}})
    assert bumped["last_edited_time"] == "2026-11-28T08:10:00.000Z"


async def test_select_options_are_created_on_write(notion: AsyncClient, deals: dict[str, Any]) -> None:
    page = await notion.pages.create(
        parent={"database_id": deals["database_id"]}, properties={"Source": {"select": {"name": "Webinar"}}}
    )
    option = page["properties"]["Source"]["select"]
    assert option["name"] == "Webinar" and option["color"] != "default"
    source = await notion.data_sources.retrieve(deals["data_source_id"])
    options = source["properties"]["Source"]["select"]["options"]
    assert [o["id"] for o in options if o["name"] == "Webinar"] == [option["id"]]
    again = await notion.pages.create(
        parent={"data_source_id": deals["data_source_id"]}, properties={"Source": {"select": {"id": option["id"]}}}
    )
    assert again["properties"]["Source"]["select"] == option


async def test_trashed_page_rejects_edits_until_restored(notion: AsyncClient, deals: dict[str, Any]) -> None:
    page = await first_page(notion, deals["data_source_id"])
    trashed = await notion.pages.update(page["id"], in_trash=True)
    assert trashed["in_trash"] is True and trashed["archived"] is True
    with pytest.raises(APIResponseError) as caught:
        await notion.pages.update(page["id"], properties={"Value": {"number": 1}})
    assert caught.value.status == 400 and caught.value.code == "validation_error"
    assert "archived" in str(caught.value)
    assert (await notion.pages.retrieve(page["id"]))["properties"]["Value"]["number"] == page["properties"]["Value"][
        "number"
    ]
    restored = await notion.pages.update(page["id"], in_trash=False, properties={"Value": {"number": 2}})
    assert restored["in_trash"] is False and restored["properties"]["Value"]["number"] == 2


async def test_property_ids_survive_renames_and_work_in_writes(notion: AsyncClient, deals: dict[str, Any]) -> None:
    ds_id = deals["data_source_id"]
    before = await notion.data_sources.retrieve(ds_id)
    value_id = before["properties"]["Value"]["id"]
    after = await notion.data_sources.update(
        ds_id, properties={"Value": {"name": "Amount"}, "Sync Key": None, "Owner": {"email": {}}}
    )
    assert after["properties"]["Amount"]["id"] == value_id
    assert "Sync Key" not in after["properties"] and after["properties"]["Owner"]["type"] == "email"
    page = await first_page(notion, ds_id)
    updated = await notion.pages.update(page["id"], properties={value_id: {"number": 999_999}})
    assert updated["properties"]["Amount"] == {"id": value_id, "type": "number", "number": 999_999}
    assert "Sync Key" not in updated["properties"]
    sorted_by_id = await notion.data_sources.query(ds_id, sorts=[{"property": value_id, "direction": "descending"}])
    assert sorted_by_id["results"][0]["id"] == page["id"]


async def test_ids_without_dashes_and_unknown_ids(notion: AsyncClient, deals: dict[str, Any]) -> None:
    page = await first_page(notion, deals["data_source_id"])
    assert (await notion.pages.retrieve(page["id"].replace("-", "")))["id"] == page["id"]
    with pytest.raises(APIResponseError) as caught:
        await notion.pages.retrieve("00000000-0000-4000-8000-000000000000")
    assert caught.value.status == 404 and caught.value.code == "object_not_found"
    with pytest.raises(APIResponseError) as caught:
        await notion.data_sources.retrieve(deals["database_id"])  # a database id is not a data source id
    assert caught.value.code == "object_not_found"


async def test_block_children_paginate(notion: AsyncClient, deals: dict[str, Any]) -> None:
    page = await first_page(notion, deals["data_source_id"])
    for batch in range(3):
        await notion.blocks.children.append(
            page["id"], children=[{"paragraph": text(f"{batch}-{i}")} for i in range(50)]
        )
    first = await notion.blocks.children.list(page["id"], page_size=100)
    second = await notion.blocks.children.list(page["id"], page_size=100, start_cursor=first["next_cursor"])
    contents = [b["paragraph"]["rich_text"][0]["plain_text"] for b in first["results"] + second["results"]]
    assert contents == [f"{batch}-{i}" for batch in range(3) for i in range(50)]
    assert second["has_more"] is False


async def test_state_file_survives_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "sandbox.json"
    config = SandboxConfig(rate_limit=0, state_file=state)
    with serve_in_thread(config) as running, SandboxControl(running.base_url) as control:
        ds_id = control.seed(DEALS_SEED)[0]["data_source_id"]
        page = control.human_create_page(
            {
                "parent": {"data_source_id": ds_id},
                "properties": {"Deal Name": {"title": [{"text": {"content": "Kept"}}]}},
            }
        )
        control.human_update_page(page["id"], {"in_trash": True})
    assert state.exists() and not state.with_name("sandbox.json.tmp").exists()
    with serve_in_thread(config) as running:
        notion = AsyncClient(auth=DEFAULT_TOKEN, base_url=running.base_url, logger=SDK_LOGGER, retry=False)
        try:
            restored = await notion.pages.retrieve(page["id"])
            assert title(restored) == "Kept" and restored["in_trash"] is True
            assert restored["created_time"] == page["created_time"]
            assert len((await notion.data_sources.query(ds_id))["results"]) == 3
            source = await notion.data_sources.retrieve(ds_id)
            assert [o["name"] for o in source["properties"]["Stage"]["select"]["options"]][:2] == ["Lead", "Qualified"]
        finally:
            await notion.aclose()


async def test_seeding_a_fixed_id_twice_is_refused(control: SandboxControl, deals: dict[str, Any]) -> None:
    with pytest.raises(httpx.HTTPStatusError) as caught:
        control.seed(DEALS_SEED)
    assert caught.value.response.status_code == 400 and "already exists" in caught.value.response.json()["message"]
    assert len(control.all_pages(deals["data_source_id"])) == 3


async def test_a_seed_with_a_bad_row_writes_nothing(control: SandboxControl, sandbox: RunningSandbox) -> None:
    broken = {"title": "Broken", "properties": {"Name": {"title": {}}}, "pages": [{"Name": "ok"}, {"Nope": 1}]}
    with pytest.raises(httpx.HTTPStatusError) as caught:
        control.seed({"databases": [DEALS_SEED["databases"][0], broken]})
    assert caught.value.response.status_code == 400 and "Nope" in caught.value.response.json()["message"]
    assert sandbox.sandbox.workspace.databases == {} and sandbox.sandbox.workspace.pages == {}
    assert len(control.all_pages(control.seed(DEALS_SEED)[0]["data_source_id"])) == 3  # its ids are free again


def test_a_seeded_workspace_keeps_its_page_ids_across_restarts(tmp_path: Path) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps(DEALS_SEED))
    config = SandboxConfig(rate_limit=0, state_file=tmp_path / "state.json", seed_file=seed)
    runs = []
    for _ in range(2):
        with serve_in_thread(config) as running, SandboxControl(running.base_url) as control:
            data_source_id = DEALS_SEED["databases"][0]["data_source_id"]
            runs.append([page["id"] for page in control.all_pages(data_source_id)])
    assert len(runs[0]) == 3 and runs[0] == runs[1]


def create_titled(ds_id: str, title_json: str) -> str:
    """A create body written by hand, so the title can hold any JSON escape."""
    body = {"parent": {"data_source_id": ds_id}, "properties": {"Deal Name": {"title": [{"text": {"content": "?"}}]}}}
    return json.dumps(body).replace('"?"', f'"{title_json}"')


async def test_a_lone_surrogate_cannot_poison_the_state_file(tmp_path: Path) -> None:
    """It is refused before anything is stored, so queries, saves and later pages are unharmed."""
    config = SandboxConfig(rate_limit=0, state_file=tmp_path / "state.json")
    headers = {"Notion-Version": NOTION_VERSION, "Authorization": f"Bearer {DEFAULT_TOKEN}"}
    with serve_in_thread(config) as running, SandboxControl(running.base_url) as control:
        ds_id = control.seed(DEALS_SEED)[0]["data_source_id"]
        async with httpx.AsyncClient(base_url=running.base_url, headers=headers) as raw:
            refused = await raw.post("/v1/pages", content=create_titled(ds_id, "\\ud800"))
            assert (refused.status_code, refused.json()["code"]) == (400, "validation_error")
            assert (await raw.post(f"/v1/data_sources/{ds_id}/query", json={})).status_code == 200
            later = await raw.post("/v1/pages", content=create_titled(ds_id, "Later \\u00e9"))
            assert later.status_code == 200
        control.save()
    with serve_in_thread(config) as running, SandboxControl(running.base_url) as control:
        assert sorted(title(page) for page in control.all_pages(ds_id))[-1] == "Later é"
        assert len(control.all_pages(ds_id)) == 4


async def test_a_failed_save_is_loud_and_retried_until_it_succeeds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "not yet" / "state.json"  # every write fails until its directory exists
    config = SandboxConfig(rate_limit=0, state_file=state, save_interval_s=0.01)
    with serve_in_thread(config) as running, SandboxControl(running.base_url) as control:
        ds_id = control.seed(DEALS_SEED)[0]["data_source_id"]
        with pytest.raises(httpx.HTTPStatusError) as caught:
            control.save()
        body = caught.value.response.json()
        assert (caught.value.response.status_code, body["code"]) == (500, "internal_server_error")
        assert "Saving the state file failed" in body["message"] and "state.json" in body["message"]
        failures = [r for r in caplog.records if r.name == "crm_pipeline.sandbox.runtime"]
        assert failures and all(r.levelno == logging.ERROR and r.exc_info for r in failures)
        assert not state.with_name("state.json.tmp").exists()
        control.human_create_page({"parent": {"data_source_id": ds_id}, "properties": {}})  # while saves fail
        state.parent.mkdir()
        await eventually(state.is_file, "the periodic save retried")  # nobody asked it to
        control.save()
    with serve_in_thread(config) as running, SandboxControl(running.base_url) as control:
        assert len(control.all_pages(ds_id)) == 4  # the seed and the page created while saves failed
