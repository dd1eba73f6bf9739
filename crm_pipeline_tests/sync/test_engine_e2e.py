"""SyncEngine end to end over Notion: the real deal store and the sandbox Notion over HTTP, one rule
at a time (the rules every connector shares run over Notion in test_engine_rules.py).

The agent writes through the repository (its change log dates each field); a human edits pages
through the sandbox's control surface, on the sandbox's clock. Request counts come from the
sandbox's statistics.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest

from crm_pipeline.crm import NotionAdapter, PostgresAdapter, SyncEngine
from crm_pipeline.models import ActivityCreate, OpportunityCreate, OpportunityRead, OpportunityUpdate, SyncResult
from crm_pipeline.sandbox import DEFAULT_TOKEN, NOTION_VERSION, RunningSandbox
from crm_pipeline.store import DealRepository
from crm_pipeline.sync import Direction
from crm_pipeline.sync.entries import QueuedActivity
from crm_pipeline.sync.ownership import DEFAULT_FIELD_OWNERSHIP
from crm_pipeline_tests.crm.conftest import Workspace

pytestmark = pytest.mark.integration


async def new_deal(
    repository: DealRepository, tenant: str, name: str = "Acme renewal", **fields: Any
) -> OpportunityRead:
    return await repository.create_opportunity(tenant, OpportunityCreate(name=name, **fields))


def key_of(page: dict[str, Any]) -> str:
    return "".join(t["plain_text"] for t in page["properties"]["Sync Key"]["rich_text"])


def page_of(workspace: Workspace, deal_id: UUID) -> dict[str, Any]:
    [page] = [page for page in workspace.control.all_pages(workspace.data_source_id) if key_of(page) == str(deal_id)]
    return page


def human_edit(workspace: Workspace, page_id: str, **properties: Any) -> None:
    workspace.control.human_update_page(page_id, {"properties": properties})


def page_writes(workspace: Workspace) -> int:
    routes = workspace.control.stats()["by_route"]
    return sum(sum(routes.get(route, {}).values()) for route in ("POST /v1/pages", "PATCH /v1/pages/{page_id}"))


async def stored(repository: DealRepository, tenant: str, deal_id: UUID) -> OpportunityRead:
    deal = await repository.get_opportunity(tenant, deal_id)
    assert deal is not None
    return deal


def moved_clock(workspace: Workspace, minutes: float) -> None:
    """The sandbox's clock at the real time plus ``minutes`` (the deal store dates by the real clock)."""
    workspace.control.set_clock(datetime.now(UTC) + timedelta(minutes=minutes))


async def test_a_new_deal_is_created_in_notion_once_with_its_sync_key(
    engine: SyncEngine, repository: DealRepository, tenant: str, workspace: Workspace
) -> None:
    deal = await new_deal(repository, tenant, estimated_value=Decimal("1200.50"), custom_notes="from the agent")
    result = await engine.run_pass()
    assert (result.created, result.errors) == (1, [])
    page = page_of(workspace, deal.id)
    assert page["properties"]["Value"]["number"] == 1200.5
    assert page["properties"]["Notes"]["rich_text"][0]["plain_text"] == "from the agent"
    assert await engine.status.links([deal.id]) == {deal.id: page["id"]}
    # Linked: a second pass neither creates again nor writes anything.
    workspace.control.reset_stats()
    assert await engine.run_pass() == SyncResult()
    assert page_writes(workspace) == 0


async def test_after_a_push_the_next_pass_applies_nothing_and_sends_no_write(
    engine: SyncEngine, repository: DealRepository, tenant: str, workspace: Workspace
) -> None:
    deal = await new_deal(repository, tenant)
    await engine.run_pass()
    await repository.update_opportunity(
        tenant, deal.id, OpportunityUpdate(deal_stage="Qualified", probability=Decimal("0.4"))
    )
    pushed = await engine.run_pass()
    assert (pushed.pushed, pushed.pulled) == (1, 0)
    assert page_of(workspace, deal.id)["properties"]["Stage"]["select"]["name"] == "Qualified"
    # The push echoes back as an edit of the page; it is recognised by value.
    workspace.control.reset_stats()
    echo = await engine.run_pass()
    assert echo == SyncResult()
    assert page_writes(workspace) == 0
    assert workspace.control.stats()["total"] <= 1  # one query for the changes, nothing else


async def test_only_the_fields_that_differ_from_the_base_are_sent(
    engine: SyncEngine, repository: DealRepository, tenant: str, workspace: Workspace
) -> None:
    deal = await new_deal(repository, tenant)
    await engine.run_pass()
    for stage in ("Qualified", "Proposal"):  # two writes of one record coalesce into one page write
        await repository.update_opportunity(tenant, deal.id, OpportunityUpdate(deal_stage=stage))
    await repository.update_opportunity(tenant, deal.id, OpportunityUpdate(qualification_snapshot={"budget": "ok"}))
    sent: list[Any] = []
    workspace.sent.clear()
    await engine.run_pass()
    sent = [body for method, path, body in workspace.sent if method == "PATCH"]
    assert len(sent) == 1
    [written] = sent
    assert [prop["select"]["name"] for prop in written["properties"].values()] == ["Proposal"]


async def test_two_human_edits_within_one_minute_both_come_in(
    engine: SyncEngine, repository: DealRepository, tenant: str, workspace: Workspace
) -> None:
    deal = await new_deal(repository, tenant)
    await engine.run_pass()
    page_id = page_of(workspace, deal.id)["id"]
    workspace.control.set_clock(datetime(2030, 5, 1, 9, 30, 5, tzinfo=UTC))
    human_edit(workspace, page_id, Value={"number": 10})
    assert (await engine.run_pass()).pulled == 1
    workspace.control.advance_clock(20)  # the same minute: Notion's edit time does not move
    human_edit(workspace, page_id, Value={"number": 20})
    assert (await engine.run_pass()).pulled == 1
    assert (await stored(repository, tenant, deal.id)).estimated_value == Decimal("20")


async def test_a_value_the_store_refuses_fails_that_record_only_and_is_retried(
    engine: SyncEngine, repository: DealRepository, tenant: str, workspace: Workspace
) -> None:
    bad, good = await new_deal(repository, tenant), await new_deal(repository, tenant, name="Globex")
    await engine.run_pass()
    human_edit(workspace, page_of(workspace, bad.id)["id"], Stage={"select": {"name": "Won-ish"}}, Value={"number": 5})
    human_edit(workspace, page_of(workspace, good.id)["id"], Value={"number": 7})
    result = await engine.run_pass()
    assert [(e.record_id, e.field) for e in result.errors] == [(str(bad.id), "deal_stage")]
    assert "unknown deal stage" in result.errors[0].reason
    refused = await stored(repository, tenant, bad.id)
    assert (refused.deal_stage, refused.estimated_value) == ("Lead", Decimal("5"))  # the rest of the record syncs
    assert (await stored(repository, tenant, good.id)).estimated_value == Decimal("7")
    assert [(e.record_id, e.field) for e in await engine.status.errors()] == [(str(bad.id), "deal_stage")]
    # Fixed in Notion: the next pass takes it and clears the ledger.
    human_edit(workspace, page_of(workspace, bad.id)["id"], Stage={"select": {"name": "Proposal"}})
    assert (await engine.run_pass()).errors == []
    assert (await stored(repository, tenant, bad.id)).deal_stage == "Proposal"
    assert await engine.status.errors() == []


async def test_a_failed_external_write_goes_to_the_ledger_and_is_retried(
    engine: SyncEngine, repository: DealRepository, tenant: str, workspace: Workspace
) -> None:
    deal = await new_deal(repository, tenant)
    await engine.run_pass()
    # The store holds it; a Notion number (a double) cannot, exactly.
    too_precise = Decimal("1234567890123456.78")
    await repository.update_opportunity(tenant, deal.id, OpportunityUpdate(estimated_value=too_precise, name="Acme 2"))
    result = await engine.run_pass()
    assert [e.record_id for e in result.errors] == [str(deal.id)]
    assert "Value" in result.errors[0].reason
    assert [e.record_id for e in await engine.status.errors()] == [str(deal.id)]
    await repository.update_opportunity(tenant, deal.id, OpportunityUpdate(estimated_value=Decimal("12.5")))
    assert (await engine.run_pass()).errors == []
    page = page_of(workspace, deal.id)
    assert page["properties"]["Value"]["number"] == 12.5
    assert page["properties"]["Deal Name"]["title"][0]["plain_text"] == "Acme 2"
    assert await engine.status.errors() == []


async def test_a_page_a_human_created_becomes_a_deal_and_gets_its_key(
    engine: SyncEngine, repository: DealRepository, tenant: str, workspace: Workspace
) -> None:
    workspace.control.human_create_page(
        {
            "parent": {"data_source_id": workspace.data_source_id},
            "properties": {
                "Deal Name": {"title": [{"text": {"content": "Vandelay imports"}}]},
                "Stage": {"select": {"name": "Qualified"}},
                "Value": {"number": 42},
            },
        }
    )
    result = await engine.run_pass()
    assert (result.created, result.errors) == (1, [])
    [deal] = await repository.list_opportunities(tenant)
    assert (deal.name, deal.estimated_value) == ("Vandelay imports", Decimal("42"))
    assert page_of(workspace, deal.id)["properties"]["Deal Name"]["title"][0]["plain_text"] == "Vandelay imports"
    await engine.run_pass()
    assert len(await repository.list_opportunities(tenant)) == 1
    assert len(workspace.control.all_pages(workspace.data_source_id)) == 1


async def test_a_page_that_cannot_be_read_is_reported_not_dropped(
    engine: SyncEngine, repository: DealRepository, tenant: str, workspace: Workspace
) -> None:
    page = workspace.control.human_create_page(
        {"parent": {"data_source_id": workspace.data_source_id}, "properties": {"Value": {"number": 1}}}
    )
    result = await engine.run_pass()
    assert [(e.record_id, e.field) for e in result.errors] == [(page["id"], "name")]
    assert await repository.list_opportunities(tenant) == []


async def test_a_concurrent_pass_of_the_same_tenant_skips_at_once(
    engine: SyncEngine, repository: DealRepository, tenant: str
) -> None:
    await new_deal(repository, tenant)
    async with engine.status.pass_lock() as held:
        assert held
        assert await engine.run_pass() == SyncResult(skipped=True)
    assert (await engine.run_pass()).created == 1


async def test_sync_inbound_updates_last_sync(
    engine: SyncEngine,
    primary: PostgresAdapter,
    notion: NotionAdapter,
    repository: DealRepository,
    tenant: str,
    workspace: Workspace,
) -> None:
    deal = await new_deal(repository, tenant)
    await engine.run_pass()
    human_edit(workspace, page_of(workspace, deal.id)["id"], Value={"number": 99})
    before = datetime.now(UTC)
    assert (await engine.sync_inbound()).pulled == 1
    assert engine._last_sync is not None and engine._last_sync >= before
    assert (await stored(repository, tenant, deal.id)).estimated_value == Decimal("99")
    # A new process continues from the stored watermark and bases: nothing is pulled again.
    again = SyncEngine(primary, notion, DEFAULT_FIELD_OWNERSHIP)
    assert await again.status.watermark(Direction.INBOUND) is not None
    assert await again.sync_inbound() == SyncResult()


async def test_sync_outbound_reads_the_page_first_and_keeps_a_human_edit(
    engine: SyncEngine, repository: DealRepository, tenant: str, workspace: Workspace
) -> None:
    deal = await new_deal(repository, tenant)
    await engine.run_pass()
    human_edit(workspace, page_of(workspace, deal.id)["id"], Notes={"rich_text": [{"text": {"content": "keep me"}}]})
    await repository.update_opportunity(tenant, deal.id, OpportunityUpdate(deal_stage="Qualified"))
    changes = await repository.changes_since(tenant, datetime(2000, 1, 1, tzinfo=UTC))
    result = await engine.sync_outbound(changes)
    assert (result.pushed, result.pulled) == (1, 1)
    page = page_of(workspace, deal.id)
    assert page["properties"]["Stage"]["select"]["name"] == "Qualified"
    assert page["properties"]["Notes"]["rich_text"][0]["plain_text"] == "keep me"
    assert uuid4() != deal.id


async def test_plan_says_what_a_pass_would_do_and_writes_nothing(
    engine: SyncEngine, repository: DealRepository, tenant: str, workspace: Workspace
) -> None:
    linked = await new_deal(repository, tenant, estimated_value=Decimal("100"))
    await engine.run_pass()
    new = await new_deal(repository, tenant, name="Globex")
    await repository.update_opportunity(tenant, linked.id, OpportunityUpdate(estimated_value=Decimal("200")))
    moved_clock(workspace, 10)
    human_edit(workspace, page_of(workspace, linked.id)["id"], Value={"number": 300})
    workspace.control.reset_stats()
    plan = await engine.plan()
    assert [deal.id for deal in plan.creates] == [new.id]
    [record] = plan.records
    assert (record.record_id, record.pull, record.conflicts) == (linked.id, {"estimated_value": Decimal("300")}, 1)
    assert plan.summary() == SyncResult(pulled=1, conflicts=1, created=1)
    assert page_writes(workspace) == 0
    assert (await stored(repository, tenant, linked.id)).estimated_value == Decimal("200")
    # Nothing moved: the pass itself then does exactly that.
    result = await engine.run_pass()
    assert (result.created, result.pulled, result.conflicts) == (1, 1, 1)


def patches(workspace: Workspace) -> dict[str, int]:
    return workspace.requests_to("PATCH", "/v1/pages/{page_id}")


async def test_a_write_whose_answer_was_lost_is_read_back_and_never_resent_over_a_human_edit(
    engine: SyncEngine, repository: DealRepository, tenant: str, workspace: Workspace
) -> None:
    deal = await new_deal(repository, tenant)
    await engine.run_pass()
    page_id = page_of(workspace, deal.id)["id"]
    await repository.update_opportunity(tenant, deal.id, OpportunityUpdate(deal_stage="Qualified"))
    workspace.control.reset_stats()
    workspace.control.add_fault("503", method="PATCH", path="/v1/pages/*")  # not applied, answer lost
    failed = await engine.run_pass()
    assert [e.record_id for e in failed.errors] == [str(deal.id)]
    assert "UncertainWriteError" in failed.errors[0].reason
    assert patches(workspace) == {"503": 1}  # read back, not resent
    # Meanwhile a person moves the deal on; the next pass reads the page afresh and decides.
    moved_clock(workspace, 10)
    human_edit(workspace, page_id, Stage={"select": {"name": "Proposal"}})
    settled = await engine.run_pass()
    assert (settled.errors, settled.conflicts) == ([], 1)
    assert (await stored(repository, tenant, deal.id)).deal_stage == "Proposal"
    assert page_of(workspace, deal.id)["properties"]["Stage"]["select"]["name"] == "Proposal"


async def test_a_write_that_landed_but_whose_answer_was_lost_counts_as_written(
    engine: SyncEngine, repository: DealRepository, tenant: str, workspace: Workspace
) -> None:
    deal = await new_deal(repository, tenant)
    await engine.run_pass()
    await repository.update_opportunity(tenant, deal.id, OpportunityUpdate(deal_stage="Qualified"))
    workspace.control.reset_stats()
    workspace.control.add_fault("503", method="PATCH", path="/v1/pages/*", applied=True)
    result = await engine.run_pass()
    assert (result.pushed, result.errors) == (1, [])
    assert patches(workspace) == {"503": 1}
    assert page_of(workspace, deal.id)["properties"]["Stage"]["select"]["name"] == "Qualified"
    assert await engine.run_pass() == SyncResult()


async def test_a_pass_out_of_time_leaves_the_rest_to_the_next_one(
    engine: SyncEngine,
    primary: PostgresAdapter,
    notion: NotionAdapter,
    repository: DealRepository,
    tenant: str,
    workspace: Workspace,
) -> None:
    linked = await new_deal(repository, tenant)
    await engine.run_pass()
    hurried = SyncEngine(primary, notion, DEFAULT_FIELD_OWNERSHIP, time_budget_seconds=0)
    new = [await new_deal(repository, tenant, name=f"Deal {n}") for n in range(3)]
    await repository.update_opportunity(tenant, linked.id, OpportunityUpdate(deal_stage="Qualified"))
    human_edit(workspace, page_of(workspace, linked.id)["id"], Notes={"rich_text": [{"text": {"content": "hi"}}]})
    workspace.control.reset_stats()
    out_of_time = await hurried.run_pass()
    assert (out_of_time.deferred, out_of_time.created, out_of_time.pushed, out_of_time.errors) == (4, 0, 0, [])
    assert page_writes(workspace) == 0
    # Both watermarks moved on; the ledger carries the push left, the deals without a page are
    # found again as deals without a link, and the next pass does both.
    assert [entry.record_id for entry in await engine.status.errors()] == [str(linked.id)]
    resumed = await engine.run_pass()
    assert (resumed.created, resumed.pushed, resumed.pulled, resumed.errors) == (3, 1, 1, [])
    assert [len(workspace.control.all_pages(workspace.data_source_id))] == [1 + len(new)]
    assert (await stored(repository, tenant, linked.id)).custom_notes == "hi"
    assert await engine.status.errors() == []


async def test_deals_past_the_creates_a_pass_plans_are_created_by_later_passes_beside_failed_creates(
    primary: PostgresAdapter, notion: NotionAdapter, repository: DealRepository, tenant: str, workspace: Workspace
) -> None:
    """A pass plans creates for the first deals without a link (``creates_per_pass``); the rest wait
    unmarked and are counted as deferred. A create that fails is retried from the ledger beside
    them, so failing creates at the front of the id order hold nothing back."""
    engine = SyncEngine(primary, notion, DEFAULT_FIELD_OWNERSHIP, creates_per_pass=2)
    too_precise = Decimal("1234567890123456.78")  # a Notion number (a double) cannot hold it
    failing = [
        await new_deal(repository, tenant, name=f"Bad {n}", id=UUID(int=n), estimated_value=too_precise) for n in (1, 2)
    ]
    deals = [*failing, *[await new_deal(repository, tenant, name=f"Deal {n}") for n in range(5)]]

    passes = [await engine.run_pass() for _ in range(4)]
    assert [(p.created, p.deferred, len(p.errors)) for p in passes] == [(0, 5, 2), (2, 3, 2), (2, 1, 2), (1, 0, 2)]
    assert {entry.record_id for entry in await engine.status.errors()} == {str(deal.id) for deal in failing}
    for deal in failing:
        await repository.update_opportunity(tenant, deal.id, OpportunityUpdate(estimated_value=Decimal(5)))
    assert (await engine.run_pass()).model_dump(include={"created", "deferred", "errors"}) == {
        "created": 2,
        "deferred": 0,
        "errors": [],
    }
    assert set(await engine.status.links()) == {deal.id for deal in deals}
    keys = [key_of(page) for page in workspace.control.all_pages(workspace.data_source_id)]
    assert sorted(keys) == sorted(str(deal.id) for deal in deals)  # one page each
    assert await engine.status.errors() == []
    assert await engine.run_pass() == SyncResult()


async def test_a_first_load_pass_holds_only_the_changes_of_linked_deals_and_reads_the_deals_it_creates(
    primary: PostgresAdapter,
    notion: NotionAdapter,
    repository: DealRepository,
    tenant: str,
    workspace: Workspace,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A load's changes are of deals without a link, created from their rows: the read counts them
    and holds none, so a pass holds the linked deals' changes and reads the deals it creates, however
    many wait."""
    engine = SyncEngine(primary, notion, DEFAULT_FIELD_OWNERSHIP, creates_per_pass=5)
    linked = await new_deal(repository, tenant)
    await engine.run_pass()
    load = [OpportunityCreate(id=uuid4(), name=f"Deal {n}") for n in range(40)]
    await repository.bulk_upsert_opportunities(tenant, load)
    await repository.update_opportunity(tenant, linked.id, OpportunityUpdate(deal_stage="Qualified"))
    deals_read: list[int] = []
    get_opportunities = primary.get_opportunities

    async def counted(external_ids: Sequence[str]) -> list[OpportunityRead]:
        deals_read.append(len(external_ids))
        return await get_opportunities(external_ids)

    monkeypatch.setattr(primary, "get_opportunities", counted)

    read = await engine.read_primary()
    assert ([change.record_id for change in read.changes], read.passed_over) == ([str(linked.id)], 40)
    decisions = await engine.decide(read, await engine.read_external())
    assert (len(decisions.plan.creates), decisions.plan.creates_waiting) == (5, 35)
    assert sum(deals_read) <= 5 + 1  # the creates and the linked deal changed
    tally = await engine.write_outbound(decisions)
    result = await engine.write_inbound(decisions, [*tally.failures, *tally.deferred])
    assert (tally.result().created, tally.result().pushed, result.errors) == (5, 1, [])
    # The watermark moved past the load: the next pass reads nothing and creates the next five.
    assert (await engine.read_primary()).passed_over == 0
    assert (await engine.run_pass()).created == 5


async def test_a_deal_linked_by_key_is_decided_with_the_changes_its_read_passed_over(
    engine: SyncEngine, repository: DealRepository, tenant: str, workspace: Workspace
) -> None:
    """A create landed but its link was lost, a person set a stage on the page, then the agent set
    another: linked by key, a first link decides the shared field by time, so the agent's later
    change (held by no read, since the deal had no link) is read back and wins."""
    deal = await new_deal(repository, tenant)
    moved_clock(workspace, -10)
    workspace.control.human_create_page(
        {
            "parent": {"data_source_id": workspace.data_source_id},
            "properties": {
                "Deal Name": {"title": [{"text": {"content": deal.name}}]},
                "Stage": {"select": {"name": "Proposal"}},
                "Sync Key": {"rich_text": [{"text": {"content": str(deal.id)}}]},
            },
        }
    )
    await repository.update_opportunity(tenant, deal.id, OpportunityUpdate(deal_stage="Qualified"))

    result = await engine.run_pass()
    assert (result.created, result.pushed, result.pulled, result.errors) == (0, 1, 0, [])
    assert page_of(workspace, deal.id)["properties"]["Stage"]["select"]["name"] == "Qualified"
    assert (await stored(repository, tenant, deal.id)).deal_stage == "Qualified"


@pytest.fixture
def watchful(primary: PostgresAdapter, notion: NotionAdapter) -> SyncEngine:
    """An engine that reads Notion's trash every pass."""
    return SyncEngine(primary, notion, DEFAULT_FIELD_OWNERSHIP, trash_check_seconds=0)


async def test_archiving_a_deal_trashes_its_page_and_restoring_it_restores_the_page(
    watchful: SyncEngine, repository: DealRepository, tenant: str, workspace: Workspace
) -> None:
    deal = await new_deal(repository, tenant)
    await watchful.run_pass()
    await repository.archive_opportunity(tenant, deal.id)
    assert (await watchful.run_pass()).trashed == 1
    assert page_of(workspace, deal.id)["in_trash"]
    assert await watchful.run_pass() == SyncResult()
    await repository.restore_opportunity(tenant, deal.id)
    assert (await watchful.run_pass()).errors == []
    assert not page_of(workspace, deal.id)["in_trash"]
    # Live again: fields travel as before.
    await repository.update_opportunity(tenant, deal.id, OpportunityUpdate(deal_stage="Qualified"))
    assert (await watchful.run_pass()).pushed == 1


async def test_a_page_trashed_in_notion_archives_the_deal_and_restoring_it_restores_the_deal(
    watchful: SyncEngine, repository: DealRepository, tenant: str, workspace: Workspace
) -> None:
    deal = await new_deal(repository, tenant)
    await watchful.run_pass()
    page_id = page_of(workspace, deal.id)["id"]
    workspace.control.human_update_page(page_id, {"in_trash": True})
    assert (await watchful.run_pass()).trashed == 1
    assert (await stored(repository, tenant, deal.id)).archived_at is not None  # archived, never deleted
    # The agent's writes to an archived deal do not reach the trashed page.
    await repository.update_opportunity(tenant, deal.id, OpportunityUpdate(deal_stage="Qualified"))
    assert (await watchful.run_pass()).errors == []
    workspace.control.human_update_page(page_id, {"in_trash": False})
    assert (await watchful.run_pass()).errors == []
    assert (await stored(repository, tenant, deal.id)).archived_at is None
    assert (await watchful.run_pass()).pushed == 1  # the stage the agent set meanwhile goes out
    assert page_of(workspace, deal.id)["properties"]["Stage"]["select"]["name"] == "Qualified"


def paragraphs(workspace: Workspace, page_id: str) -> list[str]:
    """The page's paragraphs' first lines, without the activity reference."""
    headers = {"Authorization": f"Bearer {DEFAULT_TOKEN}", "Notion-Version": NOTION_VERSION}
    response = httpx.get(f"{workspace.base_url}/v1/blocks/{page_id}/children", headers=headers)
    texts = [
        "".join(item["plain_text"] for item in block["paragraph"]["rich_text"]) for block in response.json()["results"]
    ]
    return [text.splitlines()[0].split(" · ref ")[0] for text in texts]


async def test_activities_appear_on_the_page_once_each_in_order(
    engine: SyncEngine, repository: DealRepository, tenant: str, workspace: Workspace
) -> None:
    deal = await new_deal(repository, tenant)
    start = datetime(2027, 1, 4, 9, 0, tzinfo=UTC)
    for minutes, subject in ((30, "second"), (0, "first")):  # logged out of order
        activity = ActivityCreate(
            opportunity_id=deal.id, kind="call", subject=subject, occurred_at=start + timedelta(minutes=minutes)
        )
        await repository.create_activity(tenant, activity)
    planned = (await engine.plan()).activities  # the plan shows them before anything is written
    assert [(a.deal_id, a.occurred_at) for a in planned] == [(deal.id, start), (deal.id, start + timedelta(minutes=30))]
    await engine.run_pass()  # creates the page, then appends
    page_id = page_of(workspace, deal.id)["id"]
    assert paragraphs(workspace, page_id) == [
        "Call: first (2027-01-04 09:00 UTC)",
        "Call: second (2027-01-04 09:30 UTC)",
    ]
    await engine.run_pass()
    assert len(paragraphs(workspace, page_id)) == 2


async def test_an_activity_appended_before_a_crash_is_not_appended_again(
    engine: SyncEngine, notion: NotionAdapter, repository: DealRepository, tenant: str, workspace: Workspace
) -> None:
    deal = await new_deal(repository, tenant)
    await engine.run_pass()
    logged = await repository.create_activity(tenant, ActivityCreate(opportunity_id=deal.id, subject="Demo booked"))
    # The state a crash between the append and its record leaves: queued, attempted, landed.
    await engine.status.queue_activities([QueuedActivity(logged.id, deal.id, logged.occurred_at)])
    await engine.status.activity_attempted(logged.id)
    await notion.create_activity(
        ActivityCreate.model_validate(logged.model_dump(include=set(ActivityCreate.model_fields)))
    )
    assert (await engine.run_pass()).errors == []
    assert paragraphs(workspace, page_of(workspace, deal.id)["id"]) == [
        f"Note: Demo booked ({logged.occurred_at:%Y-%m-%d %H:%M %Z})"
    ]
    assert await engine.status.pending_activities() == []


@pytest.fixture
def reconciling(primary: PostgresAdapter, notion: NotionAdapter) -> SyncEngine:
    """An engine that reconciles a slice of two linked records every pass."""
    return SyncEngine(primary, notion, DEFAULT_FIELD_OWNERSHIP, reconcile_seconds=0, reconcile_per_pass=2)


def vanish(sandbox: RunningSandbox, page_id: str) -> None:
    """The page is gone for the integration (deleted for good, or no longer shared): a 404."""
    workspace = sandbox.sandbox.workspace
    del workspace.pages[page_id]
    for source in workspace.data_sources.values():
        if source.pages.pop(page_id, None) is not None:
            source.rows_version += 1


async def test_reconciliation_goes_round_every_linked_record_and_starts_over(
    reconciling: SyncEngine, repository: DealRepository, tenant: str, workspace: Workspace
) -> None:
    deals = sorted([(await new_deal(repository, tenant, name=f"Deal {n}")).id for n in range(4)])
    await reconciling.run_pass()  # links all four (the slice read nothing yet)
    workspace.control.reset_stats()
    slices = []
    for _ in range(3):
        slices.append(sorted(await reconciling._reconcile_slice()))
        await reconciling.run_pass()
    assert slices[:2] == [deals[:2], deals[2:]]
    assert slices[2] == deals[:2]  # round again from the first


async def test_reconciliation_catches_an_edit_the_watermark_missed(
    reconciling: SyncEngine, repository: DealRepository, tenant: str, workspace: Workspace
) -> None:
    deal = await new_deal(repository, tenant)
    await reconciling.run_pass()
    # An edit dated long before the inbound watermark (a clock skew, a restored backup): the
    # change read never sees it.
    workspace.control.set_clock(datetime(2001, 1, 1, tzinfo=UTC))
    human_edit(workspace, page_of(workspace, deal.id)["id"], Value={"number": 5})
    result = await reconciling.run_pass()
    assert result.pulled == 1
    assert (await stored(repository, tenant, deal.id)).estimated_value == Decimal("5")


async def test_a_vanished_page_is_queued_never_deleted_and_a_mass_vanish_trips_the_breaker(
    reconciling: SyncEngine,
    repository: DealRepository,
    tenant: str,
    workspace: Workspace,
    sandbox_server: RunningSandbox,
) -> None:
    deals = [await new_deal(repository, tenant, name=f"Deal {n}") for n in range(4)]
    await reconciling.run_pass()
    first, second = sorted(deal.id for deal in deals)[:2]
    vanish(sandbox_server, page_of(workspace, first)["id"])
    result = await reconciling.run_pass()  # reconciles the first two: one vanished
    assert result.errors == [] and result.trashed == 0
    assert set(await reconciling.status.pending_deletes()) == {first}
    for deal in deals:
        assert (await stored(repository, tenant, deal.id)).archived_at is None
    # Three of four gone at once: the breaker queues none of them and says so.
    for deal_id in sorted(deal.id for deal in deals)[2:]:
        vanish(sandbox_server, page_of(workspace, deal_id)["id"])
    tripped = await reconciling.run_pass()  # the next slice: the other two, both gone
    assert [error.reason.split(":")[0] for error in tripped.errors] == ["mass-delete breaker"]
    assert set(await reconciling.status.pending_deletes()) == {first}
    assert second not in await reconciling.status.pending_deletes()
    # A person approves the queued delete: the deal is archived (soft), and not queued again.
    assert await reconciling.approve_pending_deletes() == 1
    assert (await stored(repository, tenant, first)).archived_at is not None
    assert await reconciling.status.pending_deletes() == {}
    await reconciling.run_pass()
    await reconciling.run_pass()
    assert await reconciling.status.pending_deletes() == {}


async def test_a_duplicate_page_of_a_deal_brings_its_edits_in_and_goes_to_the_trash(
    engine: SyncEngine, repository: DealRepository, tenant: str, workspace: Workspace
) -> None:
    deal = await new_deal(repository, tenant, estimated_value=Decimal("10"))
    await engine.run_pass()
    kept = page_of(workspace, deal.id)["id"]
    # A create that timed out yet landed later: a second page with the same key, edited by a person.
    workspace.control.human_create_page(
        {
            "parent": {"data_source_id": workspace.data_source_id},
            "properties": {
                "Deal Name": {"title": [{"text": {"content": "Acme renewal"}}]},
                "Stage": {"select": {"name": "Lead"}},
                "Value": {"number": 77},
                "Sync Key": {"rich_text": [{"text": {"content": str(deal.id)}}]},
            },
        }
    )
    result = await engine.run_pass()
    assert (result.trashed, result.pulled, result.errors) == (1, 1, [])
    assert (await stored(repository, tenant, deal.id)).estimated_value == Decimal("77")
    live = [p for p in workspace.control.all_pages(workspace.data_source_id) if not p["in_trash"]]
    assert [p["id"] for p in live] == [kept]
    assert live[0]["properties"]["Value"]["number"] == 77  # the kept page takes the person's edit too
    assert await engine.run_pass() == SyncResult()


async def test_a_late_landing_create_no_person_touched_brings_no_stale_value_in(
    engine: SyncEngine, repository: DealRepository, tenant: str, workspace: Workspace
) -> None:
    deal = await new_deal(repository, tenant)
    await engine.run_pass()
    kept = page_of(workspace, deal.id)["id"]
    await repository.update_opportunity(tenant, deal.id, OpportunityUpdate(deal_stage="Qualified"))
    await engine.run_pass()
    # The first create, timed out long ago, lands now: the integration's page with the old stage.
    headers = {"Authorization": f"Bearer {DEFAULT_TOKEN}", "Notion-Version": NOTION_VERSION}
    properties = {
        "Deal Name": {"title": [{"text": {"content": "Acme renewal"}}]},
        "Stage": {"select": {"name": "Lead"}},
        "Sync Key": {"rich_text": [{"text": {"content": str(deal.id)}}]},
    }
    body = {"parent": {"data_source_id": workspace.data_source_id}, "properties": properties}
    httpx.post(f"{workspace.base_url}/v1/pages", headers=headers, json=body).raise_for_status()

    result = await engine.run_pass()
    assert (result.trashed, result.pulled, result.errors) == (1, 0, [])
    assert (await stored(repository, tenant, deal.id)).deal_stage == "Qualified"
    live = [p for p in workspace.control.all_pages(workspace.data_source_id) if not p["in_trash"]]
    assert [p["id"] for p in live] == [kept]
    assert live[0]["properties"]["Stage"]["select"]["name"] == "Qualified"


async def test_tags_a_human_sets_come_in_and_an_agent_write_to_them_is_put_back(
    engine: SyncEngine, repository: DealRepository, tenant: str, workspace: Workspace
) -> None:
    deal = await new_deal(repository, tenant)
    await engine.run_pass()
    page_id = page_of(workspace, deal.id)["id"]
    human_edit(workspace, page_id, Tags={"multi_select": [{"name": "vip"}, {"name": "renewal"}]})
    assert (await engine.run_pass()).pulled == 1
    assert (await stored(repository, tenant, deal.id)).manual_tags == ["vip", "renewal"]
    await repository.update_opportunity(tenant, deal.id, OpportunityUpdate(manual_tags=["agent-idea"]))
    workspace.control.reset_stats()
    assert (await engine.run_pass()).pulled == 1
    assert page_writes(workspace) == 0
    assert (await stored(repository, tenant, deal.id)).manual_tags == ["vip", "renewal"]
    # Cleared in Notion: an empty multi-select is no tags, and settles.
    human_edit(workspace, page_id, Tags={"multi_select": []})
    await engine.run_pass()
    assert (await stored(repository, tenant, deal.id)).manual_tags is None
    assert await engine.run_pass() == SyncResult()


async def test_of_several_pages_with_a_deal_key_and_no_link_the_first_created_stays(
    engine: SyncEngine, repository: DealRepository, tenant: str, workspace: Workspace
) -> None:
    deal = await new_deal(repository, tenant)

    def keyed_page(minutes_ago: float) -> str:
        moved_clock(workspace, -minutes_ago)
        properties = {
            "Deal Name": {"title": [{"text": {"content": "Acme renewal"}}]},
            "Stage": {"select": {"name": "Lead"}},
            "Sync Key": {"rich_text": [{"text": {"content": str(deal.id)}}]},
        }
        page = workspace.control.human_create_page(
            {"parent": {"data_source_id": workspace.data_source_id}, "properties": properties}
        )
        return str(page["id"])

    # Each page created earlier than the last, until the first created is not the lowest id (which
    # a choice by id order would keep).
    pages = [keyed_page(1)]
    while min(pages) == pages[-1]:
        pages.append(keyed_page(10 * len(pages) + 1))
    first_created = pages[-1]
    workspace.control.real_clock()

    result = await engine.run_pass()
    assert (result.errors, result.trashed) == ([], len(pages) - 1)
    assert await engine.status.links([deal.id]) == {deal.id: first_created}
    live = [p["id"] for p in workspace.control.all_pages(workspace.data_source_id) if not p["in_trash"]]
    assert live == [first_created]
    assert await engine.run_pass() == SyncResult()
