"""The Notion side of the code location, through the real notion-client against the sandbox."""

from __future__ import annotations

import dagster as dg
import pytest

from crm_pipeline.defs.assets import notion_pages
from crm_pipeline.defs.checks import notion_pages_map_cleanly
from crm_pipeline.defs.resources import NotionResource
from crm_pipeline.demo import DEMO_NOTION_DATA_SOURCE_ID, DEMO_NOTION_DATABASE_ID, demo_notion_seed
from crm_pipeline.sandbox import DEFAULT_TOKEN, RunningSandbox, SandboxControl


@pytest.fixture
def demo_workspace(sandbox_server: RunningSandbox, control: SandboxControl) -> NotionResource:
    control.reset()
    control.seed(demo_notion_seed())
    return NotionResource(token=DEFAULT_TOKEN, database_id=DEMO_NOTION_DATABASE_ID, base_url=sandbox_server.base_url)


def _materialize(notion: NotionResource) -> dg.ExecuteInProcessResult:
    return dg.materialize([notion_pages, notion_pages_map_cleanly], resources={"notion": notion})


def test_notion_pages_reads_the_demo_database_and_the_check_passes(demo_workspace: NotionResource) -> None:
    result = _materialize(demo_workspace)
    assert result.success
    metadata = result.asset_materializations_for_node("notion_pages")[0].metadata
    assert metadata["row_count"].value == 2
    assert metadata["created_in_notion"].value == 2
    assert metadata["linked_to_postgres"].value == 0
    assert metadata["by_stage"].value == {"Qualified": 1, "Lead": 1}
    assert [evaluation.passed for evaluation in result.get_asset_check_evaluations()] == [True]


def test_the_check_names_a_page_whose_sync_key_a_human_broke(
    demo_workspace: NotionResource, control: SandboxControl
) -> None:
    page = control.all_pages(DEMO_NOTION_DATA_SOURCE_ID)[0]
    control.human_update_page(
        page["id"], {"properties": {"Sync Key": {"rich_text": [{"text": {"content": "not-a-uuid"}}]}}}
    )
    result = _materialize(demo_workspace)
    metadata = result.asset_materializations_for_node("notion_pages")[0].metadata
    assert metadata["row_count"].value == 1 and metadata["unreadable_pages"].value == 1
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.passed is False
    (problem,) = evaluation.metadata["problems"].value
    assert page["id"] in problem and "Sync Key" in problem and "not-a-uuid" in problem
