"""The adapter methods the sync engine uses beyond the plan's eight, on PostgreSQL and on Notion."""

from __future__ import annotations

from decimal import Decimal
from uuid import uuid4

import pytest

from crm_pipeline.crm import NotionAdapter, PostgresAdapter
from crm_pipeline.crm.errors import RecordGoneError
from crm_pipeline.models import ActivityCreate, OpportunityCreate, OpportunityUpdate
from crm_pipeline.store import DealRepository
from crm_pipeline_tests.crm.conftest import Workspace

pytestmark = pytest.mark.integration


@pytest.fixture
def postgres(repository: DealRepository, tenant: str) -> PostgresAdapter:
    return PostgresAdapter(repository, tenant)


async def test_postgres_reads_changes_from_a_cursor_once_each(postgres: PostgresAdapter) -> None:
    first = await postgres.create_opportunity(OpportunityCreate(name="Acme"))
    batch = await postgres.read_changes(None)
    assert [change.record_id for change in batch.changes] == [first]
    second = await postgres.create_opportunity(OpportunityCreate(name="Globex"))
    after = await postgres.read_changes(batch.cursor)
    assert [change.record_id for change in after.changes] == [second]
    assert (await postgres.read_changes(after.cursor)).changes == []


async def test_postgres_upsert_reports_each_record_and_writes_return_the_record(postgres: PostgresAdapter) -> None:
    key = uuid4()
    [created] = await postgres.upsert_opportunities([OpportunityCreate(id=key, name="Acme")])
    [updated] = await postgres.upsert_opportunities([OpportunityCreate(id=key, name="Acme 2")])
    assert (created.action, updated.action, updated.external_id) == ("created", "updated", str(key))
    written = await postgres.write_opportunity(str(key), OpportunityUpdate(estimated_value=Decimal("5")))
    assert (written.name, written.estimated_value) == ("Acme 2", Decimal("5"))
    assert [r.id for r in await postgres.get_opportunities([str(key), str(uuid4())])] == [key]
    with pytest.raises(RecordGoneError):
        await postgres.write_opportunity(str(uuid4()), OpportunityUpdate(name="nobody"))
    assert (await postgres.archive_opportunity(str(key))).archived_at is not None
    assert (await postgres.restore_opportunity(str(key))).archived_at is None


async def test_notion_write_returns_the_page_as_written_in_one_request(
    notion: NotionAdapter, workspace: Workspace
) -> None:
    key = uuid4()
    page_id = await notion.create_opportunity(OpportunityCreate(id=key, name="Acme"))
    await notion.bot_user_id()  # read once per adapter, as any read in a pass does
    workspace.control.reset_stats()
    written = await notion.write_opportunity(page_id, OpportunityUpdate(deal_stage="Qualified"))
    assert (written.deal_stage, written.sync_key, written.external_id) == ("Qualified", key, page_id)
    assert workspace.control.stats()["total"] == 1


async def test_notion_gone_pages_raise_one_error_and_restore_links_and_activities_work(
    notion: NotionAdapter, workspace: Workspace
) -> None:
    with pytest.raises(RecordGoneError):
        await notion.write_opportunity(str(uuid4()), OpportunityUpdate(name="nobody"))
    key = uuid4()
    page_id = await notion.create_opportunity(OpportunityCreate(id=key, name="Acme"))
    await notion.archive_opportunity(page_id)
    with pytest.raises(RecordGoneError):
        await notion.write_opportunity(page_id, OpportunityUpdate(name="too late"))
    trashed = await notion.read_trashed(None)
    assert [(c.record_id, c.changes["archived_at"].new is not None) for c in trashed.changes] == [(page_id, True)]
    assert not (await notion.restore_opportunity(page_id)).in_trash
    human = workspace.control.human_create_page(
        {
            "parent": {"data_source_id": workspace.data_source_id},
            "properties": {
                "Deal Name": {"title": [{"text": {"content": "Initech"}}]},
                "Stage": {"select": {"name": "Lead"}},
            },
        }
    )
    new_key = uuid4()
    await notion.link_opportunity(human["id"], new_key)
    assert (await notion.get_opportunity(human["id"])).sync_key == new_key  # type: ignore[union-attr]
    activity = ActivityCreate(id=uuid4(), opportunity_id=key, subject="Call")
    assert await notion.find_activity(activity) is None
    block_id = await notion.create_activity(activity)
    assert await notion.find_activity(activity) == block_id
