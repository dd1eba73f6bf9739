"""`crm-pipeline deals list|show`: what the sync did to the demo deals, read back through the real
deal store and the sandbox Notion over HTTP, as a table and as JSON, with exit codes that mean
something."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from crm_pipeline.cli import main
from crm_pipeline.demo import DEMO_NOTION_DATA_SOURCE_ID, DEMO_NOTION_DATABASE_ID
from crm_pipeline.models import OpportunityUpdate
from crm_pipeline.sandbox import RunningSandbox, SandboxControl
from crm_pipeline.settings import Settings, get_settings
from crm_pipeline.store import Database, DealRepository
from crm_pipeline_tests.sync.conftest import configure_demo

pytestmark = pytest.mark.integration

ACME, GLOBEX, INITECH = "Acme Corp platform renewal", "Globex analytics pilot", "Initech seat expansion"
TOO_PRECISE = Decimal("1234567890123456.78")
"""A value the deal store holds and a Notion number (a double) cannot: its push fails."""


def command(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def page_id(control: SandboxControl, name: str) -> str:
    [page] = [
        page
        for page in control.all_pages(DEMO_NOTION_DATA_SOURCE_ID)
        if page["properties"]["Deal Name"]["title"][0]["plain_text"] == name
    ]
    return str(page["id"])


async def revalue(tenant: str, name: str, value: Decimal) -> None:
    """The agent revalues a deal in the deal store."""
    async with await Database.open(get_settings()) as database:
        repository = DealRepository(database)
        [deal] = await repository.search_opportunities(tenant, name)
        await repository.update_opportunity(tenant, deal.id, OpportunityUpdate(estimated_value=value))


@pytest.fixture(scope="module")
def synced(store_settings: Settings, sandbox_server: RunningSandbox, control: SandboxControl) -> Iterator[str]:
    """The demo tenant after its first pass (7 conflicts decided) and a second one that pulled a
    person's edit of Globex's notes and failed to push Initech's new value. Shared by this
    module's tests, which only read."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        tenant = configure_demo(store_settings, sandbox_server, control, monkeypatch)
        assert main(["sync", "--tenant", tenant]) == 0
        control.advance_clock(120)
        notes = {"rich_text": [{"text": {"content": "Call booked for Friday"}}]}
        control.human_update_page(page_id(control, GLOBEX), {"properties": {"Notes": notes}})
        asyncio.run(revalue(tenant, INITECH, TOO_PRECISE))
        assert main(["sync", "--tenant", tenant]) == 0
        yield tenant
    get_settings.cache_clear()


def test_deals_list_shows_each_deal_with_its_link_and_last_editor(
    synced: str, control: SandboxControl, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = command(capsys, "deals", "list", "--tenant", synced, "--json")

    assert (code, err) == (0, "")
    deals = {deal["name"]: deal for deal in json.loads(out)["deals"]}
    assert len(deals) == 32  # the agent's 24 and the team's 8, every one linked
    globex = deals[GLOBEX]
    assert globex["link"] == {
        "state": "linked",
        "crm": "Notion",
        "external_id": page_id(control, GLOBEX),
        "failures": [],
    }
    assert (globex["last_change"]["by"], globex["last_change"]["fields"]) == ("human", ["custom_notes"])
    initech = deals[INITECH]
    assert initech["link"]["state"] == "failed" and initech["link"]["external_id"] == page_id(control, INITECH)
    [failure] = initech["link"]["failures"]
    assert "Value" in failure["reason"] and failure["attempts"] == 1
    assert (initech["last_change"]["by"], initech["value"]) == ("agent", str(TOO_PRECISE))
    assert {deal["link"]["state"] for name, deal in deals.items() if name != INITECH} == {"linked"}

    code, out, _ = command(capsys, "deals", "list", "--tenant", synced, "--search", "GLOBEX")
    assert code == 0
    header, _, row = out.splitlines()
    assert header.split() == ["deal", "stage", "value", "last", "change", "by", "fields", "sync"]
    assert GLOBEX in row and " human " in row and "custom_notes" in row
    assert f"linked: Notion {page_id(control, GLOBEX)}" in row


def test_deals_list_says_when_nothing_matches_and_refuses_an_unknown_tenant(
    synced: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = command(capsys, "deals", "list", "--tenant", synced, "--search", "no such deal")
    assert (code, out) == (1, "") and "no deal" in err
    code, out, err = command(capsys, "deals", "list", "--tenant", "nobody-here")
    assert (code, out) == (2, "") and "unknown tenant 'nobody-here'" in err


def field_rows(shown: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {field["field"]: field for field in shown["fields"]}


def test_deals_show_has_both_sides_the_base_and_the_rule_that_decided_a_conflict(
    synced: str, control: SandboxControl, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = command(capsys, "deals", "show", ACME.upper(), "--tenant", synced, "--json")

    assert (code, err) == (0, "")
    shown = json.loads(out)
    assert (shown["name"], shown["crm"], shown["crm_error"]) == (ACME, "Notion", None)
    assert shown["link"]["state"] == "linked" and shown["link"]["external_id"] == page_id(control, ACME)
    fields = field_rows(shown)
    assert set(fields) >= {"name", "deal_stage", "estimated_value", "probability", "custom_notes"}
    probability = fields["probability"]
    # The agent's 0.7 won over the team's 0.4 (agent-owned): written to Notion, now on both sides.
    assert (probability["postgres"], probability["crm"], probability["base"]) == ("0.7", "0.7", "0.7")
    assert probability["last_write"] | {"at": None} == {
        "at": None,
        "to": "Notion",
        "old": "0.4",
        "new": "0.7",
        "outcome": "conflict",
        "rule": "agent-owned",
    }
    assert fields["name"]["last_write"] is None and fields["name"]["base"] == ACME  # agreed, never rewritten
    assert shown["open_failures"] == []

    code, out, _ = command(capsys, "deals", "show", "acme corp", "--tenant", synced)
    assert code == 0
    assert out.startswith(f"{ACME}  (deal {shown['id']})\nsync: linked: Notion {page_id(control, ACME)}")
    [row] = [line for line in out.splitlines() if line.startswith("probability")]
    assert row.split()[1:4] == ["0.7", "0.7", "0.7"] and "to Notion, agent-owned (conflict)" in row


def test_deals_show_lists_the_open_ledger_entry_of_a_failed_push(
    synced: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = command(capsys, "deals", "show", "initech", "--tenant", synced, "--json")

    assert code == 0
    shown = json.loads(out)
    assert shown["link"]["state"] == "failed"
    [failure] = shown["open_failures"]
    assert (failure["side"], failure["attempts"]) == ("external", 1) and "Value" in failure["reason"]
    value = field_rows(shown)["estimated_value"]
    # The new value waits in the deal store; Notion and the base still hold the agreed one.
    assert (value["postgres"], value["crm"], value["base"]) == (str(TOO_PRECISE), "18500", "18500")

    code, out, _ = command(capsys, "deals", "show", "initech", "--tenant", synced)
    assert "open failures (retried by every pass):" in out and "Value" in out.split("open failures")[1]


def test_deals_show_without_the_crm_still_shows_the_deal_store_and_the_state(
    synced: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Notion refuses the token (a CRM that cannot be reached at all reads the same, after the
    adapter's retries)."""
    monkeypatch.setenv("CRM_PIPELINE_NOTION_TOKEN", "ntn_not_the_right_one")
    monkeypatch.setenv("CRM_PIPELINE_NOTION_DATABASE_ID", DEMO_NOTION_DATABASE_ID)
    get_settings.cache_clear()
    try:
        code, out, _ = command(capsys, "deals", "show", GLOBEX, "--tenant", synced, "--json")
        text_code, text, _ = command(capsys, "deals", "show", GLOBEX, "--tenant", synced)
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()

    assert code == text_code == 4
    shown = json.loads(out)
    assert shown["crm_error"].startswith("could not be read") and "ntn_not_the_right_one" not in out
    assert shown["link"]["state"] == "linked"
    notes = field_rows(shown)["custom_notes"]
    assert (notes["postgres"], notes["crm"], notes["base"]) == (
        "Call booked for Friday",
        None,
        "Call booked for Friday",
    )
    assert (notes["last_write"]["to"], notes["last_write"]["rule"]) == ("PostgreSQL", "human-owned")
    assert "Notion could not be read" in text and "Call booked for Friday" in text


def test_deals_show_lists_the_candidates_of_an_ambiguous_name_and_refuses_unknown_ones(
    synced: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = command(capsys, "deals", "show", "platform", "--tenant", synced)
    assert (code, out) == (3, "")
    assert "deals match 'platform'" in err and ACME in err and "Initech" not in err
    code, out, err = command(capsys, "deals", "show", "no such deal", "--tenant", synced)
    assert (code, out) == (1, "") and "no deal" in err
    code, out, err = command(capsys, "deals", "show", ACME, "--tenant", "nobody-here")
    assert (code, out) == (2, "") and "unknown tenant 'nobody-here'" in err
