"""A pass stage by stage (``read_primary``, ``read_external``, ``decide``, ``write_outbound``,
``write_inbound``: what the Dagster asset graph runs as steps) against the real deal store and the
sandbox Notion: the same pass as ``run_pass``, refused when its decisions went stale."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest
import pytest_asyncio

from crm_pipeline.crm import PostgresAdapter
from crm_pipeline.crm.errors import PropertySchemaError
from crm_pipeline.crm.notion.properties import SYNCED_PROPERTY_MAP, notion_properties_schema
from crm_pipeline.models import ActivityCreate, OpportunityCreate, OpportunityUpdate, SyncResult
from crm_pipeline.store import DealRepository
from crm_pipeline.sync import (
    INBOUND_PARTS,
    OUTBOUND_PARTS,
    Direction,
    PassOvertakenError,
    PassPlan,
    PassRefusedError,
    RecordPlan,
    SyncEngine,
)
from crm_pipeline.sync.ownership import DEFAULT_FIELD_OWNERSHIP
from crm_pipeline_tests.crm.conftest import Workspace

pytestmark = pytest.mark.integration

UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
Pass = Callable[[SyncEngine], Awaitable[SyncResult]]


async def whole_pass(engine: SyncEngine) -> SyncResult:
    return await engine.run_pass()


async def staged_pass(engine: SyncEngine) -> SyncResult:
    """The stages in the asset graph's order; one result for both writing stages."""
    decisions = await engine.decide(await engine.read_primary(), await engine.read_external())
    tally = await engine.write_outbound(decisions)
    outbound = tally.result()
    inbound = await engine.write_inbound(decisions, [*tally.failures, *tally.deferred])
    return SyncResult(
        pushed=outbound.pushed + inbound.pushed,
        pulled=outbound.pulled + inbound.pulled,
        conflicts=inbound.conflicts,
        errors=outbound.errors + inbound.errors,
        created=outbound.created + inbound.created,
        trashed=outbound.trashed + inbound.trashed,
        deferred=outbound.deferred + inbound.deferred,
    )


@dataclasses.dataclass
class World:
    """A tenant of its own and its own Deals database in the sandbox."""

    tenant: str
    workspace: Workspace
    engine: SyncEngine

    def page_named(self, name: str) -> dict[str, Any]:
        [page] = [
            page
            for page in self.workspace.control.all_pages(self.workspace.data_source_id)
            if page["properties"]["Deal Name"]["title"][0]["plain_text"] == name
        ]
        return page


@pytest_asyncio.fixture
async def worlds(repository: DealRepository, workspace: Workspace) -> AsyncIterator[tuple[World, World]]:
    """Two tenants, each synced with a Deals database of its own in the same sandbox."""
    made = []
    for n in range(2):
        tenant = f"t-{uuid4().hex[:16]}"
        await repository.register_tenant(tenant, name=f"Stages {n}")
        [deals] = workspace.control.seed(
            {"databases": [{"title": f"Deals {n}", "properties": notion_properties_schema(SYNCED_PROPERTY_MAP)}]}
        )
        own = dataclasses.replace(workspace, database_id=deals["database_id"], data_source_id=deals["data_source_id"])
        adapter = own.adapter(property_map=SYNCED_PROPERTY_MAP, contacts_data_source_id=None)
        engine = SyncEngine(PostgresAdapter(repository, tenant), adapter, DEFAULT_FIELD_OWNERSHIP)
        made.append(World(tenant, own, engine))
    yield made[0], made[1]
    for world in made:
        await world.engine.close()


async def scenario(world: World, repository: DealRepository, run: Pass) -> list[SyncResult]:
    """Creates, an adoption and a page that cannot be read, then pushes, pulls, a conflict and an
    activity, then a quiet pass."""
    tenant, control = world.tenant, world.workspace.control
    results = []
    acme = await repository.create_opportunity(tenant, OpportunityCreate(name="Acme", deal_stage="Lead"))
    initech = await repository.create_opportunity(tenant, OpportunityCreate(name="Initech"))
    for name, properties in (("Globex", {"Stage": {"select": {"name": "Lead"}}}), ("Hooli", {})):  # Hooli: no stage
        title = {"Deal Name": {"title": [{"text": {"content": name}}]}, "Value": {"number": 7}}
        parent = {"data_source_id": world.workspace.data_source_id}
        control.human_create_page({"parent": parent, "properties": {**title, **properties}})
    results.append(await run(world.engine))

    await repository.update_opportunity(tenant, acme.id, OpportunityUpdate(deal_stage="Qualified"))
    await repository.update_opportunity(tenant, initech.id, OpportunityUpdate(estimated_value=Decimal("4200")))
    activity = ActivityCreate(
        opportunity_id=initech.id, kind="call", subject="kick-off", occurred_at=datetime(2027, 1, 4, 9, tzinfo=UTC)
    )
    await repository.create_activity(tenant, activity)
    control.set_clock(datetime.now(UTC) + timedelta(minutes=2))
    control.human_update_page(
        world.page_named("Acme")["id"], {"properties": {"Stage": {"select": {"name": "Proposal"}}}}
    )
    notes = {"Notes": {"rich_text": [{"text": {"content": "call Tuesday"}}]}}
    control.human_update_page(world.page_named("Globex")["id"], {"properties": notes})
    results.append(await run(world.engine))

    results.append(await run(world.engine))
    return [without_ids(result) for result in results]


def without_ids(result: SyncResult) -> SyncResult:
    """The result with the ids in its errors blanked (each world has ids of its own)."""
    errors = [
        error.model_copy(update={"record_id": "-", "reason": UUID_TEXT.sub("-", error.reason)})
        for error in result.errors
    ]
    return result.model_copy(update={"errors": errors})


async def stored_state(world: World, repository: DealRepository) -> dict[str, Any]:
    """What both sides and the sync's state hold, by deal name (ids differ between worlds)."""
    engine, status = world.engine, world.engine.status
    assert engine.external is not None
    fields = engine.external.mapped_fields
    deals = {deal.id: deal for deal in await repository.list_opportunities(world.tenant)}
    links = await status.links()
    external = await engine.external.get_opportunities(list(links.values()))
    bases = await status.bases(links)
    return {
        "deals": {d.name: (d.model_dump(include=set(fields)), d.archived_at is None) for d in deals.values()},
        "pages": sorted(str(record.model_dump(include=set(fields))) for record in external),
        "bases": {deals[record_id].name: base for record_id, base in bases.items()},
        "audit": {deals[record_id].name: sorted(map(str, await status.audit(record_id))) for record_id in links},
        "ledger": [(entry.field, UUID_TEXT.sub("-", entry.reason), entry.side) for entry in await status.errors()],
        "watermarks": [await status.watermark(direction) is not None for direction in Direction],
        "pending_activities": await status.pending_activities(),
    }


async def test_run_pass_and_the_stages_make_the_same_pass(
    worlds: tuple[World, World], repository: DealRepository
) -> None:
    whole, staged = worlds

    whole_results = await scenario(whole, repository, whole_pass)
    staged_results = await scenario(staged, repository, staged_pass)

    assert whole_results == staged_results
    assert [(r.created, r.pushed, r.pulled, r.conflicts) for r in whole_results] == [
        (3, 0, 0, 0),
        (0, 1, 2, 1),
        (0, 0, 0, 0),
    ]
    assert await stored_state(whole, repository) == await stored_state(staged, repository)


async def test_a_writing_stage_refuses_decisions_another_pass_made_stale(
    worlds: tuple[World, World], repository: DealRepository
) -> None:
    world, _ = worlds
    await repository.create_opportunity(world.tenant, OpportunityCreate(name="Acme"))
    engine = world.engine
    decisions = await engine.decide(await engine.read_primary(), await engine.read_external())
    assert (await engine.run_pass()).created == 1  # another pass syncs the same changes first

    with pytest.raises(PassOvertakenError, match="watermark moved"):
        await engine.write_outbound(decisions)
    assert len(world.workspace.control.all_pages(world.workspace.data_source_id)) == 1


async def test_a_drifted_schema_raises_or_reads_as_a_refusal_to_write(
    repository: DealRepository, workspace: Workspace, tenant: str
) -> None:
    """``run_pass`` stops at a drifted schema; the stages read it as no changes that no writing
    stage will write, so the graph's blocking check can show it."""
    [drifted] = workspace.control.seed(
        {
            "databases": [
                {
                    "title": "Drifted",
                    "properties": {**notion_properties_schema(SYNCED_PROPERTY_MAP), "Value": {"rich_text": {}}},
                }
            ]
        }
    )
    own = dataclasses.replace(workspace, database_id=drifted["database_id"], data_source_id=drifted["data_source_id"])
    engine = SyncEngine(
        PostgresAdapter(repository, tenant),
        own.adapter(property_map=SYNCED_PROPERTY_MAP, contacts_data_source_id=None),
        DEFAULT_FIELD_OWNERSHIP,
    )
    await repository.create_opportunity(tenant, OpportunityCreate(name="Acme"))
    try:
        with pytest.raises(PropertySchemaError, match="Value"):
            await engine.run_pass()
        with pytest.raises(PropertySchemaError, match="Value"):
            await engine.read_external()
        external = await engine.read_external(refuse_on_drift=True)
        assert (external.since, external.changes, external.schema_error is not None) == (None, [], True)
        assert "Value" in (external.schema_error or "")
        decisions = await engine.decide(await engine.read_primary(), external)
        with pytest.raises(PassRefusedError, match="schema does not fit"):
            await engine.write_outbound(decisions)
        with pytest.raises(PassRefusedError, match="schema does not fit"):
            await engine.write_inbound(decisions, [])
        assert own.control.all_pages(own.data_source_id) == []
        assert await engine.status.watermark(Direction.OUTBOUND) is None
    finally:
        await engine.close()


def test_every_part_of_a_pass_plan_is_written_by_one_of_the_two_stages() -> None:
    """The writing stages split the engine's plan by name: a part the engine adds must be routed
    here, or a staged pass would silently drop it."""
    parts = {f.name for f in dataclasses.fields(PassPlan)}
    assert OUTBOUND_PARTS.isdisjoint(INBOUND_PARTS)
    assert parts == OUTBOUND_PARTS | INBOUND_PARTS | {"records"}
    record_parts = {f.name for f in dataclasses.fields(RecordPlan)}
    assert record_parts == {"record_id", "external_id", "push", "pull", "base", "audit", "conflicts"}
