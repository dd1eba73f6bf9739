"""The report's pure parts: which fields a change really changed, and where a write goes by name."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from crm_pipeline.models import Actor, ChangeRecord, FieldChange, RecordType
from crm_pipeline.sync import PassPlan, Side
from crm_pipeline.sync.entries import QueuedActivity
from crm_pipeline.sync.report import PlannedWrite, changed_fields, deals_in, planned_writes, side_name, value_text


def snapshot(**values: Any) -> ChangeRecord:
    """A CRM's change as Notion reports one: every field with its current value."""
    return ChangeRecord(
        tenant_id="t",
        record_type=RecordType.OPPORTUNITY,
        record_id="page-1",
        changes={name: FieldChange(new=value) for name, value in values.items()},
        actor=Actor.HUMAN,
        changed_at=datetime(2026, 1, 5, 9, 30, tzinfo=UTC),
    )


def test_a_snapshot_names_only_the_fields_that_differ_from_their_base() -> None:
    change = snapshot(name="Acme", probability=0.7, estimated_value=5, manual_tags=["a", "b"], close_date=None)
    base = {"name": "Acme", "probability": Decimal("0.700000"), "estimated_value": Decimal("4"), "manual_tags": ["a"]}
    assert changed_fields(change, base) == ["estimated_value", "manual_tags"]
    assert changed_fields(change, None) == ["close_date", "estimated_value", "manual_tags", "name", "probability"]


def test_a_value_the_store_cannot_hold_and_a_trash_time_count_as_changed() -> None:
    change = snapshot(probability=5, contact_email="not an email", archived_at="2026-01-05T09:30:00+00:00")
    base = {"probability": Decimal("0.5"), "contact_email": "ada@acme.example"}
    assert changed_fields(change, base) == ["archived_at", "contact_email", "probability"]


def test_sides_and_values_read_as_a_person_names_them() -> None:
    assert [side_name(Side.PRIMARY, "hubspot"), side_name(Side.EXTERNAL, "hubspot")] == ["PostgreSQL", "HubSpot"]
    assert side_name(Side.EXTERNAL, "notion") == "Notion"
    assert [value_text(Decimal("0.700000")), value_text(Decimal("120000.00")), value_text(None)] == [
        "0.7",
        "120000",
        "",
    ]
    assert value_text(["security", "priority"]) == "security, priority"


def test_a_plan_shows_the_activities_it_appends_by_deal_name() -> None:
    deal, activity = UUID(int=1), UUID(int=2)
    plan = PassPlan(activities=[QueuedActivity(activity, deal, datetime(2026, 1, 5, tzinfo=UTC))])
    assert deals_in(plan) == {deal}
    assert planned_writes(plan, {deal: "Acme"}, "hubspot") == [
        PlannedWrite("Acme", str(deal), "append activity", "HubSpot", "activities", new=str(activity))
    ]
