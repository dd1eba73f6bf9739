"""HubSpotAdapter against the local HubSpot over HTTP, through the official client: keyed upserts,
lossless values, change reads with history, the recycling bin, merges, notes, retries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from uuid import uuid4

import pytest
import pytest_asyncio
from hubspot import HubSpot

from crm_pipeline.crm.errors import FieldMappingError, RecordGoneError
from crm_pipeline.crm.hubspot import HubSpotAdapter, RateLimit, RestoreUnsupportedError, RetryPolicy, WriteRefusedError
from crm_pipeline.hubspot_sandbox import DEFAULT_TOKEN, HubSpotControl, RunningHubSpot
from crm_pipeline.models import (
    ActivityCreate,
    Actor,
    ContactCreate,
    OpportunityCreate,
    OpportunityFilter,
    OpportunityRead,
    OpportunityUpdate,
)
from crm_pipeline_tests.conftest import HUBSPOT_CLOCK, clock_sleep
from crm_pipeline_tests.crm.conftest import deal


@pytest_asyncio.fixture
async def adapter(hubspot_sandbox: RunningHubSpot, hubspot_control: HubSpotControl) -> AsyncIterator[HubSpotAdapter]:
    adapter = HubSpotAdapter(
        DEFAULT_TOKEN,
        base_url=hubspot_sandbox.base_url,
        tenant_id="acme",
        retry=RetryPolicy(sleep=clock_sleep(hubspot_control)),
        rate_limit=RateLimit(per_ten_seconds=0, searches_per_second=0),
        overlap=timedelta(seconds=30),
    )
    yield adapter
    await adapter.aclose()


async def test_values_round_trip_as_hubspot_strings_without_loss(
    adapter: HubSpotAdapter, hubspot_control: HubSpotControl
) -> None:
    record = deal()
    (outcome,) = await adapter.upsert_opportunities([record])
    assert (outcome.action, outcome.record_id) == ("created", str(record.id))
    stored = {r["id"]: r for r in hubspot_control.all_records("deals")}[outcome.external_id]["properties"]
    assert stored["amount"] == "1500.00" and stored["crm_probability"] == "0.35"
    assert stored["closedate"] == "2026-04-30T00:00:00.000Z" and stored["dealstage"] == "presentationscheduled"
    assert stored["crm_tags"] == "vip;q2"  # a multi-checkbox, its options added as tags first appear
    read = await adapter.get_opportunity(str(outcome.external_id))
    assert read is not None and read.sync_key == record.id and read.external_id == outcome.external_id
    assert {name: getattr(read, name) for name in adapter.mapped_fields} == {
        name: getattr(record, name) for name in adapter.mapped_fields
    }


async def test_keyed_creates_are_idempotent_across_adapters(
    adapter: HubSpotAdapter, hubspot_sandbox: RunningHubSpot
) -> None:
    record = deal()
    first = await adapter.create_opportunity(record)
    fresh = HubSpotAdapter(DEFAULT_TOKEN, base_url=hubspot_sandbox.base_url, rate_limit=RateLimit(per_ten_seconds=0))
    assert await fresh.create_opportunity(record) == first
    assert len(await adapter.list_opportunities(OpportunityFilter())) == 1


async def test_a_create_whose_answer_was_lost_lands_once(
    adapter: HubSpotAdapter, hubspot_control: HubSpotControl
) -> None:
    hubspot_control.add_fault("503", path="/crm/v3/objects/deals/batch/upsert", applied=True)
    (outcome,) = await adapter.upsert_opportunities([deal()])
    assert outcome.action == "updated"  # the resend found the record the lost answer had created
    assert len(hubspot_control.all_records("deals")) == 1


async def test_an_update_changes_only_the_fields_set(adapter: HubSpotAdapter, hubspot_control: HubSpotControl) -> None:
    record = deal()
    await adapter.upsert_opportunities([record])
    hubspot_control.reset_stats()
    (outcome,) = await adapter.upsert_opportunities([OpportunityCreate(id=record.id, name="Acme (renamed)")])
    assert outcome.action == "updated"
    read = await adapter.get_opportunity(str(outcome.external_id))
    assert read is not None and read.name == "Acme (renamed)" and read.deal_stage == "Proposal"
    assert read.estimated_value == Decimal("1500.00")


async def test_a_batch_of_250_takes_one_request_per_100_and_reports_each_record(
    adapter: HubSpotAdapter, hubspot_control: HubSpotControl
) -> None:
    records = [deal(name=f"Deal {i}") for i in range(250)]
    await adapter.upsert_opportunities(records[:1])
    gone = await adapter.upsert_opportunities([records[1]])
    await adapter.archive_opportunity(str(gone[0].external_id))
    hubspot_control.reset_stats()
    outcomes = await adapter.upsert_opportunities(records)
    assert hubspot_control.stats()["by_route"] == {
        "POST /crm/v3/objects/{object_type}/batch/upsert": {"200": 2, "207": 1}
    }
    assert [o.action for o in outcomes[:3]] == ["updated", "failed", "created"]
    assert outcomes[1].record_id == str(records[1].id) and "archived" in str(outcomes[1].reason)
    assert sum(o.action == "created" for o in outcomes) == 248


async def test_records_without_every_field_have_their_keys_read_first(
    adapter: HubSpotAdapter, hubspot_control: HubSpotControl
) -> None:
    record = deal()
    await adapter.upsert_opportunities([record])
    hubspot_control.reset_stats()
    [outcome] = await adapter.upsert_opportunities([OpportunityCreate(id=record.id, name="Renamed")])
    assert outcome.action == "updated"
    assert hubspot_control.stats()["by_route"] == {
        "POST /crm/v3/objects/{object_type}/batch/read": {"200": 1},
        "POST /crm/v3/objects/{object_type}/batch/upsert": {"200": 1},
    }
    read = await adapter.get_opportunity(str(outcome.external_id))
    assert read is not None and (read.name, read.manual_tags) == ("Renamed", ["vip", "q2"])


async def test_the_same_id_twice_is_refused_before_anything_is_sent(
    adapter: HubSpotAdapter, hubspot_control: HubSpotControl
) -> None:
    record = deal()
    with pytest.raises(ValueError, match=str(record.id)):
        await adapter.upsert_opportunities([record, record])
    assert hubspot_control.stats()["total"] == 0


async def test_write_opportunity_returns_the_record_and_gone_records_raise(adapter: HubSpotAdapter) -> None:
    external_id = await adapter.create_opportunity(deal())
    written = await adapter.write_opportunity(external_id, OpportunityUpdate(deal_stage="Closed Won"))
    assert written.deal_stage == "Closed Won"
    await adapter.archive_opportunity(external_id)
    with pytest.raises(RecordGoneError):
        await adapter.write_opportunity(external_id, OpportunityUpdate(name="x"))
    with pytest.raises(RestoreUnsupportedError):
        await adapter.restore_opportunity(external_id)


async def test_a_batch_of_150_updates_takes_two_requests_and_two_reads_and_a_gone_deal_fails_alone(
    adapter: HubSpotAdapter, hubspot_control: HubSpotControl
) -> None:
    outcomes = await adapter.upsert_opportunities([deal(name=f"Deal {i}") for i in range(150)])
    ids = [str(o.external_id) for o in outcomes]
    await adapter.archive_opportunity(ids[1])
    hubspot_control.reset_stats()
    written = await adapter.write_opportunities(
        [(i, OpportunityUpdate(name=f"Renamed {n}")) for n, i in enumerate(ids)]
    )
    routes = hubspot_control.stats()["by_route"]
    assert sum(routes["POST /crm/v3/objects/{object_type}/batch/update"].values()) == 2
    assert sum(routes["POST /crm/v3/objects/{object_type}/batch/read"].values()) == 2  # 149 read back, 100 a request
    assert [o.ok for o in written] == [True, False] + [True] * 148
    assert isinstance(written[1].result, RecordGoneError)
    assert [o.result.name for o in written if isinstance(o.result, OpportunityRead)][:2] == ["Renamed 0", "Renamed 2"]


async def test_a_refused_value_in_a_batch_of_updates_fails_its_deal_alone_naming_the_field(
    adapter: HubSpotAdapter, hubspot_sandbox: RunningHubSpot
) -> None:
    first, tagged = [await adapter.create_opportunity(deal()) for _ in range(2)]
    sdk = HubSpot(access_token=DEFAULT_TOKEN, host=hubspot_sandbox.base_url)
    sdk.crm.properties.core_api.update("deals", "crm_tags", {"options": [{"label": "vip", "value": "vip"}]})
    adapter._options["crm_tags"] = ["vip", "q2"]  # the adapter believes an option exists that was removed
    written = await adapter.write_opportunities(
        [(first, OpportunityUpdate(name="Renamed")), (tagged, OpportunityUpdate(manual_tags=["q2"]))]
    )
    assert [o.ok for o in written] == [True, False]
    refused = written[1].result
    assert isinstance(refused, FieldMappingError) and (refused.field, refused.property_name) == (
        "manual_tags",
        "crm_tags",
    )


async def test_a_lost_update_answer_is_read_back_not_resent(
    adapter: HubSpotAdapter, hubspot_control: HubSpotControl
) -> None:
    external_id = await adapter.create_opportunity(deal())
    hubspot_control.add_fault("503", path="/crm/v3/objects/deals/batch/update", applied=True)
    hubspot_control.reset_stats()
    written = await adapter.write_opportunity(external_id, OpportunityUpdate(name="Landed"))
    assert written.name == "Landed"
    assert hubspot_control.stats()["by_route"]["POST /crm/v3/objects/{object_type}/batch/update"] == {"503": 1}


async def test_changes_tell_a_persons_edit_from_ours(adapter: HubSpotAdapter, hubspot_control: HubSpotControl) -> None:
    ours = await adapter.create_opportunity(deal())
    theirs = await adapter.create_opportunity(deal())
    batch = await adapter.read_changes(None)
    assert {c.record_id: c.actor for c in batch.changes} == {ours: Actor.SYNC, theirs: Actor.SYNC}
    hubspot_control.advance_clock(120)
    hubspot_control.ui_edit("deals", theirs, {"amount": "99.95"}, user_id=7)
    later = await adapter.read_changes(batch.cursor)
    changed = {c.record_id: c for c in later.changes}
    assert changed[theirs].actor == Actor.HUMAN and changed[theirs].changes["estimated_value"].new == "99.95"
    assert changed[ours].actor == Actor.SYNC  # read again: it lies in the overlap window
    edits = changed[theirs].field_edits
    assert adapter.capabilities.per_field_timestamps
    assert (edits["estimated_value"].actor, edits["name"].actor) == (Actor.HUMAN, Actor.SYNC)
    assert edits["estimated_value"].at - edits["name"].at >= timedelta(seconds=120)
    assert edits.keys() <= changed[theirs].changes.keys()  # a property never written has no history


async def test_change_reads_never_miss_an_edit_the_index_had_not_seen(
    adapter: HubSpotAdapter, hubspot_control: HubSpotControl
) -> None:
    hubspot_control.configure(search_lag_ms=5_000)
    first = await adapter.create_opportunity(deal())
    hubspot_control.advance_clock(10)
    batch = await adapter.read_changes(None)
    assert [c.record_id for c in batch.changes] == [first]
    hubspot_control.advance_clock(1)
    second = await adapter.create_opportunity(deal())
    assert second not in [c.record_id for c in (await adapter.read_changes(batch.cursor)).changes]  # not indexed yet
    hubspot_control.advance_clock(10)
    assert second in [c.record_id for c in (await adapter.read_changes(batch.cursor)).changes]


@pytest.mark.parametrize("spread", [False, True], ids=["one-millisecond", "spread-out"])
async def test_change_reads_go_past_the_search_result_cap(
    hubspot_sandbox: RunningHubSpot, hubspot_control: HubSpotControl, spread: bool
) -> None:
    hubspot_control.configure(search_result_cap=200)
    adapter = HubSpotAdapter(
        DEFAULT_TOKEN,
        base_url=hubspot_sandbox.base_url,
        rate_limit=RateLimit(per_ten_seconds=0, searches_per_second=0),
        search_result_cap=200,
    )
    keys = []
    for _ in range(5):
        batch = [deal() for _ in range(100)]
        keys += [str(r.id) for r in batch]
        await adapter.upsert_opportunities(batch)
        if spread:
            hubspot_control.advance_clock(0.5)
    changes = (await adapter.read_changes(None)).changes
    assert sorted(c.sync_key or "" for c in changes) == sorted(keys)


async def test_archived_deals_are_swept_from_the_recycling_bin(
    adapter: HubSpotAdapter, hubspot_control: HubSpotControl
) -> None:
    kept, gone = await adapter.create_opportunity(deal()), await adapter.create_opportunity(deal())
    cursor = (await adapter.read_trashed(None)).cursor
    hubspot_control.advance_clock(120)
    archived = await adapter.archive_opportunity(gone)
    assert archived.in_trash and archived.archived_at is not None
    trashed = await adapter.read_trashed(cursor)
    assert [(c.record_id, c.changes["archived_at"].new is not None) for c in trashed.changes] == [(gone, True)]
    deleted = await adapter.get_opportunity(gone)
    assert deleted is not None and deleted.in_trash  # a delete, not a record that vanished
    assert [r.external_id for r in await adapter.list_opportunities(OpportunityFilter(archived=True))] == [gone]  # type: ignore[attr-defined]
    hubspot_control.advance_clock(60)
    hubspot_control.ui_restore("deals", gone)
    assert gone in [
        c.record_id for c in (await adapter.read_changes((await adapter.read_changes(None)).cursor)).changes
    ]
    assert kept


async def test_a_merged_id_answers_as_its_survivor(adapter: HubSpotAdapter, hubspot_sandbox: RunningHubSpot) -> None:
    primary, other = await adapter.create_opportunity(deal()), await adapter.create_opportunity(deal())
    from hubspot import HubSpot
    from hubspot.crm.deals import PublicMergeInput

    sdk = HubSpot(access_token=DEFAULT_TOKEN, host=hubspot_sandbox.base_url)
    survivor = sdk.crm.deals.basic_api.merge(PublicMergeInput(primary_object_id=primary, object_id_to_merge=other)).id
    found = await adapter.get_opportunities([other, primary])
    assert [r.external_id for r in found] == [survivor, survivor]  # type: ignore[attr-defined]
    assert adapter.merged == {other: survivor, primary: survivor}
    assert sorted(found[0].merged_ids) == sorted([primary, other])  # type: ignore[attr-defined]
    [change] = [c for c in (await adapter.read_changes(None)).changes if c.record_id == survivor]
    assert change.sync_key == str(found[0].sync_key)


async def test_an_activity_lands_once_as_a_note_on_its_deal(
    adapter: HubSpotAdapter, hubspot_control: HubSpotControl
) -> None:
    record = deal()
    deal_id = await adapter.create_opportunity(record)
    activity = ActivityCreate(id=uuid4(), opportunity_id=record.id, subject="Call", body="Went well")
    twin = ActivityCreate(id=uuid4(), opportunity_id=record.id, subject="Call", body="Went well")
    hubspot_control.add_fault("503", path="/crm/v3/objects/notes", method="POST", applied=True)
    note_id = await adapter.create_activity(activity)
    assert await adapter.find_activity(activity) == note_id
    assert await adapter.find_activity(twin) is None
    assert await adapter.create_activity(twin) != note_id  # the same text is another activity
    notes = hubspot_control.all_records("notes")
    assert len(notes) == 2 and all(n["properties"]["hs_note_body"].endswith("Went well") for n in notes)
    assert deal_id


async def test_a_429_is_waited_out_and_the_daily_limit_surfaces(
    adapter: HubSpotAdapter, hubspot_control: HubSpotControl
) -> None:
    hubspot_control.configure(ten_secondly_limit=2)
    created = [await adapter.create_opportunity(deal()) for _ in range(3)]  # a retry's wait moves the clock
    assert hubspot_control.stats()["by_status"].get("429", 0) >= 1
    hubspot_control.configure(ten_secondly_limit=0, daily_limit=1)
    hubspot_control.advance_clock(86_400)
    await adapter.get_opportunities(created[:1])
    with pytest.raises(Exception) as raised:
        await adapter.get_opportunities(created[:1])
    assert getattr(raised.value, "status", None) == 429


async def test_a_burst_of_writes_stays_under_the_ten_second_limit(
    hubspot_sandbox: RunningHubSpot, hubspot_control: HubSpotControl
) -> None:
    """Client and server windows run on the local HubSpot's clock: a paced adapter waits by moving
    it, so the server's statistics, not elapsed time, show the pacing."""
    hubspot_control.configure(ten_secondly_limit=5)
    clock = hubspot_sandbox.sandbox.clock

    async def wait(seconds: float) -> None:
        clock.advance(seconds)

    paced = HubSpotAdapter(
        DEFAULT_TOKEN,
        base_url=hubspot_sandbox.base_url,
        rate_limit=RateLimit(per_ten_seconds=5, clock=lambda: clock.now_ms() / 1000, sleep=wait),
    )
    records = [deal() for _ in range(4)]
    for record in records:  # with the schema reads: more requests than one window allows
        await paced.upsert_opportunities([record])
    assert await paced.get_opportunities([str(o.external_id) for o in await paced.upsert_opportunities(records)])
    stats = hubspot_control.stats()
    assert stats["total"] > 5 and "429" not in stats["by_status"]
    assert clock.now_ms() - int(HUBSPOT_CLOCK.timestamp() * 1000) >= 10_000  # it waited a window at least


async def test_a_contact_is_keyed_on_its_email_and_associated_with_its_deal(
    adapter: HubSpotAdapter, hubspot_sandbox: RunningHubSpot
) -> None:
    record = deal()
    deal_id = await adapter.create_opportunity(record)
    contact = ContactCreate(name="Ann Lee", email="ann@example.com", title="CTO", opportunity_id=record.id)
    contact_id = await adapter.create_contact(contact)
    assert await adapter.create_contact(contact) == contact_id  # a resend creates no second contact
    sdk = HubSpot(access_token=DEFAULT_TOKEN, host=hubspot_sandbox.base_url)
    read = sdk.crm.contacts.basic_api.get_by_id(contact_id, properties=["firstname", "lastname", "jobtitle"])
    assert (read.properties["firstname"], read.properties["lastname"], read.properties["jobtitle"]) == (
        "Ann",
        "Lee",
        "CTO",
    )
    linked = sdk.crm.associations.v4.basic_api.get_page("deals", deal_id, "contacts").results
    assert [str(r.to_object_id) for r in linked] == [contact_id]


async def test_a_hung_request_times_out_and_the_keyed_resend_lands_once(
    hubspot_sandbox: RunningHubSpot, hubspot_control: HubSpotControl
) -> None:
    async def no_wait(_: float) -> None:
        pass

    adapter = HubSpotAdapter(
        DEFAULT_TOKEN,
        base_url=hubspot_sandbox.base_url,
        retry=RetryPolicy(sleep=no_wait),
        rate_limit=RateLimit(per_ten_seconds=0, searches_per_second=0),
        timeout_s=0.3,
    )
    await adapter.upsert_opportunities([deal()])  # the schema is read before the fault is set
    hubspot_control.add_fault("hang", path="/crm/v3/objects/deals/batch/upsert", applied=True, hang_seconds=0.6)
    [outcome] = await adapter.upsert_opportunities([deal()])
    assert outcome.ok
    assert len(hubspot_control.all_records("deals")) == 2


async def test_one_sdk_client_per_api_so_connections_are_reused(
    adapter: HubSpotAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hubspot.crm.deals

    built = []
    original = hubspot.crm.deals.ApiClient.__init__

    def counting(self: object, *args: object, **kwargs: object) -> None:
        built.append(self)
        original(self, *args, **kwargs)

    monkeypatch.setattr(hubspot.crm.deals.ApiClient, "__init__", counting)
    for _ in range(3):
        await adapter.upsert_opportunities([deal()])
    assert len(built) == 1  # the deals batch API's client, built once


async def test_aclose_closes_the_connection_pools(hubspot_sandbox: RunningHubSpot) -> None:
    adapter = HubSpotAdapter(DEFAULT_TOKEN, base_url=hubspot_sandbox.base_url, rate_limit=RateLimit(per_ten_seconds=0))
    await adapter.create_opportunity(deal())
    pools = [api.api_client.rest_client.pool_manager for api in adapter.api._apis.values()]
    assert pools and all(len(pool.pools) for pool in pools)
    await adapter.aclose()
    assert not any(len(pool.pools) for pool in pools)


async def test_a_refused_create_raises_by_what_was_refused(
    adapter: HubSpotAdapter, hubspot_sandbox: RunningHubSpot
) -> None:
    record = deal()
    await adapter.archive_opportunity(await adapter.create_opportunity(record))
    with pytest.raises(WriteRefusedError, match=str(record.id)):
        await adapter.create_opportunity(record)  # its deal is in the recycling bin
    sdk = HubSpot(access_token=DEFAULT_TOKEN, host=hubspot_sandbox.base_url)
    sdk.crm.properties.core_api.update("deals", "crm_tags", {"options": [{"label": "vip", "value": "vip"}]})
    adapter._options["crm_tags"] = ["vip", "q2"]  # the adapter believes an option exists that was removed
    with pytest.raises(FieldMappingError) as raised:
        await adapter.create_opportunity(deal())
    assert (raised.value.field, raised.value.property_name) == ("manual_tags", "crm_tags")
