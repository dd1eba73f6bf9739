"""The merge core's vocabulary: sides, outcomes, rules, and one field's state in and decision out.

The frame ``merge.decide`` reads holds one row per (record, field) with the ``CELL_COLUMNS``; the
frame it returns holds the ``DECISION_COLUMNS``, on the same index. ``FieldState`` and
``FieldDecision`` are the same cells as frozen objects, for deciding one record at a time.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from crm_pipeline.models import Actor

__all__ = [
    "CELL_COLUMNS",
    "DECISION_COLUMNS",
    "EXTERNAL_TIME_PRECISION",
    "FieldDecision",
    "FieldState",
    "Outcome",
    "Rule",
    "Side",
]


class Side(enum.StrEnum):
    """The two copies of a linked record: the primary store and the external CRM."""

    PRIMARY = "primary"
    EXTERNAL = "external"


class Outcome(enum.StrEnum):
    """What happens to one field of one linked record.

    Whenever there is a winner, the loser's side is written with the winner's value and, once that
    write succeeded, the value becomes the new base.
    """

    NOTHING = "nothing"
    """Both sides hold the same value; it is (or becomes) the base."""
    PUSH = "push"
    """Only the primary changed it: its value goes out to the external CRM."""
    PULL = "pull"
    """The external CRM's value comes into the primary store."""
    CONFLICT = "conflict"
    """Both sides changed it to different values; ``winner`` says whose value stands."""
    OVERRIDE = "override"
    """A human changed an agent-owned field the agent left alone: pulled, recorded as an override."""
    ERROR = "error"
    """The caller's codec flagged a value that cannot cross; nothing is written, the base stays."""
    UNMAPPED = "unmapped"
    """The field has no mapping on the external side: it never travels and has no base."""


class Rule(enum.StrEnum):
    """Why a cell got its outcome: the row of the decision table (docs/sync-rules.md)."""

    UNMAPPED = "unmapped"
    INVALID_VALUE = "invalid-value"
    SAME_VALUE = "same-value"
    AGENT_OWNED = "agent-owned"
    HUMAN_OVERRIDE = "human-override"
    HUMAN_OWNED = "human-owned"
    CHANGED_SIDE_WINS = "changed-side-wins"
    LAST_WRITE_WINS = "last-write-wins"
    TIE_GOES_TO_HUMAN = "tie-goes-to-human"


EXTERNAL_TIME_PRECISION = timedelta(minutes=1)
"""How finely the external side dates an edit when its connector does not say
(``AdapterCapabilities.timestamp_resolution_seconds``): Notion's ``last_edited_time`` is minute-rounded."""


CELL_COLUMNS: tuple[str, ...] = (
    "record",
    "field",
    "owner",
    "mapped",
    "error",
    "base",
    "primary",
    "primary_changed_at",
    "external",
    "external_changed_at",
    "external_editor",
)
"""The columns of the frame ``merge.decide`` reads (see ``merge.cells_frame`` for their types)."""

DECISION_COLUMNS: tuple[str, ...] = ("record", "field", "outcome", "winner", "value", "rule")
"""The columns of the frame ``merge.decide`` returns."""


@dataclass(frozen=True)
class FieldState:
    """One field of one linked record: the base and each side's current value and change time.

    ``base`` is what both sides held after the last successful sync; None when there is none yet
    (a first link decides as if both sides had been empty). A change time is None when unknown.
    ``error`` is the caller's codec saying why a value cannot cross to the other side.
    ``external_editor`` is who made the external side's newest edit of this very field, where the
    connector tells per field (HubSpot's property history); None where it does not (Notion).
    """

    field: str
    base: Any
    primary: Any
    external: Any
    primary_changed_at: datetime | None = None
    external_changed_at: datetime | None = None
    error: str | None = None
    external_editor: Actor | None = None

    def __post_init__(self) -> None:
        for at in (self.primary_changed_at, self.external_changed_at):
            if at is not None and at.utcoffset() is None:
                raise ValueError(f"{self.field}: change times must be timezone-aware, got {at!r}")


@dataclass(frozen=True)
class FieldDecision:
    """The merge's decision on one field of one record (one row of ``merge.decide``'s result)."""

    record: str
    field: str
    outcome: Outcome
    winner: Side | None
    value: Any
    rule: Rule
