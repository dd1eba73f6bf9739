"""Demo deals, so a fresh checkout has something to sync. Ids are stable: seeding twice is a no-op."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from uuid import NAMESPACE_URL, uuid5

from crm_pipeline.models import Actor, OpportunityCreate
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
