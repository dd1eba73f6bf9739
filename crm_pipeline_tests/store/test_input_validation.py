"""Bad input reaches the caller as an error naming what is wrong, never as a raw database error;
what the models accept, PostgreSQL stores."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import pytest

from crm_pipeline.models import (
    MAX_JSON_BYTES,
    MAX_JSON_DEPTH,
    ActivityCreate,
    ContactCreate,
    OpportunityCreate,
)
from crm_pipeline.store import DealRepository, DuplicateRecordError, RecordNotFoundError, StoreError


@pytest.mark.parametrize("spelling", [str, lambda key: str(key).upper()], ids=["same", "upper case"])
async def test_creating_an_opportunity_with_a_taken_id_names_it(
    repository: DealRepository, tenant: str, spelling: Any
) -> None:
    key = uuid4()
    await repository.create_opportunity(tenant, OpportunityCreate(id=key, name="First"))
    with pytest.raises(DuplicateRecordError, match=f"opportunity {key} already exists") as caught:
        await repository.create_opportunity(tenant, OpportunityCreate(id=spelling(key), name="Second"))
    assert isinstance(caught.value, StoreError)
    assert (await repository.get_opportunity(tenant, key)).name == "First"


async def test_creating_a_contact_or_activity_with_a_taken_id_names_it(repository: DealRepository, tenant: str) -> None:
    deal = await repository.create_opportunity(tenant, OpportunityCreate(name="Deal"))
    contact = await repository.create_contact(tenant, ContactCreate(name="Ada", opportunity_id=deal.id))
    with pytest.raises(DuplicateRecordError, match=f"contact {contact.id} already exists"):
        await repository.create_contact(tenant, ContactCreate(id=contact.id, name="Grace"))
    activity = await repository.create_activity(tenant, ActivityCreate(opportunity_id=deal.id, subject="Call"))
    with pytest.raises(DuplicateRecordError, match=f"activity {activity.id} already exists"):
        await repository.create_activity(
            tenant, ActivityCreate(id=activity.id, opportunity_id=deal.id, subject="Again")
        )


async def test_a_missing_opportunity_is_still_not_found_rather_than_a_duplicate(
    repository: DealRepository, tenant: str
) -> None:
    with pytest.raises(RecordNotFoundError):
        await repository.create_contact(tenant, ContactCreate(name="Ada", opportunity_id=UUID(int=1)))


async def test_json_at_the_documented_limits_is_stored_as_given(repository: DealRepository, tenant: str) -> None:
    """The limits sit inside what PostgreSQL's jsonb takes, so an accepted value is always stored."""
    deepest: dict[str, Any] = {"leaf": "ü \\u0000 as text, \U0001f600"}
    for _ in range(MAX_JSON_DEPTH - 1):
        deepest = {"n": deepest}
    largest = {"blob": "x" * (MAX_JSON_BYTES - len('{"blob":""}'))}
    created = await repository.create_opportunity(
        tenant, OpportunityCreate(name="Limits", qualification_tracking=deepest, qualification_snapshot=largest)
    )
    stored = await repository.get_opportunity(tenant, created.id)
    assert stored.qualification_tracking == deepest
    assert stored.qualification_snapshot == largest
