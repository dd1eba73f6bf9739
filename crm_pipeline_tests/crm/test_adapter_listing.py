"""What the HubSpot and Salesforce adapters share: ``list_opportunities`` over records read in full
(``listed``) and ``create_opportunity`` over a keyed upsert (``create_by_upsert``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest

from crm_pipeline.crm.adapter import UpsertOutcome, listed
from crm_pipeline.crm.batch_adapter import create_by_upsert
from crm_pipeline.crm.errors import FieldMappingError, WriteRefusedError
from crm_pipeline.models import OpportunityCreate, OpportunityFilter, OpportunityRead

NOON = datetime(2026, 3, 2, 12, tzinfo=UTC)


def deal(name: str, stage: str, minutes: int, value: int | None) -> OpportunityRead:
    at = NOON + timedelta(minutes=minutes)
    return OpportunityRead(
        id=uuid4(),
        tenant_id="t",
        name=name,
        deal_stage=stage,
        estimated_value=None if value is None else Decimal(value),
        created_at=at,
        updated_at=at,
    )


RECORDS = [
    deal("a", "Lead", 0, 30),
    deal("b", "Qualified", 1, None),
    deal("c", "Lead", 2, 10),
    deal("d", "Lead", 3, 20),
]


def names(found: Sequence[OpportunityRead]) -> list[str]:
    return [r.name for r in found]


def test_listing_filters_strictly_after_orders_with_empty_values_last_and_pages() -> None:
    assert names(listed(RECORDS, OpportunityFilter(updated_since=NOON + timedelta(minutes=1)))) == ["c", "d"]
    by_value = OpportunityFilter(deal_stage=["Lead", "Qualified"], order_by="estimated_value", descending=True)
    assert names(listed(RECORDS, by_value)) == ["a", "d", "c", "b"]
    assert names(listed(RECORDS, by_value.model_copy(update={"offset": 1, "limit": 2}))) == ["d", "c"]
    assert names(listed(RECORDS, OpportunityFilter(deal_stage="Qualified"))) == ["b"]


class Refusing:
    """An adapter whose keyed upsert answers with one outcome."""

    def __init__(self, outcome: UpsertOutcome) -> None:
        self.outcome = outcome
        self.sent: list[OpportunityCreate] = []

    async def upsert_opportunities(self, records: Sequence[OpportunityCreate]) -> list[UpsertOutcome]:
        self.sent += records
        return [self.outcome]


async def create(outcome: UpsertOutcome, record: OpportunityCreate) -> tuple[Any, Refusing]:
    adapter = Refusing(outcome)
    try:
        return await create_by_upsert(adapter, record, {"estimated_value": "Amount"}), adapter  # type: ignore[arg-type]
    except (FieldMappingError, WriteRefusedError) as error:
        return error, adapter


async def test_a_create_is_keyed_and_a_refusal_names_the_field_or_the_reason() -> None:
    created, adapter = await create(UpsertOutcome("k", "created", "006A"), OpportunityCreate(name="x"))
    assert created == "006A" and adapter.sent[0].id is not None  # a fresh key, so even a create is keyed
    record = OpportunityCreate(id=uuid4(), name="x", estimated_value=Decimal(5))
    refused, _ = await create(UpsertOutcome("k", "failed", property_name="Amount", reason="too big"), record)
    assert isinstance(refused, FieldMappingError) and (refused.field, refused.value) == ("estimated_value", 5)
    other, _ = await create(UpsertOutcome("k", "failed", reason="in the Recycle Bin"), record)
    assert isinstance(other, WriteRefusedError) and "in the Recycle Bin" in str(other)


@pytest.mark.parametrize("descending", [False, True])
def test_records_without_the_ordering_value_come_last_either_way(descending: bool) -> None:
    found = listed(RECORDS, OpportunityFilter(order_by="estimated_value", descending=descending))
    assert found[-1].name == "b"
