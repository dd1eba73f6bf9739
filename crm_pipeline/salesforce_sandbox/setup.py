"""What an admin sets up in an org and the sync must live with: the stage picklist and what each
stage implies, custom fields on Opportunity, which fields keep history, which ones the integration
user may not see, validation rules, and automation that runs after the API's writes. All of it is
state (kept in the state file) and changed through the control surface."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from .soql import FieldType

CUSTOM_TYPES: tuple[FieldType, ...] = (
    "string",
    "textarea",
    "picklist",
    "currency",
    "percent",
    "double",
    "int",
    "date",
    "datetime",
    "boolean",
)
FORECAST_CATEGORIES = ("Pipeline", "Best Case", "Commit", "Closed", "Omitted")
SYNC_KEY = "Sync_Key__c"


@dataclass(frozen=True)
class Stage:
    """One value of the StageName picklist and the fields it sets (OpportunityStage)."""

    api_name: str
    probability: int
    forecast_category: str
    closed: bool = False
    won: bool = False
    active: bool = True


DEFAULT_STAGES = (
    Stage("Prospecting", 10, "Pipeline"),
    Stage("Qualification", 10, "Pipeline"),
    Stage("Needs Analysis", 20, "Pipeline"),
    Stage("Value Proposition", 50, "Pipeline"),
    Stage("Id. Decision Makers", 60, "Pipeline"),
    Stage("Perception Analysis", 70, "Pipeline"),
    Stage("Proposal/Price Quote", 75, "Pipeline"),
    Stage("Negotiation/Review", 90, "Pipeline"),
    Stage("Closed Won", 100, "Closed", closed=True, won=True),
    Stage("Closed Lost", 0, "Omitted", closed=True),
)


@dataclass(frozen=True)
class CustomField:
    """A custom Opportunity field (its name ends in ``__c``); picklists are unrestricted."""

    name: str
    type: str
    picklist: tuple[str, ...] = ()


DEFAULT_CUSTOM_FIELDS = (CustomField("Agent_Notes__c", "textarea"), CustomField("Next_Call_Date__c", "date"))
DEFAULT_TRACKED = ("StageName", "Amount", "CloseDate", "Probability", "Name")


@dataclass(frozen=True)
class ValidationRule:
    """An admin's rule on Opportunity: a write leaving ``field`` below ``minimum`` (or, with no
    minimum, empty) fails with FIELD_CUSTOM_VALIDATION_EXCEPTION and ``message``."""

    field: str
    message: str
    minimum: Decimal | None = None


@dataclass(frozen=True)
class Automation:
    """What a flow does after each API write to an Opportunity: with no ``fields``, a system
    touch (SystemModstamp only); otherwise it writes them as ``user_id`` (None: the Automated
    Process user). ``delay_seconds`` later than the write it reacts to."""

    fields: dict[str, Any] = field(default_factory=dict)
    user_id: str | None = None
    delay_seconds: int = 0


@dataclass
class Setup:
    stages: list[Stage] = field(default_factory=lambda: list(DEFAULT_STAGES))
    custom_fields: list[CustomField] = field(default_factory=lambda: list(DEFAULT_CUSTOM_FIELDS))
    tracked_fields: list[str] = field(default_factory=lambda: list(DEFAULT_TRACKED))
    hidden_fields: list[str] = field(default_factory=list)
    """Opportunity fields the integration user's profile cannot see: unknown to every API call."""
    sync_key_unique: bool = True
    validation_rules: list[ValidationRule] = field(default_factory=list)
    automations: list[Automation] = field(default_factory=list)

    def stage(self, api_name: str) -> Stage | None:
        return next((s for s in self.stages if s.api_name == api_name and s.active), None)

    def to_json(self) -> dict[str, Any]:
        document = asdict(self)
        document["validation_rules"] = [
            {**rule, "minimum": None if rule["minimum"] is None else str(rule["minimum"])}
            for rule in document["validation_rules"]
        ]
        return document

    def change(self, body: dict[str, Any]) -> None:
        """Replace the parts ``body`` names (each checked before any is changed)."""
        unknown = set(body) - set(asdict(self))
        if unknown:
            raise ValueError(f"unknown setup keys: {sorted(unknown)}")
        changed = Setup.from_json({**self.to_json(), **body})
        for name in body:
            setattr(self, name, getattr(changed, name))

    @staticmethod
    def from_json(document: dict[str, Any]) -> Setup:
        stages = [Stage(**raw) for raw in document["stages"]]
        if not stages or any(s.forecast_category not in FORECAST_CATEGORIES for s in stages):
            raise ValueError(f"stages need a forecast category of {FORECAST_CATEGORIES}")
        custom = [
            CustomField(raw["name"], raw["type"], tuple(raw.get("picklist", ()))) for raw in document["custom_fields"]
        ]
        for custom_field in custom:
            if not custom_field.name.endswith("__c") or custom_field.name == SYNC_KEY:
                raise ValueError(f"a custom field's name ends in __c and is not {SYNC_KEY}: {custom_field.name!r}")
            if custom_field.type not in CUSTOM_TYPES:
                raise ValueError(f"custom field types: {CUSTOM_TYPES}")
        rules = [
            ValidationRule(r["field"], r["message"], None if r.get("minimum") is None else Decimal(str(r["minimum"])))
            for r in document["validation_rules"]
        ]
        automations = [
            Automation(dict(a.get("fields", {})), a.get("user_id"), int(a.get("delay_seconds", 0)))
            for a in document["automations"]
        ]
        return Setup(
            stages,
            custom,
            [str(name) for name in document["tracked_fields"]],
            [str(name) for name in document["hidden_fields"]],
            bool(document["sync_key_unique"]),
            rules,
            automations,
        )
