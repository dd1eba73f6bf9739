"""Demo data, so a fresh checkout has something to sync: deals the agent wrote to PostgreSQL, and a
Notion "Deals" database where the sales team already keeps a few of its own, with the columns a
real team adds around the synced ones (a Status, an Owner, a formula, an auto-numbered ID). Ids
are stable, so seeding twice is a no-op."""

from __future__ import annotations

import random
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import NAMESPACE_URL, uuid5

from crm_pipeline.crm.field_mapping import SYNCED_PROPERTY_MAP, notion_properties_schema
from crm_pipeline.models import (
    DEAL_STAGES,
    MAX_LIST_LIMIT,
    Actor,
    OpportunityCreate,
    OpportunityFilter,
    OpportunityUpdate,
)
from crm_pipeline.sandbox import DEFAULT_TOKEN
from crm_pipeline.store import BulkUpsertResult, DealRepository

_DEALS: tuple[tuple[str, str, str, str, str, str], ...] = (
    # name, stage, value, close date, product, source
    ("Acme Corp platform renewal", "Negotiation", "125000", "2027-01-31", "Platform", "renewal"),
    ("Globex analytics pilot", "Qualified", "42000", "2027-02-15", "Analytics", "inbound"),
    ("Initech seat expansion", "Proposal", "18500", "2026-12-20", "Platform", "expansion"),
    ("Umbrella security add-on", "Lead", "9900", "2027-03-01", "Security", "outbound"),
    ("Stark Industries enterprise deal", "Qualified", "310000", "2027-04-30", "Platform", "referral"),
    ("Wayne Enterprises data migration", "Closed Won", "56000", "2026-11-30", "Services", "inbound"),
    ("Hooli analytics upgrade", "Closed Lost", "24000", "2026-10-31", "Analytics", "outbound"),
    ("Soylent onboarding package", "Proposal", "12000", "2027-01-15", "Services", "partner"),
)


def demo_opportunities() -> list[OpportunityCreate]:
    return [
        OpportunityCreate(
            id=uuid5(NAMESPACE_URL, f"crm-pipeline-demo/{name}"),
            name=name,
            deal_stage=stage,
            estimated_value=Decimal(value),
            close_date=date.fromisoformat(close),
            product_line=product,
            source=source,
            probability=Decimal("0.5"),
            detection_confidence=Decimal("0.8"),
            qualification_snapshot={"budget": "unknown", "timeline": close},
        )
        for name, stage, value, close, product, source in _DEALS
    ]


async def seed_demo(repository: DealRepository, tenant_id: str) -> BulkUpsertResult:
    await repository.register_tenant(tenant_id, name="Demo tenant")
    return await repository.bulk_upsert_opportunities(tenant_id, demo_opportunities(), actor=Actor.AGENT)


# The ids of the Deals database in crm_pipeline/sandbox/deals_seed.json: code written against the
# sandbox (the README's example, the Notion resource's default) finds the Deals database in both.
DEMO_NOTION_DATABASE_ID = "2a1b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
DEMO_NOTION_DATA_SOURCE_ID = "3b2c4d5e-6f70-4b8c-9dae-1f203a4b5c6d"


def sandbox_notion(sandbox_port: int, database_id: str | None, base_url: str | None) -> tuple[str, str, str]:
    """Token, database id and base URL of a Notion connection that has no token: the sandbox that
    `crm-pipeline dev` serves on ``sandbox_port``, and its demo Deals database unless another is named."""
    return DEFAULT_TOKEN, database_id or DEMO_NOTION_DATABASE_ID, base_url or f"http://127.0.0.1:{sandbox_port}"


_SALES_TEAM = (
    {"name": "Maya Lindqvist", "email": "maya@sales.example"},
    {"name": "Tom Okoro", "email": "tom@sales.example"},
)

# Columns the team keeps beside the synced ones; the sync leaves them alone. The sandbox does not
# evaluate formulas: the team's own deals carry a result, deals the sync creates show none.
TEAM_COLUMNS: dict[str, Any] = {
    "Status": {
        "status": {
            "options": [
                {"name": "Not started", "color": "default"},
                {"name": "Waiting on customer", "color": "yellow"},
                {"name": "In progress", "color": "blue"},
                {"name": "Done", "color": "green"},
            ],
            "groups": [
                {"name": "To-do", "color": "gray", "options": ["Not started"]},
                {"name": "In progress", "color": "blue", "options": ["Waiting on customer", "In progress"]},
                {"name": "Complete", "color": "green", "options": ["Done"]},
            ],
        }
    },
    "Owner": {"people": {}},
    "Weighted value": {"formula": {"expression": 'prop("Value") * prop("Probability")'}},
    "Follow-up": {"checkbox": {}},
    "Deal ID": {"unique_id": {"prefix": "DEAL"}},
    "Last edited by": {"last_edited_by": {}},
}

_HUMAN_DEALS: tuple[dict[str, Any], ...] = (
    {
        "Deal Name": "Vandelay Industries import deal",
        "Stage": "Qualified",
        "Value": 27500,
        "Probability": 0.4,
        "Close Date": "2027-02-28",
        "Product": "Platform",
        "Source": "event",
        "Contact": "Art Vandelay",
        "Email": "art@vandelay.example",
        "Notes": "Met at the trade fair; wants a call after the holidays.",
        "Status": "Waiting on customer",
        "Owner": ["Maya Lindqvist"],
        "Weighted value": 11000,
        "Follow-up": True,
    },
    {
        "Deal Name": "Pied Piper compression licence",
        "Stage": "Lead",
        "Value": 8000,
        "Product": "Analytics",
        "Source": "referral",
        "Contact": "Richard Hendricks",
        "Status": "Not started",
        "Owner": ["Tom Okoro"],
    },
)


def demo_notion_seed() -> dict[str, Any]:
    """A sandbox seed document: the Deals database the property map expects plus the team's own
    columns, with the pages the sales team created there by hand (no sync key yet)."""
    return {
        "users": list(_SALES_TEAM),
        "databases": [
            {
                "title": "Deals",
                "id": DEMO_NOTION_DATABASE_ID,
                "data_source_id": DEMO_NOTION_DATA_SOURCE_ID,
                "properties": {**notion_properties_schema(SYNCED_PROPERTY_MAP), **TEAM_COLUMNS},
                "pages": list(_HUMAN_DEALS),
            }
        ],
    }


# --- the agent at work: what `crm-pipeline dev` keeps doing in the demo tenant ---------------------

_PROSPECTS = ("Vehement Capital", "Massive Dynamic", "Tyrell Corp", "Cyberdyne", "Oscorp", "Dunder Mifflin")
_PRODUCTS = ("Platform", "Analytics", "Security", "Services")
_OPEN_STAGES = DEAL_STAGES[:4]  # Lead … Negotiation: the stages a live deal moves through


async def agent_step(repository: DealRepository, tenant_id: str, rng: random.Random) -> str:
    """One thing the AI sales agent does, as it would between calls: usually it moves an open
    deal to its next stage or revalues it, now and then it finds a new one. Returns what it did."""
    open_deals = await repository.list_opportunities(
        tenant_id, OpportunityFilter(limit=MAX_LIST_LIMIT, deal_stage=list(_OPEN_STAGES))
    )
    if not open_deals or rng.random() < 0.25:
        name = f"{rng.choice(_PROSPECTS)} {rng.choice(_PRODUCTS).lower()} deal #{rng.randrange(100, 1000)}"
        value = Decimal(rng.randrange(5, 200) * 500)
        await repository.create_opportunity(
            tenant_id, OpportunityCreate(name=name, deal_stage="Lead", estimated_value=value), actor=Actor.AGENT
        )
        return f"found {name!r}"
    deal = rng.choice(open_deals)
    if rng.random() < 0.5:
        stage = DEAL_STAGES[DEAL_STAGES.index(deal.deal_stage) + 1]
        await repository.update_opportunity(tenant_id, deal.id, OpportunityUpdate(deal_stage=stage), actor=Actor.AGENT)
        return f"moved {deal.name!r} to {stage}"
    value = Decimal(rng.randrange(5, 200) * 500)
    await repository.update_opportunity(tenant_id, deal.id, OpportunityUpdate(estimated_value=value), actor=Actor.AGENT)
    return f"revalued {deal.name!r} at {value}"
