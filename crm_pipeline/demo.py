"""Demo data, so a fresh checkout has something to sync, on three tenants: deals the agent wrote to
PostgreSQL; a Notion "Deals" database where the sales team already keeps deals of its own, with
the columns a real team adds around the synced ones (a Status, an Owner, a formula, an
auto-numbered ID); a local HubSpot where a second team does, and a local Salesforce where a third
does. Some deals are on both sides already,
with differing values, so the first pass decides conflicts under every ownership rule. The deals
themselves are data (demo_deals.toml). Ids are stable, so seeding twice is a no-op."""

from __future__ import annotations

import random
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any
from uuid import NAMESPACE_URL, uuid5

from crm_pipeline.crm.adapter import CRMAdapter
from crm_pipeline.crm.hubspot import HUBSPOT_PROPERTY_MAP, HubSpotAdapter
from crm_pipeline.crm.notion.properties import SYNC_KEY_PROPERTY, SYNCED_PROPERTY_MAP, notion_properties_schema
from crm_pipeline.crm.salesforce import SALESFORCE_FIELD_MAP, RateLimit, SalesforceAdapter
from crm_pipeline.emulation.control_client import ControlClient
from crm_pipeline.hubspot_sandbox import DEFAULT_TOKEN as HUBSPOT_SANDBOX_TOKEN
from crm_pipeline.hubspot_sandbox import HubSpotControl
from crm_pipeline.models import (
    DEAL_STAGES,
    MAX_LIST_LIMIT,
    Actor,
    OpportunityCreate,
    OpportunityFilter,
    OpportunityUpdate,
)
from crm_pipeline.salesforce_sandbox import DEFAULT_TOKEN as SALESFORCE_SANDBOX_TOKEN
from crm_pipeline.salesforce_sandbox import INTEGRATION_USERNAME, SalesforceControl
from crm_pipeline.sandbox import SandboxControl
from crm_pipeline.store import BulkUpsertResult, DealRepository
from crm_pipeline.tenants.open import DEMO_NOTION_DATA_SOURCE_ID as DEMO_NOTION_DATA_SOURCE_ID
from crm_pipeline.tenants.open import DEMO_NOTION_DATABASE_ID as DEMO_NOTION_DATABASE_ID

DEMO_TENANT = "demo"
"""The tenant whose deals the sales team works on in Notion (the settings' default tenant)."""
HUBSPOT_DEMO_TENANT = "demo-hubspot"
"""The second demo tenant: another team, on HubSpot (the local HubSpot `crm-pipeline dev` serves)."""
SALESFORCE_DEMO_TENANT = "demo-salesforce"
"""The third demo tenant: a third team, on Salesforce (the local Salesforce `crm-pipeline dev` serves)."""
TEAM_EDITED_AGO = timedelta(days=1)
"""How long before the demo starts the team last edited its CRM: the agent's writes are newer, so
a shared field both sides hold differently goes to the agent by last write wins."""
_TENANT_NAMES = {
    DEMO_TENANT: "Demo tenant",
    HUBSPOT_DEMO_TENANT: "Demo tenant on HubSpot",
    SALESFORCE_DEMO_TENANT: "Demo tenant on Salesforce",
}
_DEFAULT_PROBABILITY = "0.5"
_IN_CRM = ("in_notion", "in_hubspot", "in_salesforce")
"""The tables of an agent row naming what the team's CRM holds otherwise."""


@cache
def _deals() -> dict[str, Any]:
    """demo_deals.toml: per tenant, the agent's deals and the team's (the file says how to read it)."""
    return tomllib.loads((resources.files("crm_pipeline") / "demo_deals.toml").read_text(encoding="utf-8"))


def _opportunity(row: Mapping[str, Any], **changes: Any) -> OpportunityCreate:
    fields = {name: value for name, value in row.items() if name not in _IN_CRM}
    return OpportunityCreate.model_validate(
        {
            "id": uuid5(NAMESPACE_URL, f"crm-pipeline-demo/{row['name']}"),
            "probability": _DEFAULT_PROBABILITY,
            "detection_confidence": "0.8",
            "qualification_snapshot": {"budget": "unknown", "timeline": row.get("close_date")},
            **fields,
            **changes,
        }
    )


def demo_opportunities(tenant_id: str = DEMO_TENANT) -> list[OpportunityCreate]:
    """The deals the agent wrote for a demo tenant."""
    return [_opportunity(row) for row in _deals()[tenant_id]["agent"]]


def _already_in_crm(tenant_id: str, side: str) -> list[OpportunityCreate]:
    """The agent's deals the team's CRM already holds (keyed by the deal), as the CRM holds them."""
    return [_opportunity(row, **row[side]) for row in _deals()[tenant_id]["agent"] if side in row]


async def seed_demo(repository: DealRepository, tenant_id: str, demo_tenant: str = DEMO_TENANT) -> BulkUpsertResult:
    """Register ``tenant_id`` and write the agent's deals of ``demo_tenant`` it lacks: a deal
    seeded before keeps what the sync and the agent made of it since (its counts: unchanged)."""
    await repository.register_tenant(tenant_id, name=_TENANT_NAMES[demo_tenant])
    deals = demo_opportunities(demo_tenant)
    present = {deal.id for deal in await repository.get_opportunities(tenant_id, [d.id for d in deals if d.id])}
    missing = [deal for deal in deals if deal.id not in present]
    created = await repository.bulk_upsert_opportunities(tenant_id, missing, actor=Actor.AGENT)
    return created + BulkUpsertResult(unchanged=len(present))


@dataclass(frozen=True)
class _TeamCRM:
    """A demo team's local CRM as seeding sees it: the connector writes there, its control acts as
    the team's people (edits in the UI, stamped by the local CRM's clock)."""

    tenant_id: str
    adapter: CRMAdapter
    control: ControlClient
    side: str
    """The agent rows' table of the values the team's people changed (``in_hubspot``)."""
    names: Mapping[str, str]
    """Deal field -> the CRM's field."""
    held: Callable[[], dict[str, dict[str, Any]]]
    """Every record's fields, by its id."""
    edit: Callable[[str, dict[str, Any]], object]
    """A person edits a record's fields."""
    create: Callable[[dict[str, Any]], object]
    """A person creates a record with these fields."""


async def _as_the_team_left_it(crm: _TeamCRM) -> None:
    """Seed the team's CRM as it was left ``TEAM_EDITED_AGO``: the agent's deals the connector
    imported (keyed, through the adapter), some fields of which its people then changed in the
    CRM's UI, and the deals its people created there.

    The changed fields must be a person's edits in the field history: a value the sync itself
    wrote is no external change (docs/sync-rules.md, *Per-field editors*). Their values as the CRM
    holds them are read back from a first upsert of the edited deals, then the deals are imported."""
    tenant = _deals()[crm.tenant_id]
    keyed = [row for row in tenant["agent"] if crm.side in row]
    crm.control.set_clock(datetime.now(UTC) - TEAM_EDITED_AGO)
    try:
        as_edited = await _upsert(crm.adapter, [_opportunity(row, **row[crm.side]) for row in keyed])
        held = crm.held()
        edited = {
            deal_id: {name: held[external_id].get(name) for name in (crm.names[field] for field in row[crm.side])}
            for row, (deal_id, external_id) in zip(keyed, as_edited.items(), strict=True)
        }
        as_imported = await _upsert(crm.adapter, [_opportunity(row) for row in keyed])
        crm.control.advance_clock(60)
        for deal_id, fields in edited.items():
            crm.edit(as_imported[deal_id], fields)
        for fields in tenant["team"]:
            crm.create(fields)
    finally:
        await crm.adapter.aclose()
        crm.control.real_clock()


async def seed_demo_hubspot(base_url: str) -> None:
    """Seed a local HubSpot with the demo-hubspot team's deals as it left them ``TEAM_EDITED_AGO``."""
    with HubSpotControl(base_url) as control:
        await _as_the_team_left_it(
            _TeamCRM(
                HUBSPOT_DEMO_TENANT,
                HubSpotAdapter(HUBSPOT_SANDBOX_TOKEN, base_url=base_url, tenant_id=HUBSPOT_DEMO_TENANT),
                control,
                "in_hubspot",
                {field: spec.name for field, spec in HUBSPOT_PROPERTY_MAP.items()},
                held=lambda: {record["id"]: record["properties"] for record in control.all_records("deals")},
                edit=lambda deal, fields: control.ui_edit("deals", deal, {n: v or "" for n, v in fields.items()}),
                create=lambda fields: control.ui_create("deals", fields),
            )
        )


def salesforce_custom_fields() -> list[dict[str, str]]:
    """The custom Opportunity fields the Salesforce adapter maps, as the org's admin creates them
    for the sync (``SalesforceControl.setup(custom_fields=...)``)."""
    return [{"name": spec.name, "type": "string"} for spec in SALESFORCE_FIELD_MAP.values() if spec.custom]


async def seed_demo_salesforce(base_url: str) -> None:
    """Set up a local Salesforce for the sync (the mapped custom fields) and seed it with the
    demo-salesforce team's deals as it left them ``TEAM_EDITED_AGO``. A person who changes the
    stage alone gets the stage's default probability from Salesforce, which the sync takes for no
    edit of theirs; one who types a probability too overrides the agent's."""
    with SalesforceControl(base_url) as control:
        control.setup(custom_fields=salesforce_custom_fields())
        adapter = SalesforceAdapter(
            SALESFORCE_SANDBOX_TOKEN,
            instance_url=base_url,
            tenant_id=SALESFORCE_DEMO_TENANT,
            integration_username=INTEGRATION_USERNAME,
            rate_limit=RateLimit(per_minute=0),
        )
        await _as_the_team_left_it(
            _TeamCRM(
                SALESFORCE_DEMO_TENANT,
                adapter,
                control,
                "in_salesforce",
                {field: spec.name for field, spec in SALESFORCE_FIELD_MAP.items()},
                held=lambda: {record["Id"]: record for record in control.all_records("Opportunity")},
                edit=lambda deal, fields: control.person_edit("Opportunity", deal, fields),
                create=lambda fields: control.person_create("Opportunity", fields),
            )
        )


async def _upsert(adapter: CRMAdapter, deals: list[OpportunityCreate]) -> dict[str, str]:
    """Upsert ``deals`` through the connector; their CRM ids by deal id, in order."""
    outcomes = await adapter.upsert_opportunities(deals)
    failed = [outcome for outcome in outcomes if not outcome.ok or outcome.external_id is None]
    if failed:
        raise RuntimeError(f"seeding the team's CRM failed: {failed}")
    return {outcome.record_id: str(outcome.external_id) for outcome in outcomes}


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


def _notion_row(deal: OpportunityCreate) -> dict[str, Any]:
    """A deal as a seed row of the Deals database (plain values by property name), keyed by it."""
    row: dict[str, Any] = {SYNC_KEY_PROPERTY: str(deal.id)}
    for field, spec in SYNCED_PROPERTY_MAP.items():
        value = getattr(deal, field)
        if isinstance(value, Decimal):
            value = float(value)
        elif isinstance(value, date):
            value = value.isoformat()
        if value is not None:
            row[spec["notion_name"]] = value
    return row


def demo_notion_seed() -> dict[str, Any]:
    """A sandbox seed document: the Deals database the property map expects plus the team's own
    columns, with the pages the sales team created there by hand (no sync key yet) and those of the
    agent's deals the team already keeps there (keyed, some values differing)."""
    pages = [*_deals()[DEMO_TENANT]["team"], *map(_notion_row, _already_in_crm(DEMO_TENANT, "in_notion"))]
    return {
        "users": list(_SALES_TEAM),
        "databases": [
            {
                "title": "Deals",
                "id": DEMO_NOTION_DATABASE_ID,
                "data_source_id": DEMO_NOTION_DATA_SOURCE_ID,
                "properties": {**notion_properties_schema(SYNCED_PROPERTY_MAP), **TEAM_COLUMNS},
                "pages": pages,
            }
        ],
    }


def seed_demo_notion(control: SandboxControl) -> None:
    """Seed the sandbox with the demo Deals database as the team left it ``TEAM_EDITED_AGO``."""
    control.set_clock(datetime.now(UTC) - TEAM_EDITED_AGO)
    try:
        control.seed(demo_notion_seed())
    finally:
        control.real_clock()


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
