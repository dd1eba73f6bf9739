"""SalesforceAdapter against the local Salesforce over HTTP, through simple-salesforce: keyed
upserts that land once, per-record refusals, exact values, change reads across second-grained
stamps and pages, a person's edits told from the sync's, the stage's default probability, tasks
appended once, deletes, an expired token and the allowance floor."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest
import pytest_asyncio

from crm_pipeline.crm.errors import FieldMappingError, PropertySchemaError, RecordGoneError
from crm_pipeline.crm.salesforce import (
    AllowanceFloorError,
    RateLimit,
    RetryPolicy,
    SalesforceAdapter,
    SessionExpiredError,
    StageConfigError,
)
from crm_pipeline.models import (
    ActivityCreate,
    Actor,
    OpportunityCreate,
    OpportunityFilter,
    OpportunityRead,
    OpportunityUpdate,
)
from crm_pipeline.salesforce_sandbox import (
    DEFAULT_TOKEN,
    HUMAN_USER,
    RunningSalesforce,
    SalesforceControl,
    sandbox_salesforce,
)
from crm_pipeline_tests.conftest import SALESFORCE_CUSTOM_FIELDS, SALESFORCE_USERNAME, clock_sleep
from crm_pipeline_tests.crm.conftest import deal

pytestmark = pytest.mark.integration


def make_adapter(server: RunningSalesforce, control: SalesforceControl, **overrides: Any) -> SalesforceAdapter:
    settings: dict[str, Any] = {
        "instance_url": server.base_url,
        "tenant_id": "acme",
        "token_ref": "env ACME_SALESFORCE_TOKEN",
        "integration_username": SALESFORCE_USERNAME,
        "retry": RetryPolicy(sleep=clock_sleep(control)),
        "rate_limit": RateLimit(per_minute=0),
        "overlap": timedelta(seconds=30),
    }
    return SalesforceAdapter(overrides.pop("token", DEFAULT_TOKEN), **(settings | overrides))


@pytest_asyncio.fixture
async def adapter(
    salesforce_org: RunningSalesforce, salesforce_control: SalesforceControl
) -> AsyncIterator[SalesforceAdapter]:
    adapter = make_adapter(salesforce_org, salesforce_control)
    yield adapter
    await adapter.aclose()


def stored(control: SalesforceControl, record_id: str) -> dict[str, Any]:
    return next(r for r in control.all_records("Opportunity") if r["Id"] == record_id)


async def created(adapter: SalesforceAdapter, record: OpportunityCreate) -> str:
    [outcome] = await adapter.upsert_opportunities([record])
    assert outcome.ok and outcome.external_id, outcome
    return outcome.external_id


# --- values and keyed writes ----------------------------------------------------------------------


async def test_values_round_trip_exactly(adapter: SalesforceAdapter, salesforce_control: SalesforceControl) -> None:
    # The local Salesforce keeps numbers as doubles on the wire: 15 significant digits stay exact there
    # (the unit tests show the adapter itself exact to 19).
    record = deal(estimated_value=Decimal("1234567890123.45"))
    external_id = await created(adapter, record)
    held = stored(salesforce_control, external_id)
    assert (held["StageName"], held["Probability"], held["Manual_Tags__c"]) == ("Proposal/Price Quote", 35, "vip;q2")
    assert held["Sync_Key__c"] == str(record.id)
    read = await adapter.get_opportunity(external_id)
    assert read is not None and (read.sync_key, read.external_id, read.last_edited_by) == (
        record.id,
        external_id,
        Actor.SYNC,
    )
    assert {f: getattr(read, f) for f in adapter.mapped_fields} == {
        f: getattr(record, f) for f in adapter.mapped_fields
    }


async def test_a_create_whose_answer_was_lost_lands_once(
    adapter: SalesforceAdapter, salesforce_control: SalesforceControl, salesforce_org: RunningSalesforce
) -> None:
    record = deal()
    salesforce_control.add_fault("503", path="*/composite/sobjects/Opportunity/Sync_Key__c", applied=True)
    [outcome] = await adapter.upsert_opportunities([record])
    assert outcome.action == "updated"  # the resend found what the lost answer had created
    fresh = make_adapter(salesforce_org, salesforce_control)
    assert await fresh.create_opportunity(record) == outcome.external_id
    await fresh.aclose()
    assert len(salesforce_control.all_records("Opportunity")) == 1


async def test_a_refused_record_fails_alone_naming_field_and_code(
    adapter: SalesforceAdapter, salesforce_control: SalesforceControl
) -> None:
    salesforce_control.setup(
        custom_fields=SALESFORCE_CUSTOM_FIELDS,
        validation_rules=[{"field": "Amount", "message": "Amounts start at 100", "minimum": "100"}],
    )
    batch = [
        deal(name="First"),
        deal(name="Too small", estimated_value=Decimal("5.00")),
        deal(name="N" * 200),  # Name holds 120 characters
        deal(name="Last"),
    ]
    outcomes = await adapter.upsert_opportunities(batch)
    assert [(o.record_id, o.action) for o in outcomes] == [
        (str(batch[0].id), "created"),
        (str(batch[1].id), "failed"),
        (str(batch[2].id), "failed"),
        (str(batch[3].id), "created"),
    ]
    assert "FIELD_CUSTOM_VALIDATION_EXCEPTION" in str(outcomes[1].reason)  # an admin's rule names no field
    assert outcomes[2].property_name == "Name" and "STRING_TOO_LONG" in str(outcomes[2].reason)
    assert sorted(r["Name"] for r in salesforce_control.all_records("Opportunity")) == ["First", "Last"]


async def test_a_locked_row_is_sent_again_and_its_batch_mates_once(
    adapter: SalesforceAdapter, salesforce_control: SalesforceControl
) -> None:
    batch = [deal(name="Locked"), deal(name="Free")]
    salesforce_control.fail_record(str(batch[0].id), "UNABLE_TO_LOCK_ROW", count=2)
    salesforce_control.reset_stats()
    outcomes = await adapter.upsert_opportunities(batch)
    assert [o.action for o in outcomes] == ["created", "created"]
    assert len(salesforce_control.all_records("Opportunity")) == 2


async def test_an_update_changes_only_the_fields_set_and_a_stage_keeps_its_probability(
    adapter: SalesforceAdapter, salesforce_control: SalesforceControl
) -> None:
    record = deal()
    external_id = await created(adapter, record)
    [outcome] = await adapter.upsert_opportunities(
        [OpportunityCreate(id=record.id, name="Acme rollout", deal_stage="Negotiation")]
    )
    assert outcome.action == "updated"
    sent = adapter.requests_sent
    written = await adapter.write_opportunity(external_id, OpportunityUpdate(deal_stage="Closed Won"))
    assert (written.deal_stage, written.probability, written.name) == ("Closed Won", Decimal("0.35"), "Acme rollout")
    assert stored(salesforce_control, external_id)["Probability"] == 35  # not the stage's 100
    assert adapter.requests_sent - sent == 3  # its probability, the update, the record as written
    sent = adapter.requests_sent
    renamed = await adapter.write_opportunity(external_id, OpportunityUpdate(name="Acme renewal"))
    assert renamed.name == "Acme renewal" and adapter.requests_sent - sent == 2  # the update, the record


async def test_a_batch_of_updates_keeps_each_stages_probability_and_fails_a_refused_record_alone(
    adapter: SalesforceAdapter, salesforce_control: SalesforceControl
) -> None:
    first, long_name, last = [await created(adapter, deal(probability=Decimal(p))) for p in ("0.35", "0.4", "0.45")]
    sent = adapter.requests_sent
    outcomes = await adapter.write_opportunities(
        [
            (first, OpportunityUpdate(deal_stage="Closed Won")),
            (long_name, OpportunityUpdate(name="N" * 200)),  # Name holds 120 characters
            (last, OpportunityUpdate(deal_stage="Closed Won")),
        ]
    )
    assert [o.ok for o in outcomes] == [True, False, True]
    assert outcomes[1].property_name == "Name" and "STRING_TOO_LONG" in str(outcomes[1].reason)
    assert isinstance(outcomes[1].result, FieldMappingError) and outcomes[1].result.field == "name"
    assert [stored(salesforce_control, i)["Probability"] for i in (first, last)] == [35, 45]  # not the stage's 100
    written = [o.result for o in outcomes if isinstance(o.result, OpportunityRead)]
    assert [(r.deal_stage, r.probability) for r in written] == [
        ("Closed Won", Decimal("0.35")),
        ("Closed Won", Decimal("0.45")),
    ]
    assert adapter.requests_sent - sent == 3  # the probabilities, the update, the records as written


async def test_a_stage_without_a_salesforce_stage_fails_its_record_alone(
    salesforce_org: RunningSalesforce, salesforce_control: SalesforceControl
) -> None:
    adapter = make_adapter(salesforce_org, salesforce_control, stage_names={"Proposal": "Proposal/Price Quote"})
    outcomes = await adapter.upsert_opportunities([deal(), deal(deal_stage="Lead")])
    assert [(o.action, o.property_name) for o in outcomes] == [("created", None), ("failed", "StageName")]
    assert "deal_stage" in str(outcomes[1].reason) and str(outcomes[1].record_id) in str(outcomes[1].reason)
    await adapter.aclose()


# --- set-up -----------------------------------------------------------------------------------------


async def test_verify_names_every_problem(
    salesforce_org: RunningSalesforce, salesforce_control: SalesforceControl
) -> None:
    salesforce_control.setup(
        sync_key_unique=False,
        custom_fields=[{"name": "Product_Line__c", "type": "string"}],
        stages=[{"api_name": "Prospecting", "probability": 10, "forecast_category": "Pipeline"}],
    )
    adapter = make_adapter(salesforce_org, salesforce_control)
    problems = await adapter.verify()
    await adapter.aclose()
    schema = {(p.property_name, p.reason) for p in problems if isinstance(p, PropertySchemaError)}
    assert ("Sync_Key__c", "must be an External ID and Unique, so upserts key on it") in schema
    assert {name for name, _ in schema} >= {"Deal_Source__c", "Manual_Tags__c", "Override_Stage__c"}
    assert "Product_Line__c" not in {name for name, _ in schema}
    stages = [str(p) for p in problems if isinstance(p, StageConfigError)]
    assert len(stages) == 5 and any("'Negotiation/Review'" in s for s in stages)


# --- change reads -----------------------------------------------------------------------------------


async def test_change_reads_go_past_pages_and_second_grained_stamps(
    salesforce_org: RunningSalesforce, salesforce_control: SalesforceControl
) -> None:
    adapter = make_adapter(salesforce_org, salesforce_control, page_rows=3)
    records = [deal(name=f"Deal {i}") for i in range(8)]  # one second holds all eight stamps
    assert all(o.ok for o in await adapter.upsert_opportunities(records))
    batch = await adapter.read_changes(None)
    assert sorted(c.sync_key or "" for c in batch.changes) == sorted(str(r.id) for r in records)
    salesforce_control.advance_clock(0.4)
    target = next(c.record_id for c in batch.changes if c.sync_key == str(records[5].id))
    salesforce_control.person_edit("Opportunity", target, {"Name": "Renamed in the same second"})
    again = await adapter.read_changes(batch.cursor)
    renamed = [c for c in again.changes if c.record_id == target]
    assert [(c.changes["name"].new, c.actor) for c in renamed] == [("Renamed in the same second", Actor.HUMAN)]
    await adapter.aclose()


async def test_a_burst_of_writes_leaves_the_change_window_once_salesforces_clock_is_an_overlap_past_it(
    adapter: SalesforceAdapter, salesforce_control: SalesforceControl
) -> None:
    """The cursor is the newest stamp read or, when later, Salesforce's time when the read ran
    (its answer's ``Date``): a row stamped an overlap before then was committed by then and read.
    Quiet reads stop re-reading the last burst and its history once the overlap has passed; a row
    committed late with a stamp within the overlap is still read."""
    records = [deal(name=f"Deal {i}") for i in range(3)]
    assert all(o.ok for o in await adapter.upsert_opportunities(records))
    cursor = (await adapter.read_changes(None)).cursor
    assert len((await adapter.read_changes(cursor)).changes) == 3  # within the overlap: read again
    salesforce_control.advance_clock(35)  # past the adapter's overlap of 30 s
    passing = await adapter.read_changes(cursor)
    assert len(passing.changes) == 3
    sent = adapter.requests_sent
    quiet = await adapter.read_changes(passing.cursor)
    assert quiet.changes == [] and adapter.requests_sent - sent == 1  # the change query alone
    target = passing.changes[0].record_id
    late = datetime.fromisoformat(quiet.cursor) - timedelta(seconds=20)
    salesforce_control.person_edit("Opportunity", target, {"Name": "Committed late"}, at=late)
    found = (await adapter.read_changes(quiet.cursor)).changes
    assert [(c.record_id, c.changes["name"].new) for c in found] == [(target, "Committed late")]


async def test_a_logged_task_is_no_change(adapter: SalesforceAdapter, salesforce_control: SalesforceControl) -> None:
    record = deal()
    external_id = await created(adapter, record)
    salesforce_control.advance_clock(120)
    await created(adapter, deal(name="Later"))  # the cursor moves past the first record's window
    cursor = (await adapter.read_changes(None)).cursor
    salesforce_control.advance_clock(120)
    await adapter.create_activity(ActivityCreate(id=uuid4(), opportunity_id=record.id, subject="Call"))
    assert stored(salesforce_control, external_id)["SystemModstamp"] > cursor[:19]  # the roll-up moved it
    assert external_id not in {c.record_id for c in (await adapter.read_changes(cursor)).changes}


async def test_a_persons_edits_and_the_syncs_own_per_field(
    adapter: SalesforceAdapter, salesforce_control: SalesforceControl
) -> None:
    external_id = await created(adapter, deal())
    salesforce_control.advance_clock(5)
    salesforce_control.person_edit("Opportunity", external_id, {"Name": "Renamed by a person"})
    salesforce_control.advance_clock(5)
    await adapter.write_opportunity(external_id, OpportunityUpdate(estimated_value=Decimal("2000.50")))
    read = await adapter.get_opportunity(external_id)
    assert read is not None and read.last_edited_by == Actor.SYNC
    assert (read.field_edits["name"].actor, read.field_edits["estimated_value"].actor) == (Actor.HUMAN, Actor.SYNC)
    assert read.field_edits["estimated_value"].at - read.field_edits["name"].at == timedelta(seconds=5)


async def test_a_stage_change_by_a_person_is_no_override_of_the_probability(
    adapter: SalesforceAdapter, salesforce_control: SalesforceControl
) -> None:
    external_id = await created(adapter, deal())
    salesforce_control.advance_clock(5)
    salesforce_control.person_edit("Opportunity", external_id, {"StageName": "Negotiation/Review"})
    read = await adapter.get_opportunity(external_id)
    assert read is not None and (read.deal_stage, read.probability) == ("Negotiation", Decimal("0.9"))
    assert (read.field_edits["deal_stage"].actor, read.field_edits["probability"].actor) == (Actor.HUMAN, Actor.SYNC)
    salesforce_control.advance_clock(5)
    salesforce_control.person_edit("Opportunity", external_id, {"StageName": "Closed Won", "Probability": 80})
    read = await adapter.get_opportunity(external_id)
    assert read is not None and read.probability == Decimal("0.8")
    assert read.field_edits["probability"].actor == Actor.HUMAN  # set by hand: an override


# --- activities, deletes, failures ------------------------------------------------------------------


async def test_a_task_whose_answer_was_lost_lands_once(
    adapter: SalesforceAdapter, salesforce_control: SalesforceControl
) -> None:
    record = deal()
    external_id = await created(adapter, record)
    call = ActivityCreate(id=uuid4(), opportunity_id=record.id, subject="Call", body="Went well")
    salesforce_control.add_fault("503", method="POST", path="*/sobjects/Task/", applied=True)
    landed = await adapter.create_activity(call)
    assert await adapter.find_activity(call) == landed
    same_text = ActivityCreate(id=uuid4(), opportunity_id=record.id, subject="Call", body="Went well")
    assert await adapter.find_activity(same_text) is None
    assert await adapter.create_activity(same_text) != landed
    tasks = salesforce_control.all_records("Task")
    assert len(tasks) == 2 and {t["WhatId"] for t in tasks} == {external_id}


async def test_a_deleted_record_reads_as_trashed_and_refuses_writes(
    adapter: SalesforceAdapter, salesforce_control: SalesforceControl, salesforce_org: RunningSalesforce
) -> None:
    record = deal()
    external_id = await created(adapter, record)
    cursor = (await adapter.read_trashed(None)).cursor
    salesforce_control.advance_clock(60)
    salesforce_control.grant_token("person-session", HUMAN_USER)
    sandbox_salesforce(salesforce_org.base_url, "person-session").Opportunity.delete(external_id)
    trashed = await adapter.read_trashed(cursor)
    assert [(c.record_id, c.changes["archived_at"].new is not None) for c in trashed.changes] == [(external_id, True)]
    assert [r.in_trash for r in await adapter.get_opportunities([external_id])] == [True]
    for late in (OpportunityUpdate(name="too late"), OpportunityUpdate(deal_stage="Closed Won")):
        with pytest.raises(RecordGoneError):
            await adapter.write_opportunity(external_id, late)
    [outcome] = await adapter.upsert_opportunities([OpportunityCreate(id=record.id, name="again")])
    assert outcome.action == "failed" and "Recycle Bin" in str(outcome.reason)
    assert await adapter.list_opportunities(OpportunityFilter()) == []


async def test_an_expired_token_stops_the_pass_naming_its_reference(
    salesforce_org: RunningSalesforce, salesforce_control: SalesforceControl
) -> None:
    salesforce_control.grant_token("short-lived")
    adapter = make_adapter(salesforce_org, salesforce_control, token="short-lived")
    await adapter.upsert_opportunities([deal()])
    salesforce_control.expire_token("short-lived")
    with pytest.raises(SessionExpiredError, match="env ACME_SALESFORCE_TOKEN") as out:
        await adapter.read_changes(None)
    assert "short-lived" not in str(out.value) and "short-lived" not in repr(adapter)
    await adapter.aclose()


async def test_the_allowance_floor_stops_before_the_org_runs_out(
    salesforce_org: RunningSalesforce, salesforce_control: SalesforceControl
) -> None:
    salesforce_control.configure(daily_api_max=1000, used=880)
    adapter = make_adapter(salesforce_org, salesforce_control, rate_limit=RateLimit(per_minute=0, slow_wait=0))
    await adapter.upsert_opportunities([deal()])  # set-up and the write: the org reports its usage
    with pytest.raises(AllowanceFloorError, match="of its 1000 daily API requests"):
        for _ in range(30):
            await adapter.read_changes(None)
    usage = adapter.api.caller.usage
    assert usage is not None and usage.total - usage.used <= 100 and usage.used < 1000
    await adapter.aclose()


async def test_a_later_process_reuses_the_discovery_and_asks_nothing_first(
    adapter: SalesforceAdapter, salesforce_org: RunningSalesforce, salesforce_control: SalesforceControl
) -> None:
    external_id = await created(adapter, deal())
    kept = adapter.discovery()
    assert kept is not None and kept.integration_user_id and kept.default_probabilities["Closed Won"] == 100
    later = make_adapter(salesforce_org, salesforce_control)
    assert later.reuse_discovery(kept.model_dump(mode="json"))
    salesforce_control.reset_stats()
    assert (await later.get_opportunity(external_id)) is not None
    assert not any("describe" in route for route in salesforce_control.stats()["by_route"])
    other = make_adapter(salesforce_org, salesforce_control, stage_names={"Lead": "Prospecting"})
    assert not other.reuse_discovery(kept.model_dump(mode="json"))  # made for another stage table
    await later.rediscover(everything=False)  # reused, so asked again before a pass writes
    assert any("describe" in route for route in salesforce_control.stats()["by_route"])
    await later.aclose()
    await other.aclose()


async def test_the_orgs_concurrent_request_limit_is_waited_out(
    salesforce_org: RunningSalesforce, salesforce_control: SalesforceControl
) -> None:
    """Other clients hold the org's long-running requests at their limit: the same 403 code as a
    spent day, but the answer's usage shows requests left, so the adapter backs off and goes on."""
    waits: list[float] = []

    async def others_finish(seconds: float) -> None:
        waits.append(seconds)
        salesforce_control.configure(long_running_elsewhere=0)

    adapter = make_adapter(salesforce_org, salesforce_control, retry=RetryPolicy(sleep=others_finish))
    salesforce_control.configure(concurrent_long_running_limit=25, long_running_elsewhere=25)
    [outcome] = await adapter.upsert_opportunities([deal()])
    assert outcome.action == "created" and len(waits) == 1
    await adapter.aclose()


async def test_without_a_username_the_integration_user_is_the_tokens_oauth_identity(
    salesforce_org: RunningSalesforce, salesforce_control: SalesforceControl
) -> None:
    """An operator may leave the username out: the token's user info names the integration user,
    and a person's edit is still told from the sync's own."""
    adapter = make_adapter(salesforce_org, salesforce_control, integration_username=None)
    external_id = await created(adapter, deal())
    assert "GET /services/oauth2/userinfo" in salesforce_control.stats()["by_route"]
    found = adapter.discovery()
    assert found is not None and found.integration_user_id == stored(salesforce_control, external_id)["CreatedById"]
    salesforce_control.advance_clock(5)
    salesforce_control.person_edit("Opportunity", external_id, {"Name": "Renamed by a person"})
    read = await adapter.get_opportunity(external_id)
    assert read is not None and read.last_edited_by == Actor.HUMAN
    salesforce_control.advance_clock(5)
    await adapter.write_opportunity(external_id, OpportunityUpdate(estimated_value=Decimal("2000.50")))
    read = await adapter.get_opportunity(external_id)
    assert read is not None and read.last_edited_by == Actor.SYNC
    assert (read.field_edits["name"].actor, read.field_edits["estimated_value"].actor) == (Actor.HUMAN, Actor.SYNC)
    await adapter.aclose()


async def test_a_token_user_info_refuses_is_an_expired_session(
    salesforce_org: RunningSalesforce, salesforce_control: SalesforceControl
) -> None:
    """User info refuses a dead token with 403 (the data API's refusal is 401): the same stop."""
    salesforce_control.grant_token("short-lived")
    sent: list[None] = []

    def expire_before_user_info() -> None:  # set-up asks describe, the stages, then user info
        sent.append(None)
        if len(sent) == 3:
            salesforce_control.expire_token("short-lived")

    adapter = make_adapter(
        salesforce_org,
        salesforce_control,
        token="short-lived",
        integration_username=None,
        on_request=expire_before_user_info,
    )
    with pytest.raises(SessionExpiredError, match="env ACME_SALESFORCE_TOKEN"):
        await adapter.upsert_opportunities([deal()])
    assert salesforce_control.stats()["by_route"]["GET /services/oauth2/userinfo"]
    await adapter.aclose()
