"""SyncEngine end to end over HubSpot, what only HubSpot does: restores only a person can make,
merges, activities as notes. The real deal store and the local HubSpot over HTTP. The rules every
connector shares run over HubSpot in test_engine_rules.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from hubspot import HubSpot
from hubspot.crm.deals import PublicMergeInput

from crm_pipeline.crm import PostgresAdapter, SyncEngine
from crm_pipeline.crm.hubspot import HubSpotAdapter
from crm_pipeline.hubspot_sandbox import DEFAULT_TOKEN, HubSpotControl, RunningHubSpot
from crm_pipeline.models import (
    ActivityCreate,
    Actor,
    OpportunityCreate,
    OpportunityRead,
    OpportunityUpdate,
    SyncResult,
)
from crm_pipeline.store import DealRepository
from crm_pipeline.sync import Outcome, Rule
from crm_pipeline.sync.ownership import DEFAULT_FIELD_OWNERSHIP, FieldOwnershipConfig

pytestmark = pytest.mark.integration


@pytest.fixture
def engine(repository: DealRepository, tenant: str, hubspot_adapter: HubSpotAdapter) -> SyncEngine:
    """The engine as it runs over Notion, reading the recycling bin every pass."""
    return SyncEngine(
        PostgresAdapter(repository, tenant), hubspot_adapter, DEFAULT_FIELD_OWNERSHIP, trash_check_seconds=0
    )


def deal_in_hubspot(control: HubSpotControl, deal_id: UUID) -> dict[str, Any]:
    [found] = [r for r in control.all_records("deals") if r["properties"]["crm_pipeline_id"] == str(deal_id)]
    return found


def deal_writes(control: HubSpotControl) -> int:
    routes = control.stats()["by_route"]
    return sum(
        sum(routes.get(f"POST /crm/v3/objects/{{object_type}}/batch/{kind}", {}).values())
        for kind in ("upsert", "update")
    )


async def stored(repository: DealRepository, tenant: str, deal_id: UUID) -> OpportunityRead:
    deal = await repository.get_opportunity(tenant, deal_id)
    assert deal is not None
    return deal


async def test_a_deal_deleted_in_hubspot_archives_the_deal_and_a_ui_restore_restores_it(
    engine: SyncEngine,
    repository: DealRepository,
    tenant: str,
    hubspot: RunningHubSpot,
    hubspot_control: HubSpotControl,
) -> None:
    deal = await repository.create_opportunity(tenant, OpportunityCreate(name="Acme"))
    await engine.run_pass()
    external_id = deal_in_hubspot(hubspot_control, deal.id)["id"]
    HubSpot(access_token=DEFAULT_TOKEN, host=hubspot.base_url).crm.deals.basic_api.archive(external_id)
    assert (await engine.run_pass()).trashed == 1
    assert (await stored(repository, tenant, deal.id)).archived_at is not None
    hubspot_control.set_clock(datetime.now(UTC) + timedelta(seconds=1))
    hubspot_control.ui_restore("deals", external_id)
    assert (await engine.run_pass()).errors == []
    assert (await stored(repository, tenant, deal.id)).archived_at is None


async def test_a_restore_hubspot_cannot_make_is_reported_once_and_waits_for_a_person_to_restore_it(
    engine: SyncEngine, repository: DealRepository, tenant: str, hubspot_control: HubSpotControl
) -> None:
    """HubSpot's API cannot restore a deal, nor create another under its key while it is in the
    recycling bin: a person restores it there, and until then the sync waits instead of failing
    every pass."""
    deal = await repository.create_opportunity(tenant, OpportunityCreate(name="Acme"))
    await engine.run_pass()
    await repository.archive_opportunity(tenant, deal.id)
    assert (await engine.run_pass()).trashed == 1
    external_id = deal_in_hubspot(hubspot_control, deal.id)["id"]
    assert deal_in_hubspot(hubspot_control, deal.id)["archived"]
    await repository.restore_opportunity(tenant, deal.id)
    [error] = (await engine.run_pass()).errors
    assert "recycling bin" in error.reason
    assert (await engine.run_pass()).errors == []  # not retried while HubSpot has not changed
    [waiting] = await engine.status.errors()
    assert (waiting.record_id, "recycling bin" in waiting.reason) == (str(deal.id), True)
    await repository.update_opportunity(tenant, deal.id, OpportunityUpdate(deal_stage="Qualified"))
    assert (await engine.run_pass()).errors == []
    hubspot_control.set_clock(datetime.now(UTC) + timedelta(seconds=1))
    hubspot_control.ui_restore("deals", external_id)
    result = await engine.run_pass()
    assert (result.errors, result.pushed) == ([], 1)
    assert await engine.status.errors() == []
    restored = deal_in_hubspot(hubspot_control, deal.id)
    assert (restored["archived"], restored["properties"]["dealstage"]) == (False, "qualifiedtobuy")


async def test_a_persons_edit_is_an_override_and_the_syncs_own_write_beside_it_is_not(
    repository: DealRepository, tenant: str, hubspot_adapter: HubSpotAdapter, hubspot_control: HubSpotControl
) -> None:
    """A person moves the stage in HubSpot; then the sync's own write of the amount lands on the
    same deal, its answer lost (so the base still holds the old amount). The deal's newest edit is
    the sync's, yet per field the stage is the person's: an override, pulled; the amount is the
    sync's own echo, no override: the agent's value stands and goes out again."""
    ownership = FieldOwnershipConfig(agent_owned_fields=["deal_stage", "estimated_value"])
    engine = SyncEngine(PostgresAdapter(repository, tenant), hubspot_adapter, ownership)
    deal = await repository.create_opportunity(tenant, OpportunityCreate(name="Acme", estimated_value=Decimal(100)))
    await engine.run_pass()
    external_id = deal_in_hubspot(hubspot_control, deal.id)["id"]
    now = datetime.now(UTC)
    hubspot_control.set_clock(now + timedelta(seconds=1))
    hubspot_control.ui_edit("deals", external_id, {"dealstage": "qualifiedtobuy"})
    hubspot_control.set_clock(now + timedelta(seconds=2))
    await hubspot_adapter.write_opportunity(external_id, OpportunityUpdate(estimated_value=Decimal(250)))
    assert (await hubspot_adapter.get_opportunity(external_id)).last_edited_by is Actor.SYNC  # type: ignore[union-attr]

    assert (await engine.run_pass()).errors == []

    kept = await stored(repository, tenant, deal.id)
    assert (kept.deal_stage, kept.estimated_value) == ("Qualified", Decimal(100))
    assert deal_in_hubspot(hubspot_control, deal.id)["properties"]["amount"] in ("100", "100.00")
    decided = {entry.field: (entry.outcome, entry.rule) for entry in await engine.status.audit(deal.id)}
    assert decided == {
        "deal_stage": (Outcome.OVERRIDE, Rule.HUMAN_OVERRIDE),
        "estimated_value": (Outcome.PUSH, Rule.AGENT_OWNED),
    }


async def test_another_apps_write_is_an_external_edit_not_the_syncs_own(
    repository: DealRepository, tenant: str, hubspot_adapter: HubSpotAdapter, hubspot_control: HubSpotControl
) -> None:
    """Another app writes the amount through the API. Only the sync writes a deal's sync key, so
    its source is the sync's own (no ``app_source_id`` configured); the other app's write is an
    external edit like a person's: pulled into the deal store, never overwritten there."""
    engine = SyncEngine(PostgresAdapter(repository, tenant), hubspot_adapter, DEFAULT_FIELD_OWNERSHIP)
    deal = await repository.create_opportunity(tenant, OpportunityCreate(name="Acme", estimated_value=Decimal(100)))
    await engine.run_pass()
    external_id = deal_in_hubspot(hubspot_control, deal.id)["id"]
    hubspot_control.set_clock(datetime.now(UTC) + timedelta(seconds=1))
    hubspot_control.app_edit("deals", external_id, {"amount": "300"}, app_id="enrichment-app")
    edited = await hubspot_adapter.get_opportunity(external_id)
    assert edited is not None and edited.field_edits["estimated_value"].actor is Actor.HUMAN

    assert (await engine.run_pass()).errors == []

    assert (await stored(repository, tenant, deal.id)).estimated_value == Decimal(300)
    assert deal_in_hubspot(hubspot_control, deal.id)["properties"]["amount"] in ("300", "300.00")


async def test_activities_become_notes_on_the_deal_once_each(
    engine: SyncEngine, repository: DealRepository, tenant: str, hubspot_control: HubSpotControl
) -> None:
    deal = await repository.create_opportunity(tenant, OpportunityCreate(name="Acme"))
    await engine.run_pass()
    for subject in ("Intro call", "Demo"):
        await repository.create_activity(tenant, ActivityCreate(opportunity_id=deal.id, subject=subject))
    await engine.run_pass()
    await engine.run_pass()
    bodies = sorted(n["properties"]["hs_note_body"].split(" · ref ")[0] for n in hubspot_control.all_records("notes"))
    assert bodies == ["Note: Demo", "Note: Intro call"]


@pytest.mark.parametrize("preserve_ids", [False, True], ids=["new-id", "primary-id-kept"])
async def test_a_merge_in_hubspot_relinks_the_deal_to_the_survivor_and_queues_the_absorbed_one(
    engine: SyncEngine,
    repository: DealRepository,
    tenant: str,
    hubspot: RunningHubSpot,
    hubspot_control: HubSpotControl,
    preserve_ids: bool,
) -> None:
    """A person merges two synced deals: the deal whose key the survivor carries now links to it
    (nothing archived, nothing created, no key written); the other's record is gone, so it waits in
    the pending-delete queue for a person, and its writes no longer reach the survivor. The same
    whether the survivor gets a new id or keeps the primary's (HubSpot's id-preservation beta)."""
    hubspot_control.configure(preserve_merged_ids=preserve_ids)
    kept = await repository.create_opportunity(tenant, OpportunityCreate(name="Acme"))
    absorbed = await repository.create_opportunity(tenant, OpportunityCreate(name="Acme (dup)"))
    await engine.run_pass()
    primary, other = (deal_in_hubspot(hubspot_control, d.id)["id"] for d in (kept, absorbed))
    hubspot_control.set_clock(datetime.now(UTC) + timedelta(seconds=1))
    sdk = HubSpot(access_token=DEFAULT_TOKEN, host=hubspot.base_url)
    survivor = sdk.crm.deals.basic_api.merge(PublicMergeInput(primary_object_id=primary, object_id_to_merge=other)).id
    hubspot_control.reset_stats()
    result = await engine.run_pass()
    assert (result.errors, result.trashed, result.created) == ([], 0, 0)
    assert deal_writes(hubspot_control) == 0
    assert await engine.status.links([kept.id]) == {kept.id: survivor}
    assert set(await engine.status.pending_deletes()) == {absorbed.id}
    await repository.update_opportunity(tenant, absorbed.id, OpportunityUpdate(name="Acme (dup) renamed"))
    await repository.update_opportunity(tenant, kept.id, OpportunityUpdate(deal_stage="Qualified"))
    assert (await engine.run_pass()).pushed == 1
    [live] = [r for r in hubspot_control.all_records("deals") if not r["archived"]]
    assert (live["id"], live["properties"]["dealname"], live["properties"]["dealstage"]) == (
        survivor,
        "Acme",
        "qualifiedtobuy",
    )
    assert (await stored(repository, tenant, absorbed.id)).archived_at is None  # a person decides


async def test_a_restore_waiting_for_a_person_is_dropped_when_the_deal_is_archived_again(
    engine: SyncEngine, repository: DealRepository, tenant: str
) -> None:
    deal = await repository.create_opportunity(tenant, OpportunityCreate(name="Acme"))
    await engine.run_pass()
    await repository.archive_opportunity(tenant, deal.id)
    await engine.run_pass()
    await repository.restore_opportunity(tenant, deal.id)
    assert len((await engine.run_pass()).errors) == 1
    await repository.archive_opportunity(tenant, deal.id)
    assert await engine.run_pass() == SyncResult()
    assert await engine.status.errors() == []
