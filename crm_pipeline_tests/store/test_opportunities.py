"""Opportunities in the deal store: CRUD, filters, paging, archive and bad input, on real PostgreSQL."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from uuid import uuid4

import pytest
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from crm_pipeline.models import DEAL_STAGES, Actor, OpportunityCreate, OpportunityFilter, OpportunityUpdate
from crm_pipeline.store import Database, DealRepository, RecordNotFoundError, UnknownTenantError

FULL = OpportunityCreate(
    name="Acme renewal",
    deal_stage="Qualified",
    estimated_value=Decimal("125000.50"),
    close_date=date(2027, 3, 31),
    product_line="Platform",
    probability=Decimal("0.35"),
    source="inbound",
    contact_name="Ada Lovelace",
    contact_email="ada@acme.example",
    qualification_snapshot={"budget": "approved", "authority": ["cfo"]},
    detection_confidence=Decimal("0.912"),
    qualification_tracking={"bant": {"need": True}},
    stakeholder_map={"cfo": {"name": "Grace", "stance": "champion"}},
    score_evidence=[{"signal": "pricing page", "weight": 0.4}],
    custom_notes="Call after the board meeting",
    manual_tags=["renewal", "q1"],
    override_stage=None,
)


async def test_create_then_get_round_trips_every_field(repository: DealRepository, tenant: str) -> None:
    created = await repository.create_opportunity(tenant, FULL)
    fetched = await repository.get_opportunity(tenant, created.id)

    assert fetched == created
    assert fetched.tenant_id == tenant
    assert fetched.model_dump(include=set(FULL.model_fields_set)) == FULL.model_dump(include=set(FULL.model_fields_set))
    assert fetched.created_at == fetched.updated_at
    assert fetched.archived_at is None


async def test_create_keeps_a_given_id_as_the_sync_key(repository: DealRepository, tenant: str) -> None:
    sync_key = uuid4()
    created = await repository.create_opportunity(tenant, OpportunityCreate(id=sync_key, name="Keyed"))
    assert created.id == sync_key


async def test_get_unknown_id_is_none_and_update_unknown_id_is_an_error(
    repository: DealRepository, tenant: str
) -> None:
    assert await repository.get_opportunity(tenant, uuid4()) is None
    with pytest.raises(RecordNotFoundError):
        await repository.update_opportunity(tenant, uuid4(), OpportunityUpdate(name="x"))


async def test_update_applies_only_the_fields_that_were_set(repository: DealRepository, tenant: str) -> None:
    created = await repository.create_opportunity(tenant, FULL)
    updated = await repository.update_opportunity(
        tenant, created.id, OpportunityUpdate(deal_stage="Negotiation", custom_notes=None)
    )
    assert updated.deal_stage == "Negotiation"
    assert updated.custom_notes is None  # explicitly cleared
    assert updated.estimated_value == FULL.estimated_value  # left alone
    assert updated.manual_tags == FULL.manual_tags
    assert updated.updated_at > created.updated_at


async def test_update_that_changes_nothing_writes_nothing(repository: DealRepository, tenant: str) -> None:
    created = await repository.create_opportunity(tenant, FULL)
    same = await repository.update_opportunity(
        tenant, created.id, OpportunityUpdate(estimated_value=Decimal("125000.5"), deal_stage="Qualified")
    )
    assert same.updated_at == created.updated_at
    log = await repository.changes_since(tenant, created.created_at.replace(year=2000))
    assert len(log) == 1  # only the create


async def _seed(repository: DealRepository, tenant: str) -> dict[str, list]:
    stages = {"Proposal": [], "Qualified": [], "Closed Won": []}
    for index in range(9):
        stage = list(stages)[index % 3]
        record = await repository.create_opportunity(
            tenant, OpportunityCreate(name=f"Deal {index:02d}", deal_stage=stage, estimated_value=Decimal(index))
        )
        stages[stage].append(record)
    return stages


async def test_list_filters_by_stage(repository: DealRepository, tenant: str) -> None:
    stages = await _seed(repository, tenant)
    won = await repository.list_opportunities(tenant, OpportunityFilter(deal_stage="Closed Won"))
    assert {o.id for o in won} == {o.id for o in stages["Closed Won"]}
    either = await repository.list_opportunities(tenant, OpportunityFilter(deal_stage=["Closed Won", "Qualified"]))
    assert len(either) == 6


async def test_list_filters_by_updated_since_strictly_after(repository: DealRepository, tenant: str) -> None:
    stages = await _seed(repository, tenant)
    pivot = stages["Closed Won"][0]
    touched = await repository.update_opportunity(tenant, pivot.id, OpportunityUpdate(name="Touched"))
    result = await repository.list_opportunities(tenant, OpportunityFilter(updated_since=pivot.updated_at))
    assert touched.id in {o.id for o in result}
    assert all(o.updated_at > pivot.updated_at for o in result)
    later = await repository.list_opportunities(tenant, OpportunityFilter(updated_since=touched.updated_at))
    assert later == []


async def test_list_pages_in_a_stable_order(repository: DealRepository, tenant: str) -> None:
    await _seed(repository, tenant)
    pages = [
        await repository.list_opportunities(tenant, OpportunityFilter(order_by="name", limit=4, offset=offset))
        for offset in (0, 4, 8)
    ]
    names = [o.name for page in pages for o in page]
    assert [len(page) for page in pages] == [4, 4, 1]
    assert names == [f"Deal {i:02d}" for i in range(9)]
    descending = await repository.list_opportunities(
        tenant, OpportunityFilter(order_by="estimated_value", descending=True, limit=2)
    )
    assert [o.estimated_value for o in descending] == [Decimal(8), Decimal(7)]


async def test_archive_is_a_soft_delete(repository: DealRepository, tenant: str) -> None:
    stages = await _seed(repository, tenant)
    target = stages["Closed Won"][0]
    archived = await repository.archive_opportunity(tenant, target.id)
    assert archived.archived_at is not None
    again = await repository.archive_opportunity(tenant, target.id)
    assert again.archived_at == archived.archived_at

    live = await repository.list_opportunities(tenant)
    only_archived = await repository.list_opportunities(tenant, OpportunityFilter(archived=True))
    everything = await repository.list_opportunities(tenant, OpportunityFilter(archived=None))
    assert target.id not in {o.id for o in live}
    assert [o.id for o in only_archived] == [target.id]
    assert len(everything) == 9
    assert await repository.get_opportunity(tenant, target.id) == archived  # still there

    with pytest.raises(RecordNotFoundError):
        await repository.archive_opportunity(tenant, uuid4())


@pytest.mark.parametrize(
    ("fields", "bad_field"),
    [
        ({"name": "x", "estimated_value": "-1"}, "estimated_value"),
        ({"name": "x", "probability": "1.5"}, "probability"),
        ({"name": "x", "contact_email": "not-an-email"}, "contact_email"),
        ({"name": ""}, "name"),
        ({"name": "x", "detection_confidence": 2}, "detection_confidence"),
        ({"name": "x", "colour": "red"}, "colour"),
    ],
)
def test_invalid_values_are_rejected_naming_the_field(fields: dict, bad_field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        OpportunityCreate(**fields)
    assert [error["loc"][0] for error in caught.value.errors()] == [bad_field]


def test_unknown_filter_field_is_rejected_naming_it() -> None:
    with pytest.raises(ValidationError) as caught:
        OpportunityFilter(stage="Closed Won")  # the field is deal_stage
    assert caught.value.errors()[0]["loc"] == ("stage",)
    with pytest.raises(ValidationError):
        OpportunityFilter(order_by="password")


async def test_unknown_or_missing_tenant_is_a_clear_error(repository: DealRepository) -> None:
    with pytest.raises(UnknownTenantError, match="unknown tenant 'nobody'"):
        await repository.list_opportunities("nobody")
    with pytest.raises(UnknownTenantError, match="unknown tenant"):
        await repository.create_opportunity("nobody", OpportunityCreate(name="x"))
    with pytest.raises(UnknownTenantError, match="no tenant given"):
        await repository.get_opportunity("", uuid4())


async def test_the_database_takes_only_the_pipelines_stages(database: Database, tenant: str) -> None:
    """A CHECK constraint, so no code path (raw SQL included) stores a stage the CRM would refuse."""
    insert = text(
        "INSERT INTO crm.opportunities (id, tenant_id, name, deal_stage, override_stage)"
        " VALUES (:id, :t, 'x', :stage, :override)"
    )
    async with database.tenant_transaction(tenant) as connection:
        for stage in DEAL_STAGES:
            await connection.execute(insert, {"id": uuid4(), "t": tenant, "stage": stage, "override": stage})
        await connection.execute(insert, {"id": uuid4(), "t": tenant, "stage": "Lead", "override": None})
        for stage, override, constraint in [("won", None, "deal_stage"), ("Lead", "closed won", "override_stage")]:
            with pytest.raises(IntegrityError, match=f"opportunities_{constraint}_check"):
                async with connection.begin_nested():
                    await connection.execute(insert, {"id": uuid4(), "t": tenant, "stage": stage, "override": override})


async def test_search_finds_names_containing_the_text_in_any_case_and_takes_wildcards_literally(
    repository: DealRepository, tenant: str
) -> None:
    names = ["Acme renewal", "acme 50% pilot", "Globex_pilot", "Globex pilot"]
    for name in names:
        await repository.create_opportunity(tenant, OpportunityCreate(name=name))
    archived = await repository.create_opportunity(tenant, OpportunityCreate(name="ACME archived"))
    await repository.archive_opportunity(tenant, archived.id)

    assert [deal.name for deal in await repository.search_opportunities(tenant, "aCmE")] == [
        "acme 50% pilot",
        "ACME archived",  # archived deals are found too
        "Acme renewal",
    ]
    assert [deal.name for deal in await repository.search_opportunities(tenant, "50%")] == ["acme 50% pilot"]
    assert [deal.name for deal in await repository.search_opportunities(tenant, "x_p")] == ["Globex_pilot"]
    assert len(await repository.search_opportunities(tenant)) == 5
    ids = {deal.id: deal.name for deal in await repository.search_opportunities(tenant, "globex")}
    assert await repository.opportunity_names(tenant, [*ids, uuid4()]) == ids


async def test_latest_changes_names_each_deals_newest_entry_and_its_actor(
    repository: DealRepository, tenant: str
) -> None:
    edited = await repository.create_opportunity(tenant, OpportunityCreate(name="Acme renewal"))
    untouched = await repository.create_opportunity(tenant, OpportunityCreate(name="Globex pilot"))
    await repository.update_opportunity(tenant, edited.id, OpportunityUpdate(deal_stage="Proposal"), actor=Actor.HUMAN)

    latest = await repository.latest_changes(tenant, [edited.id, untouched.id, uuid4()])

    assert set(latest) == {edited.id, untouched.id}
    assert (latest[edited.id].actor, list(latest[edited.id].changes)) == (Actor.HUMAN, ["deal_stage"])
    assert latest[untouched.id].actor is Actor.AGENT and "name" in latest[untouched.id].changes


async def test_reads_by_id_take_more_ids_than_a_statement_takes_parameters(
    repository: DealRepository, tenant: str
) -> None:
    """PostgreSQL binds at most 65,535 parameters a statement: a pass of a large tenant asks for more."""
    known = await repository.create_opportunity(tenant, OpportunityCreate(name="Acme"))
    ids = [uuid4() for _ in range(70_000)] + [known.id]

    assert [deal.id for deal in await repository.get_opportunities(tenant, ids)] == [known.id]
    assert await repository.opportunity_names(tenant, ids) == {known.id: "Acme"}
    assert list(await repository.latest_changes(tenant, ids)) == [known.id]
    assert await repository.get_activities(tenant, ids) == []
