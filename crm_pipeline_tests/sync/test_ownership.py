"""Tests of field ownership: the plan's default, how a config is built, what it refuses."""

from __future__ import annotations

import dataclasses

import pytest

from crm_pipeline.models import OPPORTUNITY_FIELDS
from crm_pipeline.sync.ownership import DEFAULT_FIELD_OWNERSHIP, FieldOwner, FieldOwnershipConfig


def test_default_ownership_is_the_plan() -> None:
    owners = {field: DEFAULT_FIELD_OWNERSHIP.owner_of(field) for field in OPPORTUNITY_FIELDS}
    assert {f for f, o in owners.items() if o is FieldOwner.AGENT} == {
        "qualification_snapshot",
        "detection_confidence",
        "probability",
        "qualification_tracking",
        "stakeholder_map",
        "score_evidence",
    }
    assert {f for f, o in owners.items() if o is FieldOwner.HUMAN} == {"custom_notes", "manual_tags", "override_stage"}
    assert {f for f, o in owners.items() if o is FieldOwner.SHARED} == {
        "deal_stage",
        "estimated_value",
        "close_date",
        "name",
        # not listed in the plan: the documented default
        "product_line",
        "source",
        "contact_name",
        "contact_email",
    }


def test_a_field_with_two_owners_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="'deal_stage' has two owners"):
        FieldOwnershipConfig(agent_owned_fields=["deal_stage"], shared_fields=["deal_stage", "name"])


def test_an_unknown_field_is_refused() -> None:
    with pytest.raises(ValueError, match="'stage' is not an opportunity field"):
        FieldOwnershipConfig(human_owned_fields=["stage"])
    with pytest.raises(ValueError, match="'updated_at' is not an opportunity field"):
        DEFAULT_FIELD_OWNERSHIP.owner_of("updated_at")


def test_ownership_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT_FIELD_OWNERSHIP.shared_fields = frozenset()  # type: ignore[misc]


def test_ownership_is_configured_the_plans_way_with_any_iterable_and_stays_hashable() -> None:
    from_lists = FieldOwnershipConfig(
        agent_owned_fields=["probability", "score_evidence"],
        human_owned_fields=["custom_notes"],
        shared_fields=["deal_stage", "name"],
    )
    from_other_iterables = FieldOwnershipConfig(
        agent_owned_fields=("score_evidence", "probability"),
        human_owned_fields={"custom_notes"},
        shared_fields=(name for name in ["name", "deal_stage"]),
    )
    assert from_lists.agent_owned_fields == frozenset({"probability", "score_evidence"})
    assert isinstance(from_lists.human_owned_fields, frozenset)
    assert from_lists.shared_fields == frozenset({"deal_stage", "name"})
    assert from_lists == from_other_iterables and hash(from_lists) == hash(from_other_iterables)
    assert len({from_lists, from_other_iterables, DEFAULT_FIELD_OWNERSHIP}) == 2
    assert from_lists.owner_of("score_evidence") is FieldOwner.AGENT
    assert from_lists.owner_of("source") is FieldOwner.SHARED  # listed nowhere: the default
    assert DEFAULT_FIELD_OWNERSHIP.human_owned_fields == frozenset({"custom_notes", "manual_tags", "override_stage"})


def test_a_bare_string_is_not_taken_for_a_list_of_fields() -> None:
    with pytest.raises(TypeError, match="shared_fields takes a collection of field names"):
        FieldOwnershipConfig(shared_fields="name")
