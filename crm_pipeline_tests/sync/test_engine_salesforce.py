"""SyncEngine end to end over Salesforce, what only Salesforce does: the stage's default
probability, tasks, the Recycle Bin. The real deal store and the local Salesforce over HTTP through
simple-salesforce; the engine runs unchanged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
import pytest_asyncio

from crm_pipeline.crm import PostgresAdapter, SyncEngine
from crm_pipeline.crm.salesforce import RateLimit, SalesforceAdapter
from crm_pipeline.models import ActivityCreate, OpportunityCreate, OpportunityRead, OpportunityUpdate
from crm_pipeline.salesforce_sandbox import (
    DEFAULT_TOKEN,
    HUMAN_USER,
    RunningSalesforce,
    SalesforceControl,
    sandbox_salesforce,
)
from crm_pipeline.store import DealRepository
from crm_pipeline.sync import Outcome, Rule
from crm_pipeline.sync.ownership import DEFAULT_FIELD_OWNERSHIP
from crm_pipeline_tests.conftest import SALESFORCE_USERNAME

pytestmark = pytest.mark.integration
CLOSE = date(2026, 6, 30)
"""Salesforce requires a close date on every opportunity."""


@pytest_asyncio.fixture
async def engine(
    repository: DealRepository, tenant: str, salesforce_org: RunningSalesforce, salesforce_control: SalesforceControl
) -> AsyncIterator[SyncEngine]:
    """The engine over the local Salesforce on real time, reading the Recycle Bin every pass."""
    salesforce_control.real_clock()
    adapter = SalesforceAdapter(
        DEFAULT_TOKEN,
        instance_url=salesforce_org.base_url,
        integration_username=SALESFORCE_USERNAME,
        rate_limit=RateLimit(per_minute=0),
    )
    yield SyncEngine(PostgresAdapter(repository, tenant), adapter, DEFAULT_FIELD_OWNERSHIP, trash_check_seconds=0)
    await adapter.aclose()


def in_salesforce(control: SalesforceControl, deal_id: UUID) -> dict[str, Any]:
    [found] = [r for r in control.all_records("Opportunity") if r["Sync_Key__c"] == str(deal_id)]
    return found


def a_second_later(control: SalesforceControl) -> None:
    """A person's edit a second after the sync's writes (Salesforce's stamps are whole seconds)."""
    control.set_clock(datetime.now(UTC) + timedelta(seconds=1))


async def stored(repository: DealRepository, tenant: str, deal_id: UUID) -> OpportunityRead:
    deal = await repository.get_opportunity(tenant, deal_id)
    assert deal is not None
    return deal


async def test_a_deal_without_a_close_date_fails_alone_until_it_has_one(
    engine: SyncEngine, repository: DealRepository, tenant: str, salesforce_control: SalesforceControl
) -> None:
    undated = await repository.create_opportunity(tenant, OpportunityCreate(name="Undated"))
    await repository.create_opportunity(tenant, OpportunityCreate(name="Dated", close_date=CLOSE))
    result = await engine.run_pass()
    assert result.created == 1 and [e.record_id for e in result.errors] == [str(undated.id)]
    assert "REQUIRED_FIELD_MISSING (CloseDate)" in result.errors[0].reason
    await repository.update_opportunity(tenant, undated.id, OpportunityUpdate(close_date=CLOSE))
    assert (await engine.run_pass()).created == 1
    assert sorted(r["Name"] for r in salesforce_control.all_records("Opportunity")) == ["Dated", "Undated"]


async def test_a_deal_lands_once_and_its_echo_is_no_change(
    engine: SyncEngine, repository: DealRepository, tenant: str, salesforce_control: SalesforceControl
) -> None:
    deal = await repository.create_opportunity(
        tenant, OpportunityCreate(name="Acme", deal_stage="Proposal", probability=Decimal("0.35"), close_date=CLOSE)
    )
    assert (await engine.run_pass()).created == 1
    held = in_salesforce(salesforce_control, deal.id)
    assert (held["StageName"], held["Probability"]) == ("Proposal/Price Quote", 35)
    again = await engine.run_pass()
    assert (again.errors, again.pushed, again.pulled, again.created) == ([], 0, 0, 0)
    assert len(salesforce_control.all_records("Opportunity")) == 1


async def test_a_persons_stage_change_keeps_the_agents_probability(
    engine: SyncEngine, repository: DealRepository, tenant: str, salesforce_control: SalesforceControl
) -> None:
    """A person moves the stage in Salesforce, which sets Probability to the stage's default under
    the person's name. That is the stage's doing, not an override: the stage comes in, the agent's
    probability stands and goes back out."""
    deal = await repository.create_opportunity(
        tenant, OpportunityCreate(name="Acme", deal_stage="Proposal", probability=Decimal("0.35"), close_date=CLOSE)
    )
    await engine.run_pass()
    external_id = in_salesforce(salesforce_control, deal.id)["Id"]
    a_second_later(salesforce_control)
    salesforce_control.person_edit("Opportunity", external_id, {"StageName": "Negotiation/Review"})
    assert in_salesforce(salesforce_control, deal.id)["Probability"] == 90

    assert (await engine.run_pass()).errors == []

    kept = await stored(repository, tenant, deal.id)
    assert (kept.deal_stage, kept.probability) == ("Negotiation", Decimal("0.35"))
    assert in_salesforce(salesforce_control, deal.id)["Probability"] == 35
    decided = {e.field: (e.outcome, e.rule) for e in await engine.status.audit(deal.id)}
    assert decided["probability"] == (Outcome.PUSH, Rule.AGENT_OWNED)


async def test_a_probability_a_person_sets_is_an_override(
    engine: SyncEngine, repository: DealRepository, tenant: str, salesforce_control: SalesforceControl
) -> None:
    deal = await repository.create_opportunity(
        tenant, OpportunityCreate(name="Acme", deal_stage="Proposal", probability=Decimal("0.35"), close_date=CLOSE)
    )
    await engine.run_pass()
    external_id = in_salesforce(salesforce_control, deal.id)["Id"]
    a_second_later(salesforce_control)
    salesforce_control.person_edit("Opportunity", external_id, {"StageName": "Negotiation/Review", "Probability": 60})

    assert (await engine.run_pass()).errors == []

    kept = await stored(repository, tenant, deal.id)
    assert (kept.deal_stage, kept.probability) == ("Negotiation", Decimal("0.6"))
    decided = {e.field: (e.outcome, e.rule) for e in await engine.status.audit(deal.id)}
    assert decided["probability"] == (Outcome.OVERRIDE, Rule.HUMAN_OVERRIDE)


async def test_activities_become_tasks_once_each(
    engine: SyncEngine, repository: DealRepository, tenant: str, salesforce_control: SalesforceControl
) -> None:
    deal = await repository.create_opportunity(tenant, OpportunityCreate(name="Acme", close_date=CLOSE))
    await engine.run_pass()
    for subject in ("Intro call", "Demo"):
        await repository.create_activity(tenant, ActivityCreate(opportunity_id=deal.id, subject=subject))
    await engine.run_pass()
    result = await engine.run_pass()
    assert (result.errors, result.pulled) == ([], 0)  # the tasks' roll-ups read as no change
    tasks = salesforce_control.all_records("Task")
    assert sorted(t["Subject"].split(" · ref ")[0] for t in tasks) == ["Demo", "Intro call"]
    assert {t["WhatId"] for t in tasks} == {in_salesforce(salesforce_control, deal.id)["Id"]}


async def test_a_record_a_person_deletes_archives_the_deal(
    engine: SyncEngine,
    repository: DealRepository,
    tenant: str,
    salesforce_org: RunningSalesforce,
    salesforce_control: SalesforceControl,
) -> None:
    deal = await repository.create_opportunity(tenant, OpportunityCreate(name="Acme", close_date=CLOSE))
    await engine.run_pass()
    a_second_later(salesforce_control)
    salesforce_control.grant_token("person-session", HUMAN_USER)
    person = sandbox_salesforce(salesforce_org.base_url, "person-session")
    person.Opportunity.delete(in_salesforce(salesforce_control, deal.id)["Id"])
    assert (await engine.run_pass()).trashed == 1
    assert (await stored(repository, tenant, deal.id)).archived_at is not None
