"""`crm-pipeline notion-init`: a database created for the mapping is one the adapter uses; a
drifted one is refused with the property named."""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import Iterator
from decimal import Decimal
from uuid import uuid4

import pytest
from notion_client import AsyncClient

from crm_pipeline.cli import main
from crm_pipeline.crm import NotionAdapter
from crm_pipeline.crm.notion.properties import SYNCED_PROPERTY_MAP
from crm_pipeline.models import OpportunityCreate
from crm_pipeline.sandbox import DEFAULT_TOKEN, RunningSandbox, SandboxControl
from crm_pipeline.settings import get_settings
from crm_pipeline.sync.notion_init import DEAL_ID

pytestmark = pytest.mark.integration


@pytest.fixture
def configured(
    sandbox_server: RunningSandbox, control: SandboxControl, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """The settings of a real deployment (a token and a base URL), pointed at an empty sandbox."""
    control.reset()
    monkeypatch.setenv("CRM_PIPELINE_NOTION_TOKEN", DEFAULT_TOKEN)
    monkeypatch.setenv("CRM_PIPELINE_NOTION_BASE_URL", sandbox_server.base_url)
    monkeypatch.delenv("CRM_PIPELINE_NOTION_DATABASE_ID", raising=False)
    monkeypatch.delenv("CRM_PIPELINE_NOTION_DATA_SOURCE_ID", raising=False)
    get_settings.cache_clear()
    yield sandbox_server.base_url
    get_settings.cache_clear()


def notion_init(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["notion-init", *args])
    out, err = capsys.readouterr()
    return code, out, err


def created_ids(capsys: pytest.CaptureFixture[str]) -> tuple[str, str, str]:
    """Create the database under a fresh page; its ids and everything printed."""
    code, out, err = notion_init(capsys, "--parent-page", str(uuid4()), "--tenant", "acme")
    assert (code, err) == (0, "")
    assert DEFAULT_TOKEN not in out
    lines = dict(line.strip().split("=", 1) for line in out.splitlines() if line.strip().startswith("CRM_PIPELINE_"))
    return lines["CRM_PIPELINE_NOTION_DATABASE_ID"], lines["CRM_PIPELINE_NOTION_DATA_SOURCE_ID"], out


def test_notion_init_creates_a_database_that_verifies_and_the_adapter_reads_and_writes(
    configured: str, capsys: pytest.CaptureFixture[str]
) -> None:
    database_id, data_source_id, out = created_ids(capsys)
    entry = tomllib.loads(out.split("tenants.toml:\n", 1)[1])["tenant"][0]
    assert entry == {
        "tenant_id": "acme",
        "connector": "notion",
        "database_id": database_id,
        "data_source_id": data_source_id,
        "token_env": "CRM_PIPELINE_NOTION_TOKEN",
        "base_url": configured,
        "active": True,
    }

    code, out, err = notion_init(capsys, "--verify", "--database-id", database_id)
    assert (code, err) == (0, "")
    assert f"CRM_PIPELINE_NOTION_DATA_SOURCE_ID={data_source_id}" in out

    async def round_trip() -> None:
        adapter = NotionAdapter(DEFAULT_TOKEN, database_id, base_url=configured, property_map=SYNCED_PROPERTY_MAP)
        try:
            created = OpportunityCreate(name="Initech renewal", deal_stage="Proposal", estimated_value=Decimal(1200))
            page_id = await adapter.create_opportunity(created)
            read = await adapter.get_opportunity(page_id)
            assert read is not None
            assert (read.name, read.deal_stage, read.estimated_value) == ("Initech renewal", "Proposal", Decimal(1200))
            source = await adapter.api.retrieve_data_source(data_source_id)
            assert source["properties"][DEAL_ID]["type"] == "unique_id"
            assert adapter.data_source_id == data_source_id
        finally:
            await adapter.aclose()

    asyncio.run(round_trip())


def test_notion_init_verify_names_a_retyped_and_a_missing_property(
    configured: str, capsys: pytest.CaptureFixture[str]
) -> None:
    database_id, data_source_id, _ = created_ids(capsys)

    async def drift() -> None:
        async with AsyncClient(auth=DEFAULT_TOKEN, base_url=configured) as client:
            await client.data_sources.update(data_source_id, properties={"Value": {"rich_text": {}}, "Sync Key": None})

    asyncio.run(drift())
    code, out, err = notion_init(capsys, "--verify", "--database-id", database_id)
    assert (code, out) == (2, "")
    assert "field 'estimated_value' (property 'Value'): property is of type 'rich_text', expected 'number'" in err
    assert "field 'sync_key' (property 'Sync Key'): no property with this name in the data source" in err
    assert "Stage" not in err  # only what does not fit is named


def test_notion_init_verify_refuses_a_database_it_cannot_read(
    configured: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = notion_init(capsys, "--verify", "--database-id", str(uuid4()))
    assert (code, out) == (2, "")
    assert err.startswith("crm-pipeline notion-init: ")
    assert DEFAULT_TOKEN not in err
