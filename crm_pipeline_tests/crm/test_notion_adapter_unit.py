"""NotionAdapter without a server: construction, the import error, data source choice, the retry
split with the SDK, Retry-After, idempotent creates, sync-key lookups and keeping the token secret
(httpx.MockTransport)."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from notion_client.errors import UnknownHTTPResponseError

from crm_pipeline.crm import NotionAdapter
from crm_pipeline.crm.notion import (
    DataSourceConfigError,
    PageTrashedError,
    RateLimit,
    RetryPolicy,
    UnexpectedResponseError,
)
from crm_pipeline.crm.notion.adapter import activity_ref
from crm_pipeline.models import OpportunityCreate, OpportunityFilter, OpportunityUpdate

TOKEN = "ntn_secret_token_value_123"
DB, DS, DS2, BOT = "db-1", "ds-1", "ds-2", "bot-user"
SCHEMA = {
    "Deal Name": {"id": "title", "name": "Deal Name", "type": "title", "title": {}},
    "Stage": {
        "id": "st",
        "name": "Stage",
        "type": "select",
        "select": {"options": [{"name": "Lead"}]},
    },
    "Value": {"id": "va", "name": "Value", "type": "number", "number": {}},
    "Close Date": {"id": "cd", "name": "Close Date", "type": "date", "date": {}},
    "Product": {
        "id": "pr",
        "name": "Product",
        "type": "select",
        "select": {"options": []},
    },
    "Probability": {"id": "pb", "name": "Probability", "type": "number", "number": {}},
    "Source": {
        "id": "so",
        "name": "Source",
        "type": "select",
        "select": {"options": []},
    },
    "Contact": {"id": "co", "name": "Contact", "type": "rich_text", "rich_text": {}},
    "Email": {"id": "em", "name": "Email", "type": "email", "email": {}},
    "Sync Key": {"id": "sk", "name": "Sync Key", "type": "rich_text", "rich_text": {}},
}
Handler = Callable[[httpx.Request], httpx.Response | None]


class FakeNotion:
    """Answers set-up calls itself; `script` handlers get every other request first."""

    def __init__(self, *data_sources: str) -> None:
        self.data_sources = data_sources or (DS,)
        self.requests: list[httpx.Request] = []
        self.script: list[Handler] = []
        self.sleeps: list[float] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path == f"/v1/databases/{DB}":
            return _json(
                {
                    "object": "database",
                    "id": DB,
                    "data_sources": [{"id": d, "name": d} for d in self.data_sources],
                }
            )
        if path.startswith("/v1/data_sources/") and request.method == "GET":
            return _json(
                {
                    "object": "data_source",
                    "id": path.rsplit("/", 1)[-1],
                    "properties": SCHEMA,
                }
            )
        if path == "/v1/users/me":
            return _json({"object": "user", "id": BOT, "type": "bot"})
        while self.script:
            response = self.script.pop(0)(request)
            if response is not None:
                return response
        if path == "/v1/pages":
            return _json(_page(str(uuid4())))
        return _json({"object": "list", "results": [], "next_cursor": None, "has_more": False})

    def sent(self, method: str, path_end: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == method and r.url.path.endswith(path_end)]

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def adapter(self, **overrides: Any) -> NotionAdapter:
        settings: dict[str, Any] = {
            "base_url": "http://notion.test",
            "retry": RetryPolicy(max_attempts=4, initial_wait=0.01, max_wait=0.02, sleep=self.sleep),
            "rate_limit": RateLimit(requests_per_second=1000, burst=100),
            "http_client": httpx.AsyncClient(transport=httpx.MockTransport(self.handle)),
        }
        return NotionAdapter(TOKEN, DB, **{**settings, **overrides})


def _json(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def _error(status: int, code: str, headers: dict[str, str] | None = None, message: str | None = None) -> Handler:
    body = {
        "object": "error",
        "status": status,
        "code": code,
        "message": message or f"{code} happened",
    }
    return lambda request: _json(body, status, headers)


def _page(key: str) -> dict[str, Any]:
    return {
        "object": "page",
        "id": f"page-{key[:8]}",
        "created_time": "2026-11-02T12:00:00.000Z",
        "last_edited_time": "2026-11-02T12:00:00.000Z",
        "last_edited_by": {"object": "user", "id": BOT},
        "in_trash": False,
        "parent": {"type": "data_source_id", "data_source_id": DS},
        "properties": {
            "Deal Name": {
                "id": "title",
                "type": "title",
                "title": [{"plain_text": "Acme"}],
            },
            "Stage": {"id": "st", "type": "select", "select": {"name": "Lead"}},
            "Sync Key": {
                "id": "sk",
                "type": "rich_text",
                "rich_text": [{"plain_text": key}],
            },
        },
    }


# --- construction ---------------------------------------------------------------------------------


async def test_notion_adapter_init() -> None:
    adapter = NotionAdapter(TOKEN, DB, data_source_id=DS, base_url="http://notion.test", tenant_id="t1")
    assert adapter.database_id == DB and adapter.data_source_id == DS and adapter.tenant_id == "t1"
    assert adapter.capabilities.bulk_writes and not adapter.capabilities.old_values_in_changes
    assert adapter.capabilities.timestamp_resolution_seconds == 60
    assert adapter._client is None  # nothing is built or sent before the first call
    assert TOKEN not in repr(adapter) and DB in repr(adapter)
    assert adapter.client.client.base_url == "http://notion.test/v1/"
    await adapter.aclose()


def test_notion_import_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "notion_client", None)
    with pytest.raises(ImportError, match="pip install 'notion-client"):
        NotionAdapter(TOKEN, DB)


# --- choosing the data source ---------------------------------------------------------------------


async def test_several_data_sources_and_none_chosen_is_an_error() -> None:
    adapter = FakeNotion(DS, DS2).adapter()
    with pytest.raises(DataSourceConfigError, match="2 data sources.*data_source_id="):
        await adapter.list_opportunities(OpportunityFilter())
    await adapter.aclose()


async def test_a_chosen_data_source_must_belong_to_the_database() -> None:
    fake = FakeNotion(DS, DS2)
    chosen = fake.adapter(data_source_id=DS2)
    await chosen.list_opportunities(OpportunityFilter())
    assert fake.sent("POST", f"/data_sources/{DS2}/query")
    stranger = fake.adapter(data_source_id="ds-elsewhere")
    with pytest.raises(DataSourceConfigError, match="not in database"):
        await stranger.list_opportunities(OpportunityFilter())
    await chosen.aclose()
    await stranger.aclose()


# --- retries: tenacity owns them, the SDK's are off -----------------------------------------------


async def test_a_query_503_is_retried_by_tenacity_alone() -> None:
    fake = FakeNotion()
    fake.script = [
        _error(503, "service_unavailable"),
        _error(503, "service_unavailable"),
    ]
    adapter = fake.adapter()
    await adapter.list_opportunities(OpportunityFilter())
    assert len(fake.sent("POST", "/query")) == 3
    assert len(fake.sleeps) == 2 and all(s <= 0.02 for s in fake.sleeps)
    await adapter.aclose()


async def test_attempts_stop_at_the_policy_and_do_not_multiply() -> None:
    fake = FakeNotion()
    fake.script = [_error(500, "internal_server_error")] * 10
    adapter = fake.adapter()
    with pytest.raises(Exception) as raised:
        await adapter.list_opportunities(OpportunityFilter())
    assert getattr(raised.value, "status", None) == 500
    assert len(fake.sent("POST", "/query")) == 4  # max_attempts, not 4 × (SDK retries + 1)
    await adapter.aclose()


@pytest.mark.parametrize("status,code", [(429, "rate_limited"), (529, "service_overload")])
async def test_rate_limits_honour_retry_after_beyond_a_minute(status: int, code: str) -> None:
    fake = FakeNotion()
    fake.script = [_error(status, code, {"Retry-After": "120"})]
    adapter = fake.adapter()
    await adapter.list_opportunities(OpportunityFilter())
    assert fake.sleeps == [pytest.approx(120, abs=0.3)]
    await adapter.aclose()


async def test_a_retry_after_beyond_the_ceiling_surfaces() -> None:
    fake = FakeNotion()
    fake.script = [_error(429, "rate_limited", {"Retry-After": "3600"})]
    adapter = fake.adapter()
    with pytest.raises(Exception) as raised:
        await adapter.list_opportunities(OpportunityFilter())
    assert getattr(raised.value, "status", None) == 429 and fake.sleeps == []
    await adapter.aclose()


@pytest.mark.parametrize(
    "status,code",
    [(400, "validation_error"), (401, "unauthorized"), (403, "restricted_resource")],
)
async def test_client_errors_are_never_retried(status: int, code: str) -> None:
    fake = FakeNotion()
    fake.script = [_error(status, code)]
    adapter = fake.adapter()
    with pytest.raises(Exception) as raised:
        await adapter.list_opportunities(OpportunityFilter())
    assert getattr(raised.value, "status", None) == status
    assert len(fake.sent("POST", "/query")) == 1 and fake.sleeps == []
    await adapter.aclose()


# --- reading Notion's answers ---------------------------------------------------------------------


async def test_a_trashed_page_is_recognised_whatever_the_error_says() -> None:
    fake = FakeNotion()
    trashed = {**_page(str(uuid4())), "in_trash": True}
    fake.script = [
        _error(400, "validation_error", message="Can't edit a page that is in the trash."),
        lambda request: _json(trashed) if request.method == "GET" else None,
    ]
    adapter = fake.adapter()
    with pytest.raises(PageTrashedError):
        await adapter.update_opportunity(trashed["id"], OpportunityUpdate(name="too late"))
    assert len(fake.sent("PATCH", trashed["id"])) == 1  # read back, not retried
    await adapter.aclose()


async def test_a_response_of_an_unexpected_shape_names_the_endpoint() -> None:
    fake = FakeNotion()
    fake.script = [lambda request: _json({"object": "list", "results": [{"id": "p-1"}], "has_more": False})]
    adapter = fake.adapter()
    with pytest.raises(UnexpectedResponseError, match="data_sources.query") as raised:
        await adapter.list_opportunities(OpportunityFilter())
    assert "created_time" in str(raised.value) and "next_cursor" in str(raised.value)
    await adapter.aclose()


# --- idempotent creates ---------------------------------------------------------------------------


def _key_filter(*keys: str) -> dict[str, Any]:
    """The Sync Key lookup filter: each key lower- and upper-cased."""
    conditions = [
        {"property": "sk", "rich_text": {"equals": spelling}} for key in keys for spelling in (key, key.upper())
    ]
    return conditions[0] if len(conditions) == 1 else {"or": conditions}


def _listing(*pages: dict[str, Any]) -> httpx.Response:
    return _json({"object": "list", "results": list(pages), "next_cursor": None, "has_more": False})


async def test_a_create_that_timed_out_is_looked_up_before_being_sent_again() -> None:
    fake = FakeNotion()
    key = str(uuid4())
    lookups: list[dict[str, Any]] = []

    def lookup(result: list[dict[str, Any]]) -> Handler:
        def answer(request: httpx.Request) -> httpx.Response:
            assert request.url.path.endswith("/query")
            lookups.append(json.loads(request.content)["filter"])
            return _listing(*result)

        return answer

    def applied_then_timed_out(request: httpx.Request) -> None:
        assert request.url.path == "/v1/pages"
        raise httpx.ReadTimeout("lost", request=request)

    fake.script = [lookup([]), applied_then_timed_out, lookup([_page(key)])]
    adapter = fake.adapter()
    page_id = await adapter.create_opportunity(OpportunityCreate(id=key, name="Acme", deal_stage="Lead"))
    assert page_id == _page(key)["id"]
    assert len(fake.sent("POST", "/v1/pages")) == 1
    assert lookups == [_key_filter(key)] * 2  # before the first POST, then after the timeout
    await adapter.aclose()


async def test_a_keyed_create_looks_the_key_up_once_before_posting() -> None:
    fake = FakeNotion()
    key = str(uuid4())
    fake.script = [lambda request: _listing(_page(key))]
    adapter = fake.adapter()
    page_id = await adapter.create_opportunity(OpportunityCreate(id=key, name="Acme"))
    again = await adapter.create_opportunity(OpportunityCreate(id=key, name="Acme"))  # from the cache
    assert page_id == again == _page(key)["id"]
    assert not fake.sent("POST", "/v1/pages")
    [query] = fake.sent("POST", "/query")
    assert json.loads(query.content)["filter"] == _key_filter(key)
    await adapter.aclose()


async def test_key_lookups_ask_for_both_cases_within_the_compound_filter_limit() -> None:
    fake = FakeNotion()
    records = [OpportunityCreate(id=uuid4(), name=f"deal {i}") for i in range(60)]
    adapter = fake.adapter()
    outcomes = await adapter.upsert_opportunities(records)
    assert [o.action for o in outcomes] == ["created"] * 60
    filters = [json.loads(q.content)["filter"] for q in fake.sent("POST", "/query")]
    assert len(filters) == 4  # 50 + 10 keys, each in the live pages and in the trash
    assert all(len(f["or"]) <= 100 for f in filters)
    asked = [c["rich_text"]["equals"] for f in filters[::2] for c in f["or"]]
    assert asked == [spelling for r in records for spelling in (str(r.id), str(r.id).upper())]
    await adapter.aclose()


async def test_the_same_id_twice_in_one_upsert_is_refused_before_anything_is_sent() -> None:
    fake = FakeNotion()
    key = uuid4()
    adapter = fake.adapter()
    with pytest.raises(ValueError, match=str(key)):
        await adapter.upsert_opportunities(
            [
                OpportunityCreate(id=key, name="a"),
                OpportunityCreate(id=uuid4(), name="b"),
                OpportunityCreate(id=key, name="c"),
            ]
        )
    assert fake.requests == []
    await adapter.aclose()


def test_activity_refs_are_stable_and_differ_for_ids_sharing_a_prefix() -> None:
    first = UUID("01890a5d-ac96-7000-8000-000000000001")  # time-ordered ids one tick apart
    second = UUID("01890a5d-ac96-7000-8000-000000000002")
    assert activity_ref(first) == activity_ref(UUID(str(first)))
    assert activity_ref(first) != activity_ref(second)
    assert len(activity_ref(first)) == 12 and int(activity_ref(first), 16) >= 0


async def test_a_create_without_a_sync_key_is_not_resent_after_an_uncertain_failure() -> None:
    fake = FakeNotion()
    fake.script = [_error(502, "bad_gateway")]
    adapter = fake.adapter()
    with pytest.raises(UnknownHTTPResponseError):
        await adapter.create_opportunity(OpportunityCreate(name="Acme", deal_stage="Lead"))
    assert len(fake.sent("POST", "/v1/pages")) == 1
    await adapter.aclose()


async def test_a_create_refused_with_429_is_resent_without_a_lookup() -> None:
    fake = FakeNotion()
    fake.script = [lambda request: _listing(), _error(429, "rate_limited", {"Retry-After": "1"})]
    adapter = fake.adapter()
    await adapter.create_opportunity(OpportunityCreate(id=uuid4(), name="Acme", deal_stage="Lead"))
    # the one lookup is the one before the first POST; none between the 429 and the resend
    assert len(fake.sent("POST", "/v1/pages")) == 2 and len(fake.sent("POST", "/query")) == 1
    await adapter.aclose()


# --- the token stays secret -----------------------------------------------------------------------


async def test_the_token_never_reaches_logs_reprs_or_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = FakeNotion()
    fake.script = [_error(503, "service_unavailable"), _error(400, "validation_error")]
    adapter = fake.adapter()
    caplog.set_level(logging.DEBUG)
    with pytest.raises(Exception) as raised:
        await adapter.list_opportunities(OpportunityFilter())
    texts = [
        caplog.text,
        repr(adapter),
        str(raised.value),
        repr(raised.value),
        repr(adapter._caller),
    ]
    assert all(TOKEN not in text for text in texts)
    assert fake.requests[0].headers["authorization"] == f"Bearer {TOKEN}"  # it is sent, only to Notion
    await adapter.aclose()
