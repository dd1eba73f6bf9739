"""What a pass and a deal look like to a person: deal names beside ids, the fields that changed,
and where a write goes ("PostgreSQL", "Notion", "HubSpot") rather than the sync's internal sides.
Pure: the callers (the CLI, the Dagster assets) read the names and bases and print the result.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID

from pydantic import ValidationError

from crm_pipeline.models import OPPORTUNITY_FIELDS, ChangeRecord
from crm_pipeline.sync.merge import comparable
from crm_pipeline.sync.model import Outcome, Side
from crm_pipeline.sync.planner import Lifecycle, PassPlan, RecordPlan
from crm_pipeline.sync.status import decode_value, encode_value

__all__ = [
    "CRM_NAMES",
    "PRIMARY_NAME",
    "PlannedWrite",
    "changed_fields",
    "deals_in",
    "json_value",
    "planned_writes",
    "record_names",
    "side_name",
    "value_text",
]

PRIMARY_NAME = "PostgreSQL"
"""The deal store, as an operator calls it."""
CRM_NAMES: dict[str, str] = {"notion": "Notion", "hubspot": "HubSpot", "salesforce": "Salesforce"}
"""Each connector's CRM by its product name."""


def side_name(side: Side, connector: str) -> str:
    """Where a side's copy lives: the deal store, or the CRM the tenant's connector serves."""
    return PRIMARY_NAME if side is Side.PRIMARY else CRM_NAMES.get(connector, connector)


def json_value(value: Any) -> Any:
    """A field value as JSON, decimals as their shortest text ("0.7", not the store's "0.700000")."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return encode_value(value)


def value_text(value: Any) -> str:
    """A field value as one short line: empty for None, lists joined, decimals at their shortest."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value))
    return str(json_value(value))


@dataclass(frozen=True)
class PlannedWrite:
    """One write a pass would make: to which deal (by name, and the id it is known by), what
    (``action``: a field update, a create, a trash, an archive, a restore or an activity append),
    where, and for a field update the value it replaces, the new one and the rule that decided it."""

    deal: str
    record_id: str
    action: str
    to: str
    field: str = ""
    old: Any = None
    new: Any = None
    rule: str = ""
    conflict: bool = False

    def as_json(self) -> dict[str, Any]:
        return {name: json_value(getattr(self, name)) for name in self.__dataclass_fields__}


_LIFECYCLE_WRITES: dict[Lifecycle, tuple[str, Side]] = {
    Lifecycle.TRASH: ("trash", Side.EXTERNAL),
    Lifecycle.ARCHIVE: ("archive", Side.PRIMARY),
    Lifecycle.RESTORE_EXTERNAL: ("restore", Side.EXTERNAL),
    Lifecycle.RESTORE_PRIMARY: ("restore", Side.PRIMARY),
}
"""The archives and restores that write a side; the rest only change the link's state."""


def deals_in(plan: PassPlan) -> set[UUID]:
    """The deals a plan writes by id (their names are in the deal store)."""
    return (
        {record.record_id for record in plan.records}
        | {action.record_id for action in plan.deletes}
        | {record_id for record_id, _ in plan.duplicates}
        | {activity.deal_id for activity in plan.activities}
    )


def planned_writes(plan: PassPlan, names: Mapping[UUID, str], connector: str) -> list[PlannedWrite]:
    """Every create, field update, trash, archive, restore and activity append of ``plan``, by
    deal name (``names``: id -> name, as ``deals_in`` asks), in the order: creates, adoptions,
    fields, the rest, activities last (the activity's id as the new value)."""
    crm, store = side_name(Side.EXTERNAL, connector), side_name(Side.PRIMARY, connector)
    writes = [PlannedWrite(deal.name, str(deal.id), "create", crm) for deal in plan.creates]
    writes += [
        PlannedWrite(str(values.get("name") or ""), external_id, "create", store)
        for external_id, values in plan.adoptions
    ]
    for record in plan.records:
        writes += _field_updates(record, names.get(record.record_id, ""), connector)
    for action in plan.deletes:
        if action.action in _LIFECYCLE_WRITES:
            verb, side = _LIFECYCLE_WRITES[action.action]
            writes.append(
                PlannedWrite(names.get(action.record_id, ""), str(action.record_id), verb, side_name(side, connector))
            )
    writes += [
        PlannedWrite(names.get(record_id, ""), external_id, "trash duplicate", crm)
        for record_id, external_id in plan.duplicates
    ]
    writes += [
        PlannedWrite(
            names.get(a.deal_id, ""), str(a.deal_id), "append activity", crm, "activities", new=str(a.activity_id)
        )
        for a in plan.activities
    ]
    return writes


def _field_updates(record: RecordPlan, name: str, connector: str) -> list[PlannedWrite]:
    """A record's field updates, one per audit entry: the field, the side written, old and new, the
    rule, and whether it settled a conflict."""
    return [
        PlannedWrite(
            name,
            str(record.record_id),
            "update",
            side_name(entry.side, connector),
            entry.field,
            entry.old,
            entry.new,
            str(entry.rule),
            entry.outcome is Outcome.CONFLICT,
        )
        for entry in record.audit
    ]


def changed_fields(change: ChangeRecord, base: Mapping[str, Any] | None) -> list[str]:
    """The fields ``change`` really changes, sorted. A change with old values (the deal store's)
    names only those already; a CRM's snapshot names every field with its current value, so a
    field counts there only when it differs from the ``base`` (every field before a first sync)."""
    if base is None:
        return sorted(change.changes)
    return sorted(name for name, value in change.changes.items() if _differs(name, value.new, base))


def _differs(name: str, new: Any, base: Mapping[str, Any]) -> bool:
    """Whether a snapshot's value differs from the field's base; a value the deal store cannot
    hold (the sync reports it) and a field outside the deal's (a trash time) always do."""
    if name not in OPPORTUNITY_FIELDS:
        return True
    try:
        value = decode_value(name, new)
    except ValidationError:
        return True
    return bool(comparable(value) != comparable(base.get(name)))


def record_names(changes: Iterable[ChangeRecord]) -> dict[str, str]:
    """record id -> the deal name the changes themselves carry (a CRM's snapshot always does)."""
    return {change.record_id: str(change.changes["name"].new) for change in changes if "name" in change.changes}
