"""The workspace around the data: several data sources in one database, search, users, and the
realistic CRM surviving a restart."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from notion_client import APIResponseError, AsyncClient
from notion_client.helpers import async_collect_paginated_api

from crm_pipeline.sandbox import DEFAULT_TOKEN, RunningSandbox, SandboxConfig, SandboxControl, serve_in_thread
from crm_pipeline_tests.notion_schemas import official, validate

from .conftest import SDK_LOGGER, title
from .realistic import ARCHIVE_DS, COMPANIES_DS, CRM_DB, DEALS_DS, SEED

SEEDED_AT = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


@pytest.fixture
def crm(control: SandboxControl, sandbox: RunningSandbox) -> list[dict[str, Any]]:
    control.set_clock(SEEDED_AT)
    return control.seed(SEED)


async def test_a_database_with_two_data_sources(
    notion: AsyncClient, crm: list[dict[str, Any]], control: SandboxControl
) -> None:
    assert crm[1]["data_sources"] == [
        {"id": DEALS_DS, "title": "Deals", "pages": 4},
        {"id": ARCHIVE_DS, "title": "Archive 2025", "pages": 1},
    ]
    database = await notion.databases.retrieve(CRM_DB)
    validate("DatabaseObjectResponse", official(database))
    assert database["data_sources"] == [{"id": DEALS_DS, "name": "Deals"}, {"id": ARCHIVE_DS, "name": "Archive 2025"}]
    archive = await notion.data_sources.query(ARCHIVE_DS)
    assert [title(page, "Deal") for page in archive["results"]] == ["Hooli"]
    assert archive["results"][0]["parent"] == {
        "type": "data_source_id", "data_source_id": ARCHIVE_DS, "database_id": CRM_DB,
    }  # fmt: skip
    with pytest.raises(APIResponseError, match="multiple data sources"):
        await notion.pages.create(parent={"database_id": CRM_DB}, properties={})
    third = await notion.data_sources.create(
        parent={"database_id": CRM_DB}, title=[{"text": {"content": "Archive 2024"}}], properties={}
    )
    assert list(third["properties"]) == ["Name"]  # every data source has a title property
    database = await notion.databases.retrieve(CRM_DB)
    assert [source["name"] for source in database["data_sources"]] == ["Deals", "Archive 2025", "Archive 2024"]
    assert database["title"][0]["plain_text"] == "CRM"  # its own title, not its first source's


async def test_search_finds_what_the_integration_can_see(
    notion: AsyncClient, crm: list[dict[str, Any]], control: SandboxControl
) -> None:
    everything = await async_collect_paginated_api(notion.search, page_size=3)
    assert len(everything) == 3 + 2 + 4 + 1  # data sources, companies, deals, archived deals
    sources = await notion.search(filter={"property": "object", "value": "data_source"})
    assert {source["id"] for source in sources["results"]} == {COMPANIES_DS, DEALS_DS, ARCHIVE_DS}
    body = {"query": "ACME", "filter": {"property": "object", "value": "page"}, "page_size": 1}
    validate("SearchBodyParameters", body)
    first = await notion.search(**body)
    validate("SearchResponse", official(first))
    assert first["has_more"] and len(first["results"]) == 1
    second = await notion.search(**body, start_cursor=first["next_cursor"])
    found = {
        title(page, "Name" if "Name" in page["properties"] else "Deal") for page in first["results"] + second["results"]
    }
    assert found == {"Acme", "Acme renewal"} and second["next_cursor"] is None

    control.advance_clock(120)
    umbrella = next(
        p for p in everything if p["object"] == "page" and "Deal" in p["properties"] and title(p, "Deal") == "Umbrella"
    )
    await notion.pages.update(umbrella["id"], properties={"Hot": {"checkbox": True}})
    newest = await notion.search(
        filter={"property": "object", "value": "page"},
        sort={"timestamp": "last_edited_time", "direction": "descending"},
    )
    assert newest["results"][0]["id"] == umbrella["id"]
    oldest = await notion.search(
        filter={"property": "object", "value": "page"}, sort={"timestamp": "last_edited_time", "direction": "ascending"}
    )
    assert oldest["results"][-1]["id"] == umbrella["id"]

    await notion.pages.update(umbrella["id"], in_trash=True)
    assert umbrella["id"] not in {
        page["id"] for page in await async_collect_paginated_api(notion.search, query="umbrella")
    }
    trashed = await notion.search(query="umbrella", filter={"in_trash": True})
    assert [page["id"] for page in trashed["results"]] == [umbrella["id"]]
    with pytest.raises(APIResponseError, match="body.filter"):
        await notion.search(filter={"property": "object", "value": "database"})


async def test_users_list_and_retrieve(notion: AsyncClient, crm: list[dict[str, Any]], control: SandboxControl) -> None:
    users = await async_collect_paginated_api(notion.users.list, page_size=2)
    assert [user["id"] for user in users] == [user["id"] for user in control.users()]
    assert {user["name"] for user in users} >= {"Ana Ruiz", "Ben Okafor", "Sandbox Human"}
    for user in users:
        validate("UserObjectResponse", user)
    ana = next(user for user in users if user["name"] == "Ana Ruiz")
    retrieved = await notion.users.retrieve(ana["id"].replace("-", ""))
    assert official(retrieved) == ana
    with pytest.raises(APIResponseError) as caught:
        await notion.users.retrieve(DEALS_DS)
    assert caught.value.status == 404 and caught.value.code == "object_not_found"


async def test_the_realistic_crm_survives_a_restart(tmp_path: Path) -> None:
    config = SandboxConfig(rate_limit=0, state_file=tmp_path / "sandbox.json")
    with serve_in_thread(config) as running, SandboxControl(running.base_url) as control:
        control.seed(SEED)
        before = control.all_pages(DEALS_DS)
        schema = running.sandbox.workspace.data_sources[DEALS_DS].properties
    with serve_in_thread(config) as running, SandboxControl(running.base_url) as control:
        assert control.all_pages(DEALS_DS) == before
        assert running.sandbox.workspace.data_sources[DEALS_DS].properties == schema
        notion = AsyncClient(auth=DEFAULT_TOKEN, base_url=running.base_url, logger=SDK_LOGGER, retry=False)
        try:
            created = await notion.pages.create(parent={"data_source_id": DEALS_DS}, properties={})
            assert created["properties"]["Deal ID"]["unique_id"]["number"] == 5  # the counter was kept
        finally:
            await notion.aclose()


async def test_a_failed_seed_leaves_no_people_or_relation_sides_behind(
    notion: AsyncClient, crm: list[dict[str, Any]], control: SandboxControl
) -> None:
    companies_before = (await notion.data_sources.retrieve(COMPANIES_DS))["properties"]
    users_before = control.users()
    bad = {
        "users": [{"name": "Nora New", "email": "nora@sales.example"}],
        "databases": [
            {
                "title": "Partners",
                "properties": {
                    "Name": {"title": {}},
                    "Company": {"relation": {"data_source_id": COMPANIES_DS, "dual_property": {}}},
                },
                "pages": [{"Name": "Fine", "Company": ["Acme"]}, {"Name": "Broken", "No such column": 1}],
            }
        ],
    }
    with pytest.raises(httpx.HTTPStatusError):
        control.seed(bad)
    assert control.users() == users_before
    companies = await notion.data_sources.retrieve(COMPANIES_DS)
    assert companies["properties"] == companies_before
    acme = next(p for p in control.all_pages(COMPANIES_DS) if title(p, "Name") == "Acme")
    assert set(acme["properties"]) == set(companies_before)
