"""Field ownership: which side wins a conflict on each opportunity field.

The sync core's input, independent of any CRM: the merge core looks each field's owner up here and
the decision table (rules.py) decides by it. Pure, no I/O; see docs/field-mapping.md#field-ownership.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from crm_pipeline.models import OPPORTUNITY_FIELDS

__all__ = ["DEFAULT_FIELD_OWNERSHIP", "FieldOwner", "FieldOwnershipConfig"]


class FieldOwner(enum.StrEnum):
    """Who wins a conflict on a field: the agent, the human in the CRM, or the latest write."""

    AGENT = "agent"
    HUMAN = "human"
    SHARED = "shared"


@dataclass(frozen=True, init=False)
class FieldOwnershipConfig:
    """Which side owns each opportunity field; the sync engine resolves conflicts with it.

    Built as in the plan, ``FieldOwnershipConfig(agent_owned_fields=[...], human_owned_fields=[...],
    shared_fields=[...])``; any iterable of field names will do, and each group is kept as a
    frozenset, so the config stays immutable and hashable. Fields listed nowhere get
    ``default_owner`` (SHARED: last write wins), which covers the plain deal attributes such as
    product_line, source, contact_name and contact_email.
    """

    agent_owned_fields: frozenset[str]
    human_owned_fields: frozenset[str]
    shared_fields: frozenset[str]
    default_owner: FieldOwner
    _owners: dict[str, FieldOwner] = field(init=False, repr=False, compare=False)

    def __init__(
        self,
        agent_owned_fields: Iterable[str] = (),
        human_owned_fields: Iterable[str] = (),
        shared_fields: Iterable[str] = (),
        default_owner: FieldOwner = FieldOwner.SHARED,
    ) -> None:
        groups = {
            FieldOwner.AGENT: _field_names(agent_owned_fields, "agent_owned_fields"),
            FieldOwner.HUMAN: _field_names(human_owned_fields, "human_owned_fields"),
            FieldOwner.SHARED: _field_names(shared_fields, "shared_fields"),
        }
        # Frozen dataclasses set their fields through object; validated and inverted once.
        object.__setattr__(self, "agent_owned_fields", groups[FieldOwner.AGENT])
        object.__setattr__(self, "human_owned_fields", groups[FieldOwner.HUMAN])
        object.__setattr__(self, "shared_fields", groups[FieldOwner.SHARED])
        object.__setattr__(self, "default_owner", FieldOwner(default_owner))
        object.__setattr__(self, "_owners", _owners_by_field(groups))

    def owner_of(self, field_name: str) -> FieldOwner:
        """The owner of a writable opportunity field (``default_owner`` if it is not listed)."""
        _require_opportunity_field(field_name)
        return self._owners.get(field_name, self.default_owner)


def _field_names(names: Iterable[str], group: str) -> frozenset[str]:
    """A group of field names as a frozenset; a bare string would be read letter by letter."""
    if isinstance(names, str):
        raise TypeError(f"{group} takes a collection of field names, not the string {names!r}")
    return frozenset(names)


def _require_opportunity_field(field_name: str) -> None:
    if field_name not in OPPORTUNITY_FIELDS:
        raise ValueError(f"{field_name!r} is not an opportunity field (see OPPORTUNITY_FIELDS)")


def _owners_by_field(groups: Mapping[FieldOwner, frozenset[str]]) -> dict[str, FieldOwner]:
    """Invert the groups, refusing unknown fields and fields with two owners."""
    owners: dict[str, FieldOwner] = {}
    for owner, names in groups.items():
        for name in sorted(names):
            _require_opportunity_field(name)
            if name in owners:
                raise ValueError(f"field {name!r} has two owners: {owners[name].value} and {owner.value}")
            owners[name] = owner
    return owners


DEFAULT_FIELD_OWNERSHIP = FieldOwnershipConfig(
    agent_owned_fields=[
        "qualification_snapshot",
        "detection_confidence",
        "probability",
        "qualification_tracking",
        "stakeholder_map",
        "score_evidence",
    ],
    human_owned_fields=["custom_notes", "manual_tags", "override_stage"],
    shared_fields=["deal_stage", "estimated_value", "close_date", "name"],
)
