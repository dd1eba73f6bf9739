"""The demo agent `crm-pipeline dev` runs: it writes to the deal store as the agent, so its
changes flow out to Notion on the next pass."""

from __future__ import annotations

import random

from crm_pipeline.crm import PostgresAdapter
from crm_pipeline.demo import agent_step
from crm_pipeline.models import Actor
from crm_pipeline.store import DealRepository


async def test_the_demo_agent_finds_moves_and_revalues_deals_as_the_agent(
    repository: DealRepository, tenant: str
) -> None:
    rng = random.Random(7)  # a fixed seed: the same steps every run
    done = [await agent_step(repository, tenant, rng) for _ in range(12)]

    assert done[0].startswith("found")  # nothing open yet: it finds a deal first
    assert {step.split()[0] for step in done} == {"found", "moved", "revalued"}
    deals = await repository.list_opportunities(tenant)
    assert len(deals) == sum(step.startswith("found") for step in done)
    assert any(deal.deal_stage != "Lead" for deal in deals)
    changes = (await PostgresAdapter(repository, tenant).read_changes(None)).changes
    assert len(changes) == len(done) and {change.actor for change in changes} == {Actor.AGENT}
