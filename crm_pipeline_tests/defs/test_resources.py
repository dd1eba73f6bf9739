"""The resources take what they are not given from the settings when a run starts."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import pytest

from crm_pipeline.defs.assets import notion_pages
from crm_pipeline.defs.resources import NotionResource
from crm_pipeline.settings import get_settings


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    """Settings read anew from the environment this test sets up, and again after it."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_a_notion_token_without_a_database_is_refused_when_the_run_starts(
    monkeypatch: pytest.MonkeyPatch, fresh_settings: None
) -> None:
    NotionResource()  # building the resource reads nothing
    monkeypatch.setenv("CRM_PIPELINE_NOTION_TOKEN", "ntn_real")
    monkeypatch.delenv("CRM_PIPELINE_NOTION_DATABASE_ID", raising=False)
    with pytest.raises(dg.DagsterResourceFunctionError) as caught:
        dg.materialize([notion_pages], resources={"notion": NotionResource()})
    assert "set CRM_PIPELINE_NOTION_DATABASE_ID" in str(caught.value.__cause__)
