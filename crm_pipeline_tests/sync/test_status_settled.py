"""``SyncStatus.settled`` on the real deal store: which linked records hold exactly their bases,
compared in PostgreSQL as JSON (the *settled* rule of docs/sync-rules.md)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

from crm_pipeline.models import OpportunityCreate
from crm_pipeline.store import DealRepository
from crm_pipeline.sync import SyncStatus

FIELDS = ("name", "estimated_value", "probability", "close_date", "tags", "custom_notes", "source")
BASE: dict[str, Any] = {
    "name": "Acme",
    "estimated_value": Decimal("12.50"),  # the store's scale
    "probability": Decimal("0.250000"),
    "close_date": date(2026, 6, 30),
    "tags": ["renewal", "q3"],
    "custom_notes": None,
    "source": "",
}


async def linked(status: SyncStatus, repository: DealRepository, tenant: str, n: int, base: dict[str, Any]) -> UUID:
    deal = (await repository.create_opportunity(tenant, OpportunityCreate(name=f"deal {n}"))).id
    async with status.transaction() as connection:
        await status.record_synced(connection, deal, f"page-{n}", base)
    return deal


async def test_a_link_is_settled_when_every_mapped_value_equals_its_base(
    repository: DealRepository, tenant: str
) -> None:
    status = SyncStatus(repository, tenant, "notion")
    # as the external record reads: no trailing zeros, the empty values left out
    held = {"name": "Acme", "estimated_value": Decimal("12.5"), "probability": Decimal("0.25")}
    held |= {"close_date": date(2026, 6, 30), "tags": ["renewal", "q3"]}
    same, other_value, other_number, unset, cleared, archived, vanished, unmapped = [
        await linked(status, repository, tenant, n, dict(BASE)) for n in range(8)
    ]
    async with status.transaction() as connection:
        await status.set_archived(connection, archived, archived=True)
        await status.record_synced(connection, unmapped, "page-7", {"override_stage": "Won"})
    await status.set_vanished([vanished], vanished=True)
    never_linked = (await repository.create_opportunity(tenant, OpportunityCreate(name="never"))).id

    found = await status.settled(
        {
            same: held,
            other_value: held | {"tags": ["renewal"]},
            other_number: held | {"estimated_value": Decimal("12.51")},
            unset: held | {"custom_notes": "typed in the CRM"},  # a value where the base holds none
            cleared: {name: value for name, value in held.items() if name != "name"},
            archived: held,
            vanished: held,
            unmapped: held,  # a base of a field the map leaves out is not compared
            never_linked: held,
        },
        FIELDS,
    )

    assert found == {same, unmapped}
    assert await status.settled({}, FIELDS) == set()
    assert await SyncStatus(repository, tenant, "hubspot").settled({same: held}, FIELDS) == set()
