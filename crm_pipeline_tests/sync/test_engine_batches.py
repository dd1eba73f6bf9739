"""The executor pushes linked deals in batches through ``write_opportunities``: one call per
``write_batch_size`` deals, and a record the CRM refuses fails alone while its batch-mates are
recorded synced. Over Notion, whose adapter is given a small batch and watched."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from uuid import UUID

import pytest

from crm_pipeline.crm import NotionAdapter, SyncEngine
from crm_pipeline.crm.adapter import WriteOutcome
from crm_pipeline.crm.errors import FieldMappingError
from crm_pipeline.models import OpportunityCreate, OpportunityUpdate
from crm_pipeline.store import DealRepository

pytestmark = pytest.mark.integration
BATCH = 3


class Watched:
    """The adapter's ``write_opportunities``, counted, refusing the stage of the deals in ``refuse``
    or, with ``fail``, failing as a whole (a request that failed after the adapter's retries)."""

    def __init__(self, notion: NotionAdapter, monkeypatch: pytest.MonkeyPatch) -> None:
        self.batches: list[int] = []
        self.refuse: set[str] = set()
        self.fail: Exception | None = None
        self._write = notion.write_opportunities
        monkeypatch.setattr(notion, "capabilities", replace(notion.capabilities, write_batch_size=BATCH))
        monkeypatch.setattr(notion, "write_opportunities", self.write)

    async def write(self, updates: Sequence[tuple[str, OpportunityUpdate]]) -> list[WriteOutcome]:
        self.batches.append(len(updates))
        if self.fail is not None:
            raise self.fail
        sent = iter(await self._write([update for update in updates if update[0] not in self.refuse]))
        refusal = "not an option of this select"
        return [
            WriteOutcome(i, FieldMappingError(i, "deal_stage", "Stage", data.deal_stage, refusal))
            if i in self.refuse
            else next(sent)
            for i, data in updates
        ]


async def linked_deals(engine: SyncEngine, repository: DealRepository, tenant: str, count: int) -> dict[UUID, str]:
    """``count`` deals synced to Notion: deal id -> page id."""
    deals = [await repository.create_opportunity(tenant, OpportunityCreate(name=f"Deal {i}")) for i in range(count)]
    assert (await engine.run_pass()).created == count
    return await engine.status.links({deal.id for deal in deals})


async def test_pushed_deals_go_out_in_one_call_per_batch(
    engine: SyncEngine, repository: DealRepository, tenant: str, notion: NotionAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    deals = await linked_deals(engine, repository, tenant, 7)
    watched = Watched(notion, monkeypatch)
    for deal_id in deals:
        await repository.update_opportunity(tenant, deal_id, OpportunityUpdate(deal_stage="Qualified"))
    result = await engine.run_pass()
    assert (result.pushed, result.errors) == (7, [])
    assert watched.batches == [BATCH, BATCH, 1]  # ceil(7 / 3) calls
    assert (await engine.run_pass()).pushed == 0


async def test_a_refused_record_fails_alone_naming_its_field(
    engine: SyncEngine, repository: DealRepository, tenant: str, notion: NotionAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    deals = await linked_deals(engine, repository, tenant, BATCH)
    refused = next(iter(deals))
    watched = Watched(notion, monkeypatch)
    watched.refuse = {deals[refused]}
    for deal_id in deals:
        await repository.update_opportunity(tenant, deal_id, OpportunityUpdate(deal_stage="Qualified"))
    result = await engine.run_pass()
    assert result.pushed == BATCH - 1
    assert [(e.record_id, e.field) for e in result.errors] == [(str(refused), "deal_stage")]
    assert "not an option of this select" in result.errors[0].reason
    watched.refuse = set()
    again = await engine.run_pass()  # only the refused one is pushed again: its batch-mates were recorded
    assert (again.pushed, again.errors, watched.batches) == (1, [], [BATCH, 1])


async def test_a_batch_that_fails_as_a_whole_fails_each_record_and_is_retried(
    engine: SyncEngine, repository: DealRepository, tenant: str, notion: NotionAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    deals = await linked_deals(engine, repository, tenant, 2)
    watched = Watched(notion, monkeypatch)
    watched.fail = ConnectionError("the CRM is down")
    for deal_id in deals:
        await repository.update_opportunity(tenant, deal_id, OpportunityUpdate(deal_stage="Qualified"))
    result = await engine.run_pass()
    assert result.pushed == 0
    assert sorted(e.record_id for e in result.errors) == sorted(str(deal_id) for deal_id in deals)
    assert all("the CRM is down" in e.reason for e in result.errors)
    watched.fail = None
    again = await engine.run_pass()
    assert (again.pushed, again.errors) == (2, [])
