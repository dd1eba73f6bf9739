"""Scripted faults, including "applied then lost", latency, and how the real SDK reacts to them."""

from __future__ import annotations

import asyncio
import logging
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

from crm_pipeline.sandbox import RunningSandbox, SandboxControl

from .conftest import HeldDelays, eventually, title

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


async def test_a_hang_outlasts_the_client_timeout_and_counts_as_a_closed_request(
    make_notion: Callable[..., AsyncClient], control: SandboxControl, held_delays: HeldDelays
) -> None:
    notion = make_notion(timeout_ms=200)
    control.add_fault("hang", path="/v1/users/me", hang_seconds=60)
    with pytest.raises(RequestTimeoutError):
        await notion.users.me()  # the hang is held until released below, so the timeout comes first
    held_delays.release()
    await eventually(lambda: control.stats()["total"] > 0, "the hang ended")
    assert control.stats()["by_status"] == {"499": 1}  # nobody was there to get the 504
    assert (await notion.users.me())["type"] == "bot"


@pytest.mark.parametrize("kind", ["500", "502", "503", "504", "529", "409", "hang"])
async def test_applied_then_lost_create_is_not_duplicated_by_a_lookup_first_retry(
    make_notion: Callable[..., AsyncClient],
    control: SandboxControl,
    deals: dict[str, Any],
    held_delays: HeldDelays,
    kind: str,
) -> None:
    """The create happens, the answer is lost; a retry that looks its sync key up first finds it."""
    notion = make_notion(timeout_ms=300)
    ds_id = deals["data_source_id"]
    control.add_fault(kind, method="POST", path="/v1/pages", applied=True, hang_seconds=60)
    with pytest.raises((APIResponseError, UnknownHTTPResponseError, RequestTimeoutError)):
        await notion.pages.create(**create_body(ds_id, "deal-42"))
    found = await notion.data_sources.query(ds_id, filter={"property": "Sync Key", "rich_text": {"equals": "deal-42"}})
    assert [title(page) for page in found["results"]] == ["deal-42"]
    assert len(control.all_pages(ds_id)) == 4


@pytest.fixture
def server_sleeps(sandbox: RunningSandbox, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The simulated delays the session server applies, recorded instead of slept."""
    slept: list[float] = []

    async def record(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(sandbox.sandbox, "sleep", record)
    return slept


async def test_latency_delays_every_api_request(
    notion: AsyncClient, control: SandboxControl, server_sleeps: list[float]
) -> None:
    control.configure(latency_ms=150, jitter_ms=50)
    await notion.users.me()
    await notion.users.me()
    assert len(server_sleeps) == 2 and all(0.15 <= delay <= 0.2 for delay in server_sleeps)
    control.users()  # the control surface is never delayed
    control.configure(latency_ms=0, jitter_ms=0)
    await notion.users.me()
    assert len(server_sleeps) == 2


async def test_a_client_that_gives_up_during_latency_is_a_closed_request_not_an_error(
    make_notion: Callable[..., AsyncClient],
    control: SandboxControl,
    deals: dict[str, Any],
    held_delays: HeldDelays,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="crm_pipeline.sandbox")
    notion = make_notion(timeout_ms=200)
    control.configure(latency_ms=1000)
    with pytest.raises(RequestTimeoutError):
        await notion.pages.create(**create_body(deals["data_source_id"], "never sent"))
    held_delays.release()
    await eventually(lambda: control.stats()["total"] > 0, "the abandoned request counted")
    assert control.stats()["by_route"] == {"POST /v1/pages": {"499": 1}}
    assert len(control.all_pages(deals["data_source_id"])) == 3  # an abandoned request is not carried out
    records = [r for r in caplog.records if r.name.startswith("crm_pipeline.sandbox")]
    assert [(r.levelno, r.exc_info) for r in records] == [(logging.INFO, None)]
    assert "client closed the connection during POST /v1/pages" in records[0].getMessage()


@pytest.mark.parametrize("reset", ["reset", "reset_stats"])
async def test_a_request_running_across_a_reset_is_not_counted_after_it(
    notion: AsyncClient, control: SandboxControl, held_delays: HeldDelays, reset: str
) -> None:
    """A hang left over from one test must not turn up in the next test's statistics."""
    control.add_fault("hang", path="/v1/users/me", hang_seconds=1)
    hanging = asyncio.ensure_future(notion.users.me())
    await held_delays.started()
    getattr(control, reset)()
    held_delays.release()
    with pytest.raises(APIResponseError) as caught:
        await hanging  # answered (and counted, if at all) before the client sees it
    assert caught.value.status == 504
    assert control.stats() == {"total": 0, "by_status": {}, "by_route": {}, "by_token": {}}
    assert (await notion.users.me())["type"] == "bot"
    assert control.stats()["by_status"] == {"200": 1}
