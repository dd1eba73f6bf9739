"""The connector contract (docs/connectors.md), run against every connector's local CRM over HTTP:
keyed creates and activities that land once under lost answers, partial updates, per-record errors, complete
listings and change reads past the CRM's result cap, change reads that never miss an edit, and
deletes reported as deletes."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from uuid import uuid4

import pytest

from crm_pipeline.crm import CRMAdapter
from crm_pipeline.crm.errors import RecordGoneError
from crm_pipeline.models import (
    MAX_LIST_LIMIT,
    ActivityCreate,
    Actor,
    OpportunityCreate,
    OpportunityFilter,
    OpportunityRead,
    OpportunityUpdate,
)
from crm_pipeline_tests.connectors.conftest import RESULT_CAP, Connector

pytestmark = pytest.mark.integration
EVERYTHING = OpportunityFilter(limit=MAX_LIST_LIMIT)


def deal(**fields: object) -> OpportunityCreate:
    values: dict[str, object] = {
        "name": "Acme rollout",
        "deal_stage": "Proposal",
        "estimated_value": Decimal("1500.00"),
        "close_date": date(2026, 4, 30),
        "contact_email": "ann@example.com",
    }
    return OpportunityCreate(id=uuid4(), **(values | fields))


def external_id_of(record: object) -> str:
    return str(record.external_id)


async def create(adapter: CRMAdapter, record: OpportunityCreate) -> str:
    [outcome] = await adapter.upsert_opportunities([record])
    assert outcome.ok and outcome.external_id is not None, outcome
    return outcome.external_id


async def test_a_keyed_create_whose_answer_was_lost_lands_once(crm: Connector, adapter: CRMAdapter) -> None:
    record = deal()
    crm.lose_next_answer("create")
    external_id = await create(adapter, record)
    assert await crm.adapter().create_opportunity(record) == external_id  # a fresh adapter: nothing cached
    listed = await adapter.list_opportunities(EVERYTHING)
    assert [(external_id_of(r), r.sync_key) for r in listed] == [(external_id, record.id)]


async def test_an_activity_whose_answer_was_lost_lands_once(crm: Connector, adapter: CRMAdapter) -> None:
    record = deal()
    await create(adapter, record)
    call = ActivityCreate(id=uuid4(), opportunity_id=record.id, subject="Call", body="Went well")
    same_text = ActivityCreate(id=uuid4(), opportunity_id=record.id, subject="Call", body="Went well")
    crm.lose_next_answer("activity")
    landed = await adapter.create_activity(call)
    fresh = crm.adapter()
    assert await fresh.find_activity(call) == landed  # found again, not appended again
    assert await fresh.find_activity(same_text) is None  # the same text is another activity
    assert await fresh.create_activity(same_text) != landed


async def test_updates_change_only_the_fields_set(crm: Connector, adapter: CRMAdapter) -> None:
    record = deal()
    external_id = await create(adapter, record)
    crm.human_rename(external_id, "Renamed by a person")
    written = await adapter.write_opportunity(external_id, OpportunityUpdate(estimated_value=Decimal("2000.50")))
    assert (written.name, written.estimated_value, written.deal_stage) == (
        "Renamed by a person",
        Decimal("2000.50"),
        "Proposal",
    )
    [outcome] = await adapter.upsert_opportunities([OpportunityCreate(id=record.id, name="Renamed by the agent")])
    assert (outcome.action, outcome.external_id) == ("updated", external_id)
    read = await adapter.get_opportunities([external_id])
    assert [(r.name, r.estimated_value, r.close_date) for r in read] == [
        ("Renamed by the agent", Decimal("2000.50"), date(2026, 4, 30))
    ]


async def test_an_update_whose_answer_was_lost_is_read_back(crm: Connector, adapter: CRMAdapter) -> None:
    external_id = await create(adapter, deal())
    crm.lose_next_answer("update")
    written = await adapter.write_opportunity(external_id, OpportunityUpdate(deal_stage="Negotiation"))
    assert written.deal_stage == "Negotiation"


async def test_one_refused_record_fails_alone(crm: Connector, adapter: CRMAdapter) -> None:
    deleted = deal()
    crm.human_delete(await create(adapter, deleted))
    batch = [deal(name="First"), deal(name="Deleted, renamed"), deal(name="Last")]
    batch[1] = OpportunityCreate(id=deleted.id, name="Deleted, renamed")
    outcomes = await adapter.upsert_opportunities(batch)
    assert [(o.record_id, o.action) for o in outcomes] == [
        (str(batch[0].id), "created"),
        (str(deleted.id), "failed"),
        (str(batch[2].id), "created"),
    ]
    assert outcomes[1].reason
    assert sorted(r.name for r in await adapter.list_opportunities(EVERYTHING)) == ["First", "Last"]


async def test_listings_and_change_reads_go_past_the_result_cap(crm: Connector, adapter: CRMAdapter) -> None:
    keys = set()
    for _ in range(5):  # 250 deals, created over five minutes
        batch = [deal(name=f"Deal {len(keys) + i}") for i in range(50)]
        keys |= {r.id for r in batch}
        assert all(o.ok for o in await adapter.upsert_opportunities(batch))
        crm.advance_clock(60)
    assert len(keys) > RESULT_CAP
    assert {r.sync_key for r in await adapter.list_opportunities(EVERYTHING)} == keys
    changes = (await adapter.read_changes(None)).changes
    assert {change.sync_key for change in changes} == {str(key) for key in keys}


async def test_change_reads_never_miss_an_edit(crm: Connector, adapter: CRMAdapter) -> None:
    external_id = await create(adapter, deal())
    batch = await adapter.read_changes(None)
    assert [(c.record_id, c.actor) for c in batch.changes] == [(external_id, Actor.SYNC)]
    for edit in range(3):  # each edit in the same time unit as the cursor, or just past it
        crm.human_rename(external_id, f"Edit {edit}")
        batch = await adapter.read_changes(batch.cursor)
        seen = [(c.changes["name"].new, c.actor) for c in batch.changes if c.record_id == external_id]
        assert seen == [(f"Edit {edit}", Actor.HUMAN)]
        crm.advance_clock(0.5 * edit)


async def test_a_delete_is_reported_as_a_delete(crm: Connector, adapter: CRMAdapter) -> None:
    external_id = await create(adapter, deal())
    cursor = (await adapter.read_trashed(None)).cursor
    crm.advance_clock(60)
    crm.human_delete(external_id)
    trashed = await adapter.read_trashed(cursor)
    assert [(c.record_id, c.changes["archived_at"].new is not None) for c in trashed.changes] == [(external_id, True)]
    assert all(r.in_trash for r in await adapter.get_opportunities([external_id]))
    with pytest.raises(RecordGoneError):
        await adapter.write_opportunity(external_id, OpportunityUpdate(name="too late"))


async def test_a_batch_of_updates_has_one_outcome_per_record_and_a_gone_one_fails_alone(
    crm: Connector, adapter: CRMAdapter
) -> None:
    first, gone, last = [await create(adapter, deal(name=name)) for name in ("First", "Gone", "Last")]
    crm.human_delete(gone)
    outcomes = await adapter.write_opportunities(
        [
            (first, OpportunityUpdate(deal_stage="Negotiation")),
            (gone, OpportunityUpdate(name="too late")),
            (last, OpportunityUpdate(estimated_value=Decimal("2000.50"))),
        ]
    )
    assert [(o.external_id, o.ok) for o in outcomes] == [(first, True), (gone, False), (last, True)]
    assert isinstance(outcomes[1].result, RecordGoneError)
    assert outcomes[1].reason
    written = [o.result for o in outcomes if isinstance(o.result, OpportunityRead)]
    assert [(r.name, r.deal_stage, r.estimated_value) for r in written] == [
        ("First", "Negotiation", Decimal("1500.00")),
        ("Last", "Proposal", Decimal("2000.50")),
    ]


async def test_a_batch_of_updates_whose_answer_was_lost_is_read_back(crm: Connector, adapter: CRMAdapter) -> None:
    external_id = await create(adapter, deal())
    crm.lose_next_answer("update")
    [outcome] = await adapter.write_opportunities([(external_id, OpportunityUpdate(deal_stage="Negotiation"))])
    assert isinstance(outcome.result, OpportunityRead) and outcome.result.deal_stage == "Negotiation"
