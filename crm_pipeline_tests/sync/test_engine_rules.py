"""SyncEngine end to end, the same rules over every connector's local CRM (``crm``: Notion, HubSpot,
Salesforce):
creates and echoes, every ownership rule, later-write-wins at the CRM's own time precision,
per-record errors, deletes both ways. The real deal store; the CRM over HTTP. What only one
connector does is tested beside it (test_engine_e2e.py, test_engine_hubspot.py,
test_engine_salesforce.py)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from crm_pipeline.models import OpportunityCreate, OpportunityRead, OpportunityUpdate, SyncResult
from crm_pipeline.store import DealRepository
from crm_pipeline.sync import Outcome, Rule, Side, SyncEngine, SyncStatus
from crm_pipeline_tests.sync.local_crm import LocalCRM

pytestmark = pytest.mark.integration
CLOSE = date(2026, 6, 30)
"""Every deal has a close date: Salesforce requires one."""
SETTLED, BASES = SyncStatus.settled, SyncStatus.bases


async def stored(repository: DealRepository, tenant: str, deal: OpportunityRead) -> OpportunityRead:
    found = await repository.get_opportunity(tenant, deal.id)
    assert found is not None
    return found


async def synced_deal(engine: SyncEngine, repository: DealRepository, tenant: str, **fields: Any) -> OpportunityRead:
    deal = await repository.create_opportunity(tenant, OpportunityCreate(name="Acme", close_date=CLOSE, **fields))
    assert (await engine.run_pass()).created == 1
    return deal


async def test_a_deal_is_created_once_under_its_key_and_the_next_pass_writes_nothing(
    crm_engine: SyncEngine, repository: DealRepository, tenant: str, crm: LocalCRM
) -> None:
    deal = await synced_deal(crm_engine, repository, tenant, estimated_value=Decimal("1200.50"), custom_notes="hi")
    record = await crm.read(deal.id)
    assert (record.estimated_value, record.custom_notes) == (Decimal("1200.50"), "hi")
    assert await crm_engine.status.links([deal.id]) == {deal.id: crm.external_id(deal.id)}
    crm.reset_stats()
    assert await crm_engine.run_pass() == SyncResult()
    assert crm.record_writes() == 0


async def test_a_push_echoes_back_and_is_recognised(
    crm_engine: SyncEngine, repository: DealRepository, tenant: str, crm: LocalCRM
) -> None:
    deal = await synced_deal(crm_engine, repository, tenant)
    await repository.update_opportunity(tenant, deal.id, OpportunityUpdate(deal_stage="Qualified"))
    assert (await crm_engine.run_pass()).pushed == 1
    assert (await crm.read(deal.id)).deal_stage == "Qualified"
    crm.reset_stats()
    assert await crm_engine.run_pass() == SyncResult()
    assert crm.record_writes() == 0


async def test_records_read_again_as_the_sync_wrote_them_are_settled_unread_and_a_later_edit_still_comes_in(
    crm_engine: SyncEngine, repository: DealRepository, tenant: str, crm: LocalCRM, monkeypatch: pytest.MonkeyPatch
) -> None:
    deals = [await synced_deal(crm_engine, repository, tenant, custom_notes=f"deal {n}") for n in range(3)]
    await repository.update_opportunity(tenant, deals[0].id, OpportunityUpdate(deal_stage="Qualified"))
    assert (await crm_engine.run_pass()).pushed == 1
    settled: list[set[UUID]] = []
    bases_read: list[UUID] = []

    async def spy_settled(status: SyncStatus, held: Mapping[UUID, Any], fields: Iterable[str]) -> set[UUID]:
        settled.append(await SETTLED(status, held, fields))
        return settled[-1]

    async def spy_bases(status: SyncStatus, record_ids: Iterable[UUID]) -> dict[UUID, dict[str, Any]]:
        record_ids = list(record_ids)
        bases_read.extend(record_ids)
        return await BASES(status, record_ids)

    monkeypatch.setattr(SyncStatus, "settled", spy_settled)
    monkeypatch.setattr(SyncStatus, "bases", spy_bases)
    # The change read's overlap reads the three records again, as the sync wrote them.
    assert await crm_engine.run_pass() == SyncResult()
    assert settled == [{deal.id for deal in deals}]
    assert bases_read == []
    crm.edit(deals[1].id, custom_notes="a person's note")
    assert (await crm_engine.run_pass()).pulled == 1
    assert (await stored(repository, tenant, deals[1])).custom_notes == "a person's note"
    assert settled[-1] == {deals[0].id, deals[2].id}


async def test_an_agent_change_to_an_agent_owned_field_wins_over_a_persons(
    crm_engine: SyncEngine, repository: DealRepository, tenant: str, crm: LocalCRM
) -> None:
    deal = await synced_deal(crm_engine, repository, tenant, probability=Decimal("0.5"))
    crm.edit(deal.id, probability=Decimal("0.9"))
    await repository.update_opportunity(tenant, deal.id, OpportunityUpdate(probability=Decimal("0.7")))
    result = await crm_engine.run_pass()
    assert (result.pushed, result.conflicts) == (1, 1)
    assert (await crm.read(deal.id)).probability == Decimal("0.7")
    assert (await stored(repository, tenant, deal)).probability == Decimal("0.7")
    [entry] = await crm_engine.status.audit(deal.id)
    assert (entry.field, entry.old, entry.new, entry.side, entry.outcome, entry.rule) == (
        "probability",
        Decimal("0.9"),
        Decimal("0.7"),
        Side.EXTERNAL,
        Outcome.CONFLICT,
        Rule.AGENT_OWNED,
    )


async def test_a_persons_override_of_an_agent_owned_field_is_kept_and_recorded(
    crm_engine: SyncEngine, repository: DealRepository, tenant: str, crm: LocalCRM
) -> None:
    deal = await synced_deal(crm_engine, repository, tenant, probability=Decimal("0.5"))
    crm.edit(deal.id, probability=Decimal("0.2"))
    result = await crm_engine.run_pass()
    assert (result.pulled, result.pushed) == (1, 0)
    assert (await stored(repository, tenant, deal)).probability == Decimal("0.2")
    assert [(e.outcome, e.rule) for e in await crm_engine.status.audit(deal.id)] == [
        (Outcome.OVERRIDE, Rule.HUMAN_OVERRIDE)
    ]
    assert (await crm.read(deal.id)).probability == Decimal("0.2")


async def test_human_owned_fields_come_in_and_an_agent_write_to_them_is_put_back(
    crm_engine: SyncEngine, repository: DealRepository, tenant: str, crm: LocalCRM
) -> None:
    deal = await synced_deal(crm_engine, repository, tenant)
    crm.edit(deal.id, custom_notes="call after the holidays", override_stage="Negotiation")
    assert (await crm_engine.run_pass()).pulled == 1
    pulled = await stored(repository, tenant, deal)
    assert (pulled.custom_notes, pulled.override_stage) == ("call after the holidays", "Negotiation")
    await repository.update_opportunity(tenant, deal.id, OpportunityUpdate(custom_notes="the agent's idea"))
    crm.reset_stats()
    assert (await crm_engine.run_pass()).pulled == 1
    assert crm.record_writes() == 0
    assert (await stored(repository, tenant, deal)).custom_notes == "call after the holidays"


@pytest.mark.parametrize(
    ("human_after", "winner"), [(1, "human"), (-1, "agent"), (0, "human")], ids=["human-later", "agent-later", "tie"]
)
async def test_a_shared_field_changed_on_both_sides_goes_to_the_later_write_at_the_crms_precision(
    crm_engine: SyncEngine, repository: DealRepository, tenant: str, crm: LocalCRM, human_after: int, winner: str
) -> None:
    """The person edits ``human_after`` steps after the agent's write: a step is two of the CRM's
    time units, or a second if that is more (Notion: two minutes; HubSpot: a second). At the same
    moment the order is unknown and the person's edit is kept."""
    deal = await synced_deal(crm_engine, repository, tenant, estimated_value=Decimal("100"))
    agent = await repository.update_opportunity(tenant, deal.id, OpportunityUpdate(estimated_value=Decimal("200")))
    step = max(2 * crm.precision, timedelta(seconds=1))
    crm.edit(deal.id, at=agent.updated_at + human_after * step, estimated_value=Decimal("300"))
    result = await crm_engine.run_pass()
    expected = Decimal("300") if winner == "human" else Decimal("200")
    assert result.conflicts == 1
    assert (await stored(repository, tenant, deal)).estimated_value == expected
    assert (await crm.read(deal.id)).estimated_value == expected
    [entry] = await crm_engine.status.audit(deal.id)
    assert entry.rule is (Rule.TIE_GOES_TO_HUMAN if human_after == 0 else Rule.LAST_WRITE_WINS)


async def test_a_record_that_cannot_be_read_fails_alone_and_a_fix_clears_the_ledger(
    crm_engine: SyncEngine, repository: DealRepository, tenant: str, crm: LocalCRM
) -> None:
    """A person makes a deal's record unreadable (clears its name, which a deal must have; on
    Salesforce, picks a stage no deal stage maps to): that record is reported by its external id
    and waits, neither synced nor taken for deleted; the others sync."""
    bad = await repository.create_opportunity(tenant, OpportunityCreate(name="Acme", close_date=CLOSE))
    good = await repository.create_opportunity(tenant, OpportunityCreate(name="Globex", close_date=CLOSE))
    await crm_engine.run_pass()
    spoilt = crm.spoil(bad.id)
    crm.edit(good.id, estimated_value=Decimal("7"))
    result = await crm_engine.run_pass()
    assert [(e.record_id, e.field) for e in result.errors] == [(crm.external_id(bad.id), spoilt)]
    assert (await stored(repository, tenant, bad)).name == "Acme"
    assert (await stored(repository, tenant, good)).estimated_value == Decimal("7")
    assert await crm_engine.status.pending_deletes() == {}
    for _ in range(2):  # retried from the ledger: still reported, never vanished
        assert [e.field for e in (await crm_engine.run_pass()).errors] == [spoilt]
    assert await crm_engine.status.pending_deletes() == {}
    crm.mend(bad.id, "Acme Corp")
    assert (await crm_engine.run_pass()).errors == []
    assert (await stored(repository, tenant, bad)).name == "Acme Corp"
    assert await crm_engine.status.errors() == []


async def test_a_record_deleted_in_the_crm_archives_its_deal_and_no_write_reaches_it(
    crm_engine: SyncEngine, repository: DealRepository, tenant: str, crm: LocalCRM
) -> None:
    deal = await synced_deal(crm_engine, repository, tenant)
    crm.delete(deal.id)
    assert (await crm_engine.run_pass()).trashed == 1
    assert (await stored(repository, tenant, deal)).archived_at is not None  # archived, never deleted
    await repository.update_opportunity(tenant, deal.id, OpportunityUpdate(deal_stage="Qualified"))
    crm.reset_stats()
    assert (await crm_engine.run_pass()).errors == []
    assert crm.record_writes() == 0


async def test_an_archived_deal_sends_its_record_to_the_crms_trash_once(
    crm_engine: SyncEngine, repository: DealRepository, tenant: str, crm: LocalCRM
) -> None:
    deal = await synced_deal(crm_engine, repository, tenant)
    await repository.archive_opportunity(tenant, deal.id)
    assert (await crm_engine.run_pass()).trashed == 1
    assert crm.in_trash(deal.id)
    assert await crm_engine.run_pass() == SyncResult()
