"""NotionAdapter against a database a real sales team keeps: unmapped columns of every type, a
second data source, columns changed under it, and thousands of pages imported in one minute."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from notion_client import AsyncClient

from crm_pipeline.crm.errors import PropertySchemaError
from crm_pipeline.crm.notion import DataSourceConfigError, QueryWindowError
from crm_pipeline.crm.notion.properties import notion_properties_schema
from crm_pipeline.demo import DEMO_NOTION_DATA_SOURCE_ID, DEMO_NOTION_DATABASE_ID, demo_notion_seed, demo_opportunities
from crm_pipeline.models import OpportunityCreate, OpportunityFilter, OpportunityUpdate
from crm_pipeline.sandbox import DEFAULT_TOKEN, SandboxControl
from crm_pipeline_tests.crm.conftest import Workspace
from crm_pipeline_tests.notion_schemas import validate
from crm_pipeline_tests.sandbox.realistic import ARCHIVE_DS, COMPANIES, DEALS_DS, TEAM_COLUMNS

pytestmark = pytest.mark.integration

IMPORTED_AT = datetime(2026, 11, 30, 9, 0, 5, tzinfo=UTC)
UNMAPPED: dict[str, Any] = {"Status": {"status": {}}, **TEAM_COLUMNS}  # what a team adds around the synced columns
UNMAPPED_VALUES: dict[str, Any] = {
    "Status": "In progress", "Tags": ["VIP", "EMEA"], "Owner": ["Ana Ruiz"], "Hot": True,
    "Website": "https://acme.example", "Phone": "+44 20 7946 0000", "Contract": ["https://files.example/msa.pdf"],
    "Notes": "Call after the board meeting", "Company": ["Acme"], "Weighted": 7200,
}  # fmt: skip


def realistic_seed(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "users": [{"name": "Ana Ruiz", "email": "ana@sales.example"}],
        "databases": [
            COMPANIES,
            {
                "title": "Sales",
                "data_sources": [
                    {
                        "title": "Deals",
                        "id": DEALS_DS,
                        "properties": {**notion_properties_schema(), **UNMAPPED},
                        "pages": rows,
                    },
                    {"title": "Archive", "id": ARCHIVE_DS, "properties": {"Deal Name": {"title": {}}}},
                ],
            },
        ],
    }


def seeded(workspace: Workspace, rows: list[dict[str, Any]]) -> Workspace:
    """The workspace with the realistic database, seeded with ``rows`` at IMPORTED_AT."""
    workspace.control.set_clock(IMPORTED_AT)
    sales = workspace.control.seed(realistic_seed(rows))[1]
    return dataclasses.replace(workspace, database_id=sales["database_id"], data_source_id=DEALS_DS)


@contextlib.asynccontextmanager
async def _sandbox_notion(workspace: Workspace) -> AsyncIterator[AsyncClient]:
    """The SDK on its own, for what a person does in Notion (changing the columns)."""
    client = AsyncClient(auth=DEFAULT_TOKEN, base_url=workspace.base_url, logger=logging.getLogger(__name__))
    try:
        yield client
    finally:
        await client.aclose()


def unmapped_of(control: SandboxControl, page_id: str) -> dict[str, Any]:
    page = next(p for p in control.all_pages(DEALS_DS) if p["id"] == page_id)
    return {name: page["properties"][name] for name in UNMAPPED if name not in ("Edited", "Edited by")}


async def test_unmapped_properties_of_every_type_are_ignored_on_read_and_left_alone_on_write(
    workspace: Workspace,
) -> None:
    workspace = seeded(
        workspace, [{"Deal Name": "Acme renewal", "Stage": "Qualified", "Value": 12000, **UNMAPPED_VALUES}]
    )
    notion = workspace.adapter(data_source_id=DEALS_DS)
    try:
        [deal] = await notion.list_opportunities(OpportunityFilter())
        assert (deal.name, deal.deal_stage, deal.estimated_value) == ("Acme renewal", "Qualified", 12000)
        before = unmapped_of(workspace.control, deal.external_id)
        await notion.update_opportunity(
            deal.external_id, OpportunityUpdate(name="Acme renewal (3 years)", estimated_value=36000)
        )
        assert unmapped_of(workspace.control, deal.external_id) == before
        assert before["Tags"]["multi_select"][0]["name"] == "VIP" and before["Company"]["relation"]
        updated = await notion.get_opportunity(deal.external_id)
        assert updated is not None and updated.name == "Acme renewal (3 years)"
        async with _sandbox_notion(workspace) as raw:
            schema = (await raw.data_sources.retrieve(DEALS_DS))["properties"]
        mapped_ids = {schema["Deal Name"]["id"], schema["Value"]["id"]}
        patches = [body for method, path, body in workspace.sent if method == "PATCH" and path.startswith("/v1/pages/")]
        assert patches and all(set(body["properties"]) <= mapped_ids for body in patches)
    finally:
        await notion.aclose()


async def test_several_data_sources_and_none_chosen_lists_them(workspace: Workspace) -> None:
    workspace = seeded(workspace, [])
    notion = workspace.adapter()
    try:
        with pytest.raises(DataSourceConfigError) as raised:
            await notion.list_opportunities(OpportunityFilter())
        assert f"{DEALS_DS} (Deals)" in str(raised.value) and f"{ARCHIVE_DS} (Archive)" in str(raised.value)
    finally:
        await notion.aclose()


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"Value": {"rich_text": {}}}, "'estimated_value'.*'Value'.*'rich_text', expected 'number'"),
        ({"Stage": {"status": {}}}, "'deal_stage'.*'Stage'.*'status', expected 'select'"),
        ({"Email": None}, "'contact_email'.*'Email'"),
    ],
)
async def test_a_mapped_column_retyped_or_deleted_is_named_before_any_write(
    workspace: Workspace, change: dict[str, Any], named: str
) -> None:
    workspace = seeded(workspace, [{"Deal Name": "Acme renewal", "Stage": "Qualified"}])
    first = workspace.adapter(data_source_id=DEALS_DS)
    [deal] = await first.list_opportunities(OpportunityFilter())
    await first.aclose()
    notion = workspace.adapter(data_source_id=DEALS_DS)
    async with _sandbox_notion(workspace) as raw:
        await raw.data_sources.update(DEALS_DS, properties=change)
    workspace.sent.clear()
    try:
        with pytest.raises(PropertySchemaError, match=named):
            await notion.update_opportunity(deal.external_id, OpportunityUpdate(name="renamed"))
        assert not [path for method, path, _ in workspace.sent if method == "PATCH" or path == "/v1/pages"]
    finally:
        await notion.aclose()


@pytest.mark.long
async def test_an_import_of_12000_pages_in_one_minute_is_read_completely(workspace: Workspace) -> None:
    """12,000 pages share one created_time minute, past the 10,000-row cap of a query: the minute
    is read in keyset windows over the Deal ID (unique_id) column."""
    rows = [{"Deal Name": f"Imported {i:05}", "Stage": "Lead"} for i in range(12_000)]
    workspace = seeded(workspace, rows)
    notion = workspace.adapter(data_source_id=DEALS_DS)
    try:
        listed = await notion.list_opportunities(OpportunityFilter(limit=10_000, offset=2_000, order_by="name"))
        assert [deal.name for deal in listed] == [f"Imported {i:05}" for i in range(2_000, 12_000)]
        changes = await notion.get_changes_since(IMPORTED_AT - timedelta(hours=1))
        assert len({change.record_id for change in changes}) == 12_000
    finally:
        await notion.aclose()
    queries = [body for method, path, body in workspace.sent if path.endswith("/query")]
    for body in queries:
        validate("QueryDataSourceBodyParameters", body)
    assert any("unique_id" in str(body.get("filter")) for body in queries)  # the minute was split by Deal ID


async def test_a_full_minute_without_a_unique_id_names_the_remedy(workspace: Workspace) -> None:
    workspace.control.configure(result_cap=50)
    workspace.control.set_clock(IMPORTED_AT)
    rows = [{"Deal Name": f"Imported {i}", "Stage": "Lead"} for i in range(60)]
    [deals] = workspace.control.seed(
        {"databases": [{"title": "Plain", "properties": notion_properties_schema(), "pages": rows}]}
    )
    plain = dataclasses.replace(workspace, database_id=deals["database_id"], data_source_id=deals["data_source_id"])
    notion = plain.adapter()
    try:
        with pytest.raises(QueryWindowError, match="add a unique_id property"):
            await notion.list_opportunities(OpportunityFilter())
    finally:
        await notion.aclose()
    async with _sandbox_notion(workspace) as raw:
        await raw.data_sources.update(deals["data_source_id"], properties={"No": {"unique_id": {"prefix": None}}})
    numbered = plain.adapter()
    try:
        assert len(await numbered.list_opportunities(OpportunityFilter(limit=1000))) == 60
    finally:
        await numbered.aclose()


async def test_a_windowed_read_keeps_a_compound_filter_within_notions_nesting_limit(workspace: Workspace) -> None:
    """Stages (an ``or``) and updated_since make an ``and``; a created_time window must join that
    ``and`` rather than nest it a third level deep, which Notion refuses."""
    workspace.control.configure(result_cap=5)
    workspace.control.set_clock(IMPORTED_AT)
    notion = workspace.adapter()
    try:
        for i in range(8):
            await notion.create_opportunity(deal_named(f"deal {i}", "Lead" if i % 2 else "Qualified"))
            workspace.control.advance_clock(60)
        stages = OpportunityFilter(deal_stage=["Lead", "Qualified"], updated_since=IMPORTED_AT, limit=100)
        assert len(await notion.list_opportunities(stages)) == 8
    finally:
        await notion.aclose()
    for _, path, body in workspace.sent:
        if path.endswith("/query"):
            validate("QueryDataSourceBodyParameters", body)


def deal_named(name: str, stage: str) -> OpportunityCreate:
    return OpportunityCreate(id=uuid4(), name=name, deal_stage=stage)


async def test_the_adapter_works_against_the_demo_database(workspace: Workspace) -> None:
    """`crm-pipeline dev`'s Deals database, with the team's own Status, Owner, formula and ID."""
    seeded = demo_notion_seed()["databases"][0]["pages"]
    workspace.control.seed(demo_notion_seed())
    demo = dataclasses.replace(
        workspace, database_id=DEMO_NOTION_DATABASE_ID, data_source_id=DEMO_NOTION_DATA_SOURCE_ID
    )
    notion = demo.adapter()
    try:
        team = await notion.list_opportunities(OpportunityFilter())
        assert {deal.name for deal in team} == {row["Deal Name"] for row in seeded}
        outcomes = await notion.upsert_opportunities(demo_opportunities())
        # The agent's deals the team keeps there already (keyed by the deal) are updated, not duplicated.
        keyed = {row["Sync Key"] for row in seeded if "Sync Key" in row}
        assert len(keyed) == 6
        assert [outcome.action for outcome in outcomes] == [
            "updated" if outcome.record_id in keyed else "created" for outcome in outcomes
        ]
        vandelay = next(deal for deal in team if deal.name.startswith("Vandelay"))
        await notion.update_opportunity(vandelay.external_id, OpportunityUpdate(deal_stage="Proposal"))
        assert len(await notion.list_opportunities(OpportunityFilter())) == len(seeded) + len(outcomes) - len(keyed)
    finally:
        await notion.aclose()
    pages = {
        "".join(t["plain_text"] for t in page["properties"]["Deal Name"]["title"]): page["properties"]
        for page in workspace.control.all_pages(DEMO_NOTION_DATA_SOURCE_ID)
    }
    kept = pages["Vandelay Industries import deal"]
    assert kept["Stage"]["select"]["name"] == "Proposal"
    assert kept["Status"]["status"]["name"] == "Waiting on customer"
    assert [person["name"] for person in kept["Owner"]["people"]] == ["Maya Lindqvist"]
    assert kept["Weighted value"]["formula"] == {"type": "number", "number": 11000}
    assert kept["Follow-up"]["checkbox"] is True
    numbers = sorted(properties["Deal ID"]["unique_id"]["number"] for properties in pages.values())
    assert numbers == list(range(1, len(pages) + 1))  # every page numbered, the synced ones too
