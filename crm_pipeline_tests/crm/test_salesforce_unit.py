"""The Salesforce connector's parts that need no Salesforce: the field mapping both ways, the
stage-default rule, and the caller over the real client against a scripted local HTTP server
(each answer given in turn): which failures are retried, the expired token and the spent
allowance stopping at once, the allowance floor, timeouts, usage read from every answer, exact
decimals both ways."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from crm_pipeline.crm.budget import RequestBudget, Window
from crm_pipeline.crm.errors import FieldMappingError
from crm_pipeline.crm.salesforce import (
    SALESFORCE_FIELD_MAP,
    AllowanceFloorError,
    RateLimit,
    RetryPolicy,
    SalesforceAdapter,
    SessionExpiredError,
)
from crm_pipeline.crm.salesforce.api import SalesforceAPI
from crm_pipeline.crm.salesforce.client import Transport, session_for
from crm_pipeline.crm.salesforce.deal_reads import answered_as, stage_default
from crm_pipeline.crm.salesforce.mapping import decode, encode, json_text, parse_time, soql_text, soql_time

STAGES = {"Proposal": "Proposal/Price Quote", "Closed Won": "Closed Won"}
NAMES = {v: k for k, v in STAGES.items()}
TOKEN = "00Dxx!secret-access-token"


# --- mapping --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "ours", "theirs"),
    [
        ("estimated_value", Decimal("12345678901234567.89"), Decimal("12345678901234567.89")),
        ("estimated_value", Decimal("1500"), Decimal("1500.00")),
        ("probability", Decimal("0.35"), 35),
        ("probability", Decimal("1"), 100),
        ("close_date", date(2026, 4, 30), "2026-04-30"),
        ("deal_stage", "Proposal", "Proposal/Price Quote"),
        ("manual_tags", ["vip", "q2"], "vip;q2"),
        ("name", "Acme", "Acme"),
        ("custom_notes", None, None),
    ],
)
def test_values_go_out_and_come_back_unchanged(field: str, ours: Any, theirs: Any) -> None:
    spec = SALESFORCE_FIELD_MAP[field]
    sent = encode(ours, field, spec, STAGES, "key-1")
    assert sent == theirs and type(sent) is type(theirs)
    assert decode(sent, field, spec, NAMES, "006A") == ours


def test_a_probability_finer_than_a_percent_is_rounded_half_up() -> None:
    spec = SALESFORCE_FIELD_MAP["probability"]
    assert [encode(Decimal(p), "probability", spec, STAGES, None) for p in ("0.355", "0.345", "0.004")] == [36, 35, 0]
    assert decode(36, "probability", spec, NAMES, "006A") == Decimal("0.36")
    assert decode(Decimal("35.0"), "probability", spec, NAMES, "006A") == Decimal("0.35")


def test_an_amount_read_as_an_integer_keeps_its_cents() -> None:
    assert decode(1500, "estimated_value", SALESFORCE_FIELD_MAP["estimated_value"], NAMES, "006A") == Decimal("1500.00")


def test_an_unknown_stage_is_refused_naming_record_and_field() -> None:
    spec = SALESFORCE_FIELD_MAP["deal_stage"]
    with pytest.raises(FieldMappingError) as out:
        encode("Negotiation", "deal_stage", spec, STAGES, "key-1")
    assert (out.value.record_id, out.value.field, out.value.property_name) == ("key-1", "deal_stage", "StageName")
    with pytest.raises(FieldMappingError, match="006A.*deal_stage"):
        decode("Perception Analysis", "deal_stage", spec, NAMES, "006A")


def test_bodies_carry_decimals_exactly() -> None:
    body = {"records": [{"Amount": Decimal("12345678901234567.89"), "Name": 'A "quoted" name', "X": None}]}
    assert json.loads(json_text(body), parse_float=Decimal) == body


def test_an_asked_id_matches_its_record_as_15_characters_or_as_18_in_any_case() -> None:
    found = {"006Sb0000000001IAA": {}}
    asked = ["006Sb0000000001", "006sb0000000001iaa", "006SB0000000001IAA", "006sb0000000001"]
    # a 15-character id is case-sensitive
    assert answered_as(asked, found) == dict.fromkeys(asked[:3], "006Sb0000000001IAA")


def test_times_and_texts_for_soql() -> None:
    assert parse_time("2026-01-02T03:04:05.000+0000") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert soql_time(datetime(2026, 1, 2, 3, 4, 5, 999_000, tzinfo=UTC)) == "2026-01-02T03:04:05Z"
    assert soql_text("O'Brien \\ co") == "'O\\'Brien \\\\ co'"


# --- the stage's default --------------------------------------------------------------------------

STAMP = "2026-03-02T09:30:15.000+0000"


def history(field: str, value: object, user: str = "005PERSON", at: str = STAMP) -> dict[str, Any]:
    return {"Field": field, "NewValue": value, "CreatedById": user, "CreatedDate": at}


@pytest.mark.parametrize(
    ("probability", "stage", "by_the_stage"),
    [
        (history("Probability", 75), history("StageName", "Proposal/Price Quote"), True),
        (history("Probability", Decimal("75.0")), history("StageName", "Proposal/Price Quote"), True),
        (history("Probability", 40), history("StageName", "Proposal/Price Quote"), False),  # set by hand
        (history("Probability", 75), None, False),  # no stage change
        (history("Probability", 75), history("StageName", "Proposal/Price Quote", user="005OTHER"), False),
        (
            history("Probability", 75),
            history("StageName", "Proposal/Price Quote", at="2026-03-02T09:30:14.000+0000"),
            False,
        ),
    ],
)
def test_a_probability_set_by_a_stage_change_is_the_stages_doing(
    probability: dict[str, Any], stage: dict[str, Any] | None, by_the_stage: bool
) -> None:
    assert stage_default(probability, stage, {"Proposal/Price Quote": 75, "Closed Won": 100}) is by_the_stage


# --- the caller over a scripted server ------------------------------------------------------------


@dataclass
class Answer:
    status: int = 200
    body: Any = None
    usage: str | None = "api-usage=10/15000"
    delay: float = 0.0
    raw: str | None = None
    """The body as sent, when it must not pass through Python floats."""


@dataclass
class Scripted:
    """A local HTTP server answering each request with the next scripted answer."""

    answers: list[Answer] = field(default_factory=list)
    requests: list[tuple[str, str, bytes]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def scripted() -> Iterator[Scripted]:
    state = Scripted()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            state.requests.append((self.command, self.path, self.rfile.read(length)))
            answer = state.answers.pop(0) if state.answers else Answer(500, [{"errorCode": "UNSCRIPTED"}])
            time.sleep(answer.delay)
            raw = (answer.raw or ("" if answer.body is None else json.dumps(answer.body))).encode()
            self.send_response(answer.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            if answer.usage:
                self.send_header("Sforce-Limit-Info", answer.usage)
            self.end_headers()
            try:
                self.wfile.write(raw)
            except BrokenPipeError:  # the client timed out and left
                pass

        do_GET = do_POST = do_PATCH = do_DELETE = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


async def no_sleep(seconds: float) -> None:
    pass


def api_for(scripted: Scripted, **limit: Any) -> SalesforceAPI:
    adapter = SalesforceAdapter(
        TOKEN,
        instance_url=scripted.url,
        token_ref="env ACME_SALESFORCE_TOKEN",
        retry=RetryPolicy(max_attempts=4, sleep=no_sleep),
        rate_limit=RateLimit(**({"per_minute": 0, "sleep": no_sleep} | limit)),
        timeout_s=1.0,
    )
    return adapter.api


def page(*records: dict[str, Any]) -> Answer:
    return Answer(body={"totalSize": len(records), "done": True, "records": list(records)})


async def test_transient_failures_and_row_locks_are_retried(scripted: Scripted) -> None:
    scripted.answers = [
        Answer(503, "<html>down for maintenance</html>"),
        Answer(400, [{"errorCode": "UNABLE_TO_LOCK_ROW", "message": "locked", "fields": []}]),
        Answer(502, None),
        page({"Id": "006A"}),
    ]
    assert await api_for(scripted).query("SELECT Id FROM Opportunity") == [{"Id": "006A"}]
    assert [(m, p.split("?")[0]) for m, p, _ in scripted.requests] == [("GET", "/services/data/v62.0/query/")] * 4


async def test_data_errors_are_not_retried(scripted: Scripted) -> None:
    scripted.answers = [Answer(400, [{"errorCode": "MALFORMED_QUERY", "message": "bad", "fields": []}])]
    with pytest.raises(Exception) as out:
        await api_for(scripted).query("SELECT")
    assert getattr(out.value, "status", None) == 400 and len(scripted.requests) == 1


async def test_an_expired_token_stops_naming_where_it_comes_from_never_the_token(scripted: Scripted) -> None:
    scripted.answers = [Answer(401, [{"errorCode": "INVALID_SESSION_ID", "message": "Session expired or invalid"}])]
    with pytest.raises(SessionExpiredError) as out:
        await api_for(scripted).query("SELECT Id FROM Opportunity")
    assert "env ACME_SALESFORCE_TOKEN" in str(out.value) and TOKEN not in str(out.value)
    assert len(scripted.requests) == 1


async def test_the_days_limit_stops_the_pass_without_retrying(scripted: Scripted) -> None:
    scripted.answers = [
        Answer(
            403,
            [{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "TotalRequests Limit exceeded."}],
            usage="api-usage=15000/15000",
        )
    ]
    with pytest.raises(AllowanceFloorError):
        await api_for(scripted).query("SELECT Id FROM Opportunity")
    assert len(scripted.requests) == 1


async def test_the_concurrent_request_limit_is_waited_out(scripted: Scripted) -> None:
    """The same code with requests left in the day (the answer's own usage): the org's long-running
    requests are at their limit, so the request waits and goes again."""
    busy = Answer(403, [{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "ConcurrentPerOrgLongTxn Limit exceeded."}])
    scripted.answers = [busy, Answer(body={"fields": []})]
    assert await api_for(scripted).describe("Opportunity") == {"fields": []}
    assert len(scripted.requests) == 2


async def test_the_allowance_floor_is_kept_from_the_usage_every_answer_reports(scripted: Scripted) -> None:
    scripted.answers = [Answer(body={"fields": []}, usage="api-usage=13600/15000")]
    api = api_for(scripted, floor_fraction=0.1)
    await api.describe("Opportunity")
    assert api.caller.usage is not None and (api.caller.usage.used, api.caller.usage.total) == (13600, 15000)
    scripted.answers = [Answer(body={"fields": []}, usage="api-usage=13500/15000")]
    with pytest.raises(AllowanceFloorError, match="13600 of its 15000"):
        await api.describe("Opportunity")  # 1,400 left, under the floor of 1,500: nothing sent
    assert len(scripted.requests) == 1


async def test_a_hung_request_times_out_and_is_retried(scripted: Scripted) -> None:
    scripted.answers = [Answer(delay=2.0, body={"fields": []}), Answer(body={"fields": ["ok"]})]
    assert await api_for(scripted).describe("Opportunity") == {"fields": ["ok"]}


@pytest.mark.parametrize(
    ("instance_url", "url"),
    [
        ("https://acme.my.salesforce.com:443", "https://acme.my.salesforce.com/services/data/v62.0/query/"),
        ("https://acme.my.salesforce.com", "https://login.salesforce.com/services/oauth2/token"),
        ("http://127.0.0.1:8765", "https://127.0.0.1:8765/services/data/v62.0/query/"),
    ],
)
def test_every_request_of_the_session_has_a_timeout(instance_url: str, url: str) -> None:
    """Whatever URL the client builds (it drops a port 443; login names another host)."""
    transport = session_for(instance_url, 7.0, lambda answer: None).get_adapter(url)
    assert isinstance(transport, Transport) and transport.timeout_s == 7.0


async def test_a_lost_upsert_answer_is_resent_and_decimals_go_both_ways_exactly(scripted: Scripted) -> None:
    amount = Decimal("12345678901234567.89")
    scripted.answers = [
        Answer(503, None),
        Answer(body=[{"id": "006A", "success": True, "errors": [], "created": False}]),
    ]
    api = api_for(scripted)
    [result] = await api.upsert("Opportunity", "Sync_Key__c", [{"Sync_Key__c": "k", "Amount": amount}])
    assert (result.id, result.created) == ("006A", False)
    sent = [json.loads(body, parse_float=Decimal) for _, _, body in scripted.requests]
    assert sent[0] == sent[1] and sent[1]["records"][0]["Amount"] == amount
    assert scripted.requests[1][1] == "/services/data/v62.0/composite/sobjects/Opportunity/Sync_Key__c"
    scripted.answers = [Answer(raw='{"totalSize": 1, "done": true, "records": [{"Amount": 12345678901234567.89}]}')]
    raw = await api.query("SELECT Amount FROM Opportunity")
    assert raw == [{"Amount": amount}]  # parsed as Decimal, never a float


async def test_a_lost_update_answer_is_not_resent(scripted: Scripted) -> None:
    scripted.answers = [Answer(503, None)]
    with pytest.raises(Exception) as out:
        await api_for(scripted).update("Opportunity", [{"id": "006A", "Name": "x"}])
    assert getattr(out.value, "status", None) == 503 and len(scripted.requests) == 1


class RecordingBudget(RequestBudget):
    """A shared budget that grants every slot and remembers what was asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, Window, int]] = []

    async def reserve(self, key: str, window: Window, *, per_day: int = 0) -> float:
        self.asked.append((key, window, per_day))
        return 0.0


async def test_every_attempt_takes_a_slot_of_the_orgs_shared_budget(scripted: Scripted) -> None:
    budget = RecordingBudget()
    scripted.answers = [Answer(503, None), Answer(body={"fields": []})]
    api = api_for(scripted, shared=budget, org="00Dacme", per_minute=120)
    await api.describe("Opportunity")
    assert budget.asked == [("salesforce:00Dacme", Window("requests", 120, 60.0), 0)] * 2


async def test_near_the_floor_each_request_waits_first(scripted: Scripted) -> None:
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    api = api_for(scripted)
    api.caller.limit = RateLimit(per_minute=0, floor_fraction=0.1, slow_band=0.1, slow_wait=2.0, sleep=record)
    scripted.answers = [Answer(body={"fields": []}, usage=f"api-usage={used}/10000") for used in (7000, 8500, 8600)]
    await api.describe("Opportunity")  # nothing known yet
    await api.describe("Opportunity")  # 3,000 left: above the band
    assert waits == []
    await api.describe("Opportunity")  # 1,500 left: within the band above the floor of 1,000
    assert waits == [2.0]
