"""Scripted faults, including "applied then lost", latency, and how the real SDK reacts to them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from notion_client import (
    APIResponseError,
    AsyncClient,
    RequestTimeoutError,
    RetryOptions,
    UnknownHTTPResponseError,
)

from crm_pipeline.sandbox import SandboxControl

from .conftest import title

FAST_RETRY = RetryOptions(max_retries=2, initial_retry_delay_ms=20, max_retry_delay_ms=100)


def create_body(ds_id: str, name: str) -> dict[str, Any]:
    return {
        "parent": {"data_source_id": ds_id},
        "properties": {
            "Deal Name": {"title": [{"text": {"content": name}}]},
            "Sync Key": {"rich_text": [{"text": {"content": name}}]},
        },
    }


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        ("500", "internal_server_error"),
        ("503", "service_unavailable"),
        ("504", "gateway_timeout"),
        ("409", "conflict_error"),
    ],
)
async def test_json_faults_reach_the_sdk_with_their_codes(
    notion: AsyncClient, control: SandboxControl, deals: dict[str, Any], kind: str, code: str
) -> None:
    control.add_fault(kind, method="POST", path="/v1/data_sources/*/query")
    with pytest.raises(APIResponseError) as caught:
        await notion.data_sources.query(deals["data_source_id"])
    assert (caught.value.status, caught.value.code) == (int(kind), code)
    assert len((await notion.data_sources.query(deals["data_source_id"]))["results"]) == 3  # only the next one failed


async def test_502_is_an_html_gateway_page_and_529_is_unknown_to_the_sdk(
    notion: AsyncClient, control: SandboxControl
) -> None:
    control.add_fault("502", path="/v1/users/me")
    control.add_fault("529", path="/v1/users/me")
    with pytest.raises(UnknownHTTPResponseError) as gateway:
        await notion.users.me()
    assert gateway.value.status == 502 and "<html>" in gateway.value.body
    with pytest.raises(UnknownHTTPResponseError) as overload:
        await notion.users.me()
    assert overload.value.status == 529 and '"service_overload"' in overload.value.body


async def test_fault_count_method_and_path_matching(
    notion: AsyncClient, control: SandboxControl, deals: dict[str, Any]
) -> None:
    control.add_fault("500", method="PATCH", path="/v1/pages/*", count=2)
    page = (await notion.data_sources.query(deals["data_source_id"], page_size=1))["results"][0]
    assert (await notion.pages.retrieve(page["id"]))["id"] == page["id"]  # GET is not matched
    for _ in range(2):
        with pytest.raises(APIResponseError):
            await notion.pages.update(page["id"], properties={"Value": {"number": 1}})
    assert (await notion.pages.update(page["id"], properties={"Value": {"number": 1}}))["properties"]["Value"][
        "number"
    ] == 1
    assert control.faults() == []


async def test_sdk_retries_500_for_get_but_not_for_post(
    make_notion: Callable[..., AsyncClient], control: SandboxControl, deals: dict[str, Any]
) -> None:
    notion = make_notion(retry=FAST_RETRY)
    control.add_fault("503", method="GET", path="/v1/data_sources/*")
    assert (await notion.data_sources.retrieve(deals["data_source_id"]))["object"] == "data_source"
    control.add_fault("503", method="POST", path="/v1/data_sources/*/query")
    with pytest.raises(APIResponseError):
        await notion.data_sources.query(deals["data_source_id"])
    routes = control.stats()["by_route"]
    assert routes["GET /v1/data_sources/{data_source_id}"] == {"200": 1, "503": 1}
    assert routes["POST /v1/data_sources/{data_source_id}/query"] == {"503": 1}


async def test_hang_outlasts_the_client_timeout(
    make_notion: Callable[..., AsyncClient], control: SandboxControl
) -> None:
    notion = make_notion(timeout_ms=200)
    control.add_fault("hang", path="/v1/users/me", hang_seconds=0.6)
    started = time.monotonic()
    with pytest.raises(RequestTimeoutError):
        await notion.users.me()
    assert time.monotonic() - started < 0.5
    assert (await notion.users.me())["type"] == "bot"


@pytest.mark.parametrize("kind", ["500", "502", "503", "504", "529", "409", "hang"])
async def test_applied_then_lost_create_is_not_duplicated_by_a_lookup_first_retry(
    make_notion: Callable[..., AsyncClient], control: SandboxControl, deals: dict[str, Any], kind: str
) -> None:
    """The create happens, the answer is lost; a retry that looks its sync key up first finds it."""
    notion = make_notion(timeout_ms=300)
    ds_id = deals["data_source_id"]
    control.add_fault(kind, method="POST", path="/v1/pages", applied=True, hang_seconds=0.6)
    with pytest.raises((APIResponseError, UnknownHTTPResponseError, RequestTimeoutError)):
        await notion.pages.create(**create_body(ds_id, "deal-42"))
    if kind == "hang":
        await asyncio.sleep(0.4)  # let the server finish answering the abandoned request
    found = await notion.data_sources.query(ds_id, filter={"property": "Sync Key", "rich_text": {"equals": "deal-42"}})
    assert [title(page) for page in found["results"]] == ["deal-42"]
    assert len(control.all_pages(ds_id)) == 4


async def test_latency_delays_every_api_request(notion: AsyncClient, control: SandboxControl) -> None:
    control.configure(latency_ms=150, jitter_ms=50)
    started = time.monotonic()
    await notion.users.me()
    assert 0.15 <= time.monotonic() - started < 1.0
    control.configure(latency_ms=0, jitter_ms=0)
    started = time.monotonic()
    await notion.users.me()
    assert time.monotonic() - started < 0.15
