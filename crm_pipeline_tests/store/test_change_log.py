"""The field-level change log and bulk upsert: what changed, old → new, when and by whom."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from uuid import uuid4

import pytest
from pydantic_core import to_jsonable_python
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_pipeline.models import (
    OPPORTUNITY_FIELDS,
    ActivityCreate,
    Actor,
    ChangeCursor,
    ContactCreate,
    ContactUpdate,
    FieldChange,
    OpportunityCreate,
    OpportunityFilter,
    OpportunityUpdate,
    RecordType,
)
from crm_pipeline.store import Database, DealRepository


async def test_every_write_logs_its_fields_old_and_new_and_actor(repository: DealRepository, tenant: str) -> None:
    created = await repository.create_opportunity(
        tenant, OpportunityCreate(name="Acme", estimated_value=Decimal("10.50"), manual_tags=["a"])
    )
    await repository.update_opportunity(
        tenant, created.id, OpportunityUpdate(deal_stage="Closed Won", custom_notes="hi"), actor=Actor.HUMAN
    )
    await repository.update_opportunity(tenant, created.id, OpportunityUpdate(probability="0.9"), actor=Actor.SYNC)

    first, second, third = await repository.changes_since(tenant, created.created_at - timedelta(seconds=1))
    assert first.record_type is RecordType.OPPORTUNITY and first.record_id == str(created.id)
    assert first.actor is Actor.AGENT
    assert {field: (c.old, c.new) for field, c in first.changes.items()} == {
        "name": (None, "Acme"),
        "deal_stage": (None, "Lead"),
        "estimated_value": (None, "10.50"),
        "manual_tags": (None, ["a"]),
    }
    assert second.actor is Actor.HUMAN
    assert {field: (c.old, c.new) for field, c in second.changes.items()} == {
        "deal_stage": ("Lead", "Closed Won"),
        "custom_notes": (None, "hi"),
    }
    assert third.actor is Actor.SYNC and set(third.changes) == {"probability"}
    assert first.sequence < second.sequence < third.sequence
    assert first.changed_at <= second.changed_at <= third.changed_at


async def test_changes_since_is_strictly_after_its_instant(repository: DealRepository, tenant: str) -> None:
    created = await repository.create_opportunity(tenant, OpportunityCreate(name="Acme"))
    updated = await repository.update_opportunity(tenant, created.id, OpportunityUpdate(name="Acme 2"))

    at_create = await repository.changes_since(tenant, created.created_at)
    assert [c.changes["name"].new for c in at_create] == ["Acme 2"]
    assert await repository.changes_since(tenant, updated.updated_at) == []
    everything = await repository.changes_since(tenant, created.created_at - timedelta(microseconds=1))
    assert len(everything) == 2
    assert len(await repository.changes_since(tenant, created.created_at - timedelta(days=1), limit=1)) == 1


async def test_changes_since_filters_by_record_type_and_covers_contacts_and_activities(
    repository: DealRepository, tenant: str
) -> None:
    opportunity = await repository.create_opportunity(tenant, OpportunityCreate(name="Acme"))
    contact = await repository.create_contact(
        tenant, ContactCreate(name="Ada", email="ada@acme.example", opportunity_id=opportunity.id)
    )
    await repository.update_contact(tenant, contact.id, ContactUpdate(title="CTO"), actor=Actor.HUMAN)
    await repository.create_activity(
        tenant, ActivityCreate(opportunity_id=opportunity.id, kind="call", subject="Intro call", body="Went well")
    )
    since = opportunity.created_at - timedelta(seconds=1)

    contact_changes = await repository.changes_since(tenant, since, record_type=RecordType.CONTACT)
    assert [(c.actor, set(c.changes)) for c in contact_changes] == [
        (Actor.AGENT, {"name", "email", "opportunity_id"}),
        (Actor.HUMAN, {"title"}),
    ]
    activity_changes = await repository.changes_since(tenant, since, record_type=RecordType.ACTIVITY)
    assert activity_changes[0].changes["subject"].new == "Intro call"


async def test_contacts_and_activities_crud(repository: DealRepository, tenant: str) -> None:
    opportunity = await repository.create_opportunity(tenant, OpportunityCreate(name="Acme"))
    contact = await repository.create_contact(tenant, ContactCreate(name="Ada", opportunity_id=opportunity.id))
    updated = await repository.update_contact(tenant, contact.id, ContactUpdate(email="ada@acme.example"))
    assert updated.email == "ada@acme.example" and updated.name == "Ada"
    assert await repository.get_contact(tenant, contact.id) == updated
    assert [c.id for c in await repository.list_contacts(tenant, opportunity_id=opportunity.id)] == [contact.id]

    for subject in ("First", "Second"):
        await repository.create_activity(tenant, ActivityCreate(opportunity_id=opportunity.id, subject=subject))
    listed = await repository.list_activities(tenant, opportunity_id=opportunity.id)
    assert [a.subject for a in listed] == ["First", "Second"]
    assert await repository.list_activities(tenant, opportunity_id=uuid4()) == []


async def test_bulk_upsert_creates_updates_and_skips_unchanged(repository: DealRepository, tenant: str) -> None:
    ids = [uuid4() for _ in range(25)]
    first = await repository.bulk_upsert_opportunities(
        tenant,
        [OpportunityCreate(id=i, name=f"Deal {n}", estimated_value=Decimal(n)) for n, i in enumerate(ids)],
        batch_size=10,
    )
    assert (first.created, first.updated, first.unchanged) == (25, 0, 0)

    archived = await repository.archive_opportunity(tenant, ids[0])
    second = await repository.bulk_upsert_opportunities(
        tenant,
        [OpportunityCreate(id=ids[0], name="Deal 0", deal_stage="Closed Won")]  # name unchanged, stage new
        + [OpportunityCreate(id=i, name=f"Deal {n}") for n, i in enumerate(ids[1:], start=1)]  # unchanged
        + [OpportunityCreate(id=uuid4(), name="New")],
        batch_size=10,
    )
    assert (second.created, second.updated, second.unchanged) == (1, 1, 24)

    row = await repository.get_opportunity(tenant, ids[0])
    assert row.deal_stage == "Closed Won"
    assert row.estimated_value == Decimal(0)  # not set on the record, so left alone
    assert row.archived_at == archived.archived_at  # an upsert never un-archives
    log = await repository.changes_since(tenant, archived.archived_at)
    assert [(c.actor, c.changes) for c in log if c.record_id == str(ids[0])] == [
        (Actor.SYNC, {"deal_stage": FieldChange(old="Lead", new="Closed Won")})
    ]


async def test_failed_bulk_upsert_leaves_the_database_as_it_was(repository: DealRepository, tenant: str) -> None:
    good = [OpportunityCreate(id=uuid4(), name=f"Deal {n}") for n in range(15)]
    # model_construct skips validation, so the database's own CHECK constraint has to catch it.
    bad = OpportunityCreate.model_construct(id=uuid4(), name="Bad", probability=Decimal(5))
    with pytest.raises(Exception, match="probability"):
        await repository.bulk_upsert_opportunities(tenant, [*good, bad], batch_size=5)
    assert await repository.list_opportunities(tenant, OpportunityFilter(archived=None)) == []
    assert await repository.changes_since(tenant, datetime(2000, 1, 1, tzinfo=UTC)) == []


async def test_bulk_upsert_needs_unique_sync_keys(repository: DealRepository, tenant: str) -> None:
    with pytest.raises(ValueError, match="record 1 has no id"):
        await repository.bulk_upsert_opportunities(
            tenant, [OpportunityCreate(id=uuid4(), name="a"), OpportunityCreate(name="b")]
        )
    same = uuid4()
    with pytest.raises(ValueError, match="same id more than once"):
        await repository.bulk_upsert_opportunities(
            tenant, [OpportunityCreate(id=same, name="a"), OpportunityCreate(id=same, name="b")]
        )


async def test_the_change_feed_pages_with_its_cursor(repository: DealRepository, tenant: str) -> None:
    await repository.bulk_upsert_opportunities(tenant, [OpportunityCreate(id=uuid4(), name=f"D{n}") for n in range(7)])
    pages, cursor = [], None
    while (page := await repository.change_feed(tenant, cursor, limit=3)).entries:
        pages.append(page.entries)
        cursor = ChangeCursor.parse(str(page.cursor))  # as a sync engine would persist it
    assert [len(entries) for entries in pages] == [3, 3, 1]
    names = [entry.changes["name"].new for entries in pages for entry in entries]
    assert names == [f"D{n}" for n in range(7)]  # all in one transaction: sequence order
    assert (await repository.change_feed(tenant, cursor)).cursor == cursor  # nothing new: stays put


async def test_a_stretch_of_the_feed_is_read_again_for_some_of_its_records(
    repository: DealRepository, tenant: str
) -> None:
    deals = [OpportunityCreate(id=uuid4(), name=f"D{n}") for n in range(4)]
    before = (await repository.change_feed(tenant)).cursor
    await repository.bulk_upsert_opportunities(tenant, deals)
    for deal in deals:  # each deal's second entry, in a transaction of its own
        assert deal.id is not None
        await repository.update_opportunity(tenant, deal.id, OpportunityUpdate(name=f"{deal.name}, renamed"))
    stretch = await repository.change_feed(tenant, before, limit=6)  # up to the second deal's rename
    [first, second, *_] = [deal.id for deal in deals if deal.id is not None]

    again = await repository.feed_entries_of(tenant, [second, first], before, stretch.cursor)
    assert again == [entry for entry in stretch.entries if entry.record_id in {str(first), str(second)}]
    assert [entry.changes["name"].new for entry in again] == ["D0", "D1", "D0, renamed", "D1, renamed"]
    assert await repository.feed_entries_of(tenant, [], before, stretch.cursor) == []


async def test_the_change_feed_delivers_an_entry_that_commits_after_a_later_one(
    repository: DealRepository, tenant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long bulk upsert holds entry N while the agent commits entry N+1: a reader that saw N+1
    and moved on must still get N once the upsert commits."""
    first = await repository.create_opportunity(tenant, OpportunityCreate(name="one"))
    second = await repository.create_opportunity(tenant, OpportunityCreate(name="two"))
    cursor = (await repository.change_feed(tenant)).cursor

    upsert_written = asyncio.Event()
    release_upsert = asyncio.Event()
    write_batch = DealRepository._upsert_batch

    async def slow_batch(self: DealRepository, *args: object, **kwargs: object) -> object:
        result = await write_batch(self, *args, **kwargs)
        upsert_written.set()
        await release_upsert.wait()  # still inside the bulk upsert's transaction
        return result

    monkeypatch.setattr(DealRepository, "_upsert_batch", slow_batch)
    upsert = asyncio.create_task(
        repository.bulk_upsert_opportunities(tenant, [OpportunityCreate(id=first.id, name="one, from Notion")])
    )
    await upsert_written.wait()
    await repository.update_opportunity(tenant, second.id, OpportunityUpdate(name="two, by the agent"))

    while_open = await repository.change_feed(tenant, cursor)
    assert while_open.entries == []  # the agent's later entry waits for the open transaction
    release_upsert.set()
    await upsert
    after = await repository.change_feed(tenant, while_open.cursor)
    assert [entry.changes["name"].new for entry in after.entries] == ["one, from Notion", "two, by the agent"]
    assert [entry.actor for entry in after.entries] == [Actor.SYNC, Actor.AGENT]

    # A sequence or timestamp cursor would have lost it: the late entry is older on both counts.
    late, agent = after.entries
    assert late.sequence < agent.sequence and late.changed_at < agent.changed_at


def test_a_change_cursor_survives_a_round_trip_through_text() -> None:
    cursor = ChangeCursor(txid=123_456_789_012, sequence=42)
    assert str(cursor) == "123456789012:42" and ChangeCursor.parse(str(cursor)) == cursor
    assert ChangeCursor.parse(str(ChangeCursor())) == ChangeCursor()


async def test_the_log_holds_what_a_read_gives(repository: DealRepository, tenant: str) -> None:
    """Numbers as exact decimal strings (at the column's scale), dates as ISO strings, JSON as JSON:
    an entry's new values are the stored record's, serialised."""
    created = await repository.create_opportunity(
        tenant,
        OpportunityCreate(
            name="Acme",
            estimated_value=Decimal("10.5"),
            probability=Decimal("0.25"),
            close_date=date(2027, 3, 31),
            qualification_snapshot={"budget": "approved", "seats": 40},
            manual_tags=["renewal"],
        ),
    )
    (entry,) = await repository.changes_since(tenant, created.created_at - timedelta(microseconds=1))
    stored = created.model_dump(include=set(OPPORTUNITY_FIELDS), exclude_none=True)
    assert entry.changes == {field: FieldChange(new=to_jsonable_python(value)) for field, value in stored.items()}
    assert entry.changes["estimated_value"].new == "10.50" and entry.changes["probability"].new == "0.250000"


@asynccontextmanager
async def raw_write(database: Database, tenant: str) -> AsyncIterator[AsyncConnection]:
    """A transaction on the application's connection that bypasses the repository entirely."""
    async with database.engine.begin() as connection:
        await connection.execute(text("SELECT set_config('crm.tenant_id', :t, true)"), {"t": tenant})
        yield connection


async def test_a_raw_sql_write_is_logged_by_the_database(
    database: Database, repository: DealRepository, tenant: str
) -> None:
    deal_id = uuid4()
    async with raw_write(database, tenant) as connection:  # no actor set: the agent's own SQL
        await connection.execute(
            text(
                "INSERT INTO crm.opportunities (id, tenant_id, name, deal_stage, estimated_value, close_date, manual_tags)"
                " VALUES (:id, :t, 'Raw', 'Lead', 12.5, '2027-03-31', '[\"a\"]')"
            ),
            {"id": deal_id, "t": tenant},
        )
    async with raw_write(database, tenant) as connection:
        await connection.execute(text("SELECT set_config('crm.actor', 'human', true)"))
        await connection.execute(
            text(
                "UPDATE crm.opportunities SET estimated_value = 13, deal_stage = 'Qualified', name = name WHERE id = :id"
            ),
            {"id": deal_id},
        )
    async with raw_write(database, tenant) as connection:
        await connection.execute(
            text("UPDATE crm.opportunities SET archived_at = now() WHERE id = :id"), {"id": deal_id}
        )

    created, updated, archived = (await repository.change_feed(tenant)).entries
    assert (created.record_id, created.actor, updated.actor, archived.actor) == (
        str(deal_id),
        Actor.AGENT,
        Actor.HUMAN,
        Actor.AGENT,
    )
    assert {field: (c.old, c.new) for field, c in created.changes.items()} == {
        "name": (None, "Raw"),
        "deal_stage": (None, "Lead"),
        "estimated_value": (None, "12.50"),
        "close_date": (None, "2027-03-31"),
        "manual_tags": (None, ["a"]),
    }
    assert {field: (c.old, c.new) for field, c in updated.changes.items()} == {
        "estimated_value": ("12.50", "13.00"),
        "deal_stage": ("Lead", "Qualified"),
    }
    row = await repository.get_opportunity(tenant, deal_id)
    assert set(archived.changes) == {"archived_at"} and archived.changes["archived_at"].old is None
    assert datetime.fromisoformat(str(archived.changes["archived_at"].new)) == row.archived_at
    assert row.updated_at == row.archived_at > row.created_at  # the database moved updated_at


async def test_an_update_that_changes_nothing_logs_nothing_and_keeps_updated_at(
    database: Database, repository: DealRepository, tenant: str
) -> None:
    created = await repository.create_opportunity(tenant, OpportunityCreate(name="Acme", estimated_value=Decimal(5)))
    async with raw_write(database, tenant) as connection:
        await connection.execute(
            text(
                "UPDATE crm.opportunities SET name = 'Acme', estimated_value = 5.0, manual_tags = NULL WHERE id = :id"
            ),
            {"id": created.id},
        )
    assert len((await repository.change_feed(tenant)).entries) == 1  # the create only
    assert await repository.get_opportunity(tenant, created.id) == created


async def test_a_records_key_never_changes(database: Database, repository: DealRepository, tenant: str) -> None:
    """The log follows a record by its key, so a write may not move a record to another id."""
    created = await repository.create_opportunity(tenant, OpportunityCreate(name="Acme"))
    with pytest.raises(DBAPIError, match="tenant_id and id of a opportunity never change"):
        async with raw_write(database, tenant) as connection:
            await connection.execute(text("UPDATE crm.opportunities SET id = :new"), {"new": uuid4()})
    assert await repository.get_opportunity(tenant, created.id) == created


async def test_archiving_is_logged_once_with_its_actor(repository: DealRepository, tenant: str) -> None:
    created = await repository.create_opportunity(tenant, OpportunityCreate(name="Acme"))
    archived = await repository.archive_opportunity(tenant, created.id, actor=Actor.HUMAN)
    assert await repository.archive_opportunity(tenant, created.id) == archived  # a no-op, not logged

    _, entry = (await repository.change_feed(tenant)).entries
    assert (
        entry.actor is Actor.HUMAN
        and entry.changes["archived_at"].old is None
        and set(entry.changes) == {"archived_at"}
    )
    assert datetime.fromisoformat(str(entry.changes["archived_at"].new)) == archived.archived_at
    assert archived.updated_at == archived.archived_at
