"""Domain models shared by the deal store, the CRM adapters and the sync engine.

Every model is a pydantic v2 model, so bad input fails at the boundary with an error that names
the field, before anything is written anywhere: text PostgreSQL cannot store, JSON that jsonb
cannot hold or that is too deep or too large, a stage outside the pipeline, a naive datetime.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, TypeVar
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    field_validator,
)

from crm_pipeline.json_values import MAX_JSON_BYTES as MAX_JSON_BYTES  # re-exported: the models' limits
from crm_pipeline.json_values import MAX_JSON_DEPTH as MAX_JSON_DEPTH
from crm_pipeline.json_values import JsonValue, json_checked, without_nul

_T = TypeVar("_T")


def _known_stage(stage: str) -> str:
    if stage not in DEAL_STAGES:
        raise ValueError(f"unknown deal stage {stage!r}; the stages are: {', '.join(DEAL_STAGES)}")
    return stage


def _not_cleared(value: _T | None) -> _T:
    """For an update of a column every record has: None would clear it, so it is refused."""
    if value is None:
        raise ValueError("cannot be cleared (every record has one); leave the field out to keep it")
    return value


DEAL_STAGES: tuple[str, ...] = ("Lead", "Qualified", "Proposal", "Negotiation", "Closed Won", "Closed Lost")
"""The pipeline stages, as the sales team sees them in the CRM (Notion's Stage select options).
The only stages the deal store accepts, so every deal can sync."""

Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=10_000), AfterValidator(without_nul)]
ShortText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500), AfterValidator(without_nul)
]
DealStage = Annotated[str, StringConstraints(strip_whitespace=True), AfterValidator(_known_stage)]
Probability = Annotated[Decimal, Field(ge=0, le=1, max_digits=7, decimal_places=6)]
Money = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=2)]
Confidence = Annotated[Decimal, Field(ge=0, le=1, max_digits=7, decimal_places=6)]
Tag = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), AfterValidator(without_nul)
]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, max_length=50), AfterValidator(without_nul)]


class Actor(enum.StrEnum):
    """Who made a change: the AI agent, a human in an external CRM, or the sync engine itself."""

    AGENT = "agent"
    HUMAN = "human"
    SYNC = "sync"


class RecordType(enum.StrEnum):
    """The kinds of record the change log tracks."""

    OPPORTUNITY = "opportunity"
    CONTACT = "contact"
    ACTIVITY = "activity"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, validate_assignment=True)


class _WritableFields(_Model):
    """The writable fields of a record; create and update models narrow them."""

    def changes(self) -> dict[str, Any]:
        """The fields explicitly set (an id excepted): what writing this record to an existing
        one changes. A field left out is left alone; one set to None is cleared."""
        return {name: getattr(self, name) for name in self.model_fields_set - {"id"}}


class _OpportunityFields(_WritableFields):
    """Every writable opportunity field, all optional; create and update narrow it."""

    name: ShortText | None = None
    deal_stage: ShortText | None = None
    estimated_value: Money | None = None
    close_date: date | None = None
    product_line: ShortText | None = None
    probability: Probability | None = None
    source: ShortText | None = None
    contact_name: ShortText | None = None
    contact_email: EmailStr | None = None
    # Agent-owned: written by the agent, pushed outward, never overwritten by a human edit unless
    # that edit is an explicit override.
    qualification_snapshot: dict[str, JsonValue] | None = None
    detection_confidence: Confidence | None = None
    qualification_tracking: dict[str, JsonValue] | None = None
    stakeholder_map: dict[str, JsonValue] | None = None
    score_evidence: list[JsonValue] | None = None
    # Human-owned: the external CRM always wins.
    custom_notes: Text | None = None
    manual_tags: list[Tag] | None = None
    override_stage: ShortText | None = None


OPPORTUNITY_FIELDS: tuple[str, ...] = tuple(_OpportunityFields.model_fields)
"""The names of all writable opportunity fields, in declaration order."""


JSON_FIELDS: tuple[str, ...] = (
    "qualification_snapshot",
    "qualification_tracking",
    "stakeholder_map",
    "score_evidence",
    "manual_tags",
)
"""The opportunity fields stored as jsonb, held to `MAX_JSON_DEPTH` and `MAX_JSON_BYTES` on write."""


class _OpportunityWrite(_OpportunityFields):
    """The checks a write must pass beyond the field types: stages from `DEAL_STAGES`, JSON fields
    that jsonb stores as given. Reads skip them, so rows stored before a check existed stay readable."""

    @field_validator("deal_stage", "override_stage")
    @classmethod
    def _stage_known(cls, stage: str | None) -> str | None:
        return stage if stage is None else _known_stage(stage)

    @field_validator(*JSON_FIELDS)
    @classmethod
    def _plain_json(cls, value: _T | None) -> _T | None:
        return value if value is None else json_checked(value)


class OpportunityCreate(_OpportunityWrite):
    """A new opportunity. `id` may be given by the sync path (the sync key); otherwise it is generated."""

    id: UUID | None = None
    name: ShortText
    deal_stage: ShortText = DEAL_STAGES[0]


class OpportunityUpdate(_OpportunityWrite):
    """A partial update: only the fields that were explicitly set count as changes.

    Setting a field to None clears it; leaving it out leaves it alone (see `changes()`). A name
    or stage cannot be cleared.
    """

    _required = field_validator("name", "deal_stage")(_not_cleared)


class OpportunityRead(_OpportunityFields):
    """An opportunity as stored."""

    model_config = ConfigDict(extra="ignore", from_attributes=True)

    id: UUID
    tenant_id: str
    name: str
    deal_stage: str
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None = None


SortableOpportunityField = Literal["updated_at", "created_at", "name", "estimated_value", "close_date"]


MAX_LIST_LIMIT = 10_000
"""The most opportunities one `list_opportunities` call returns; page with `offset` beyond it."""


class OpportunityFilter(_Model):
    """What `list_opportunities` returns: all conditions are ANDed; unknown fields are an error."""

    deal_stage: DealStage | list[DealStage] | None = None
    updated_since: AwareDatetime | None = Field(
        default=None, description="Only opportunities updated strictly after this instant (timezone-aware)."
    )
    archived: bool | None = Field(
        default=False, description="False: live only (default); True: archived only; None: both."
    )
    limit: int = Field(default=100, ge=1, le=MAX_LIST_LIMIT)
    offset: int = Field(default=0, ge=0)
    order_by: SortableOpportunityField = "updated_at"
    descending: bool = False


class _ContactFields(_WritableFields):
    name: ShortText | None = None
    email: EmailStr | None = None
    phone: Phone | None = None
    title: ShortText | None = None
    company: ShortText | None = None
    opportunity_id: UUID | None = None


CONTACT_FIELDS: tuple[str, ...] = tuple(_ContactFields.model_fields)


class ContactCreate(_ContactFields):
    id: UUID | None = None
    name: ShortText


class ContactUpdate(_ContactFields):
    """A partial update of a contact: only explicitly set fields count (see `changes()`); the name
    cannot be cleared."""

    _required = field_validator("name")(_not_cleared)


class ContactRead(_ContactFields):
    model_config = ConfigDict(extra="ignore", from_attributes=True)

    id: UUID
    tenant_id: str
    name: str
    created_at: datetime
    updated_at: datetime


ActivityKind = Literal["note", "email", "call", "meeting", "task"]


class ActivityCreate(_Model):
    """Something that happened on a deal; activities are append-only."""

    id: UUID | None = None
    opportunity_id: UUID
    kind: ActivityKind = "note"
    subject: ShortText
    body: Annotated[str, StringConstraints(max_length=100_000), AfterValidator(without_nul)] = ""
    occurred_at: AwareDatetime | None = Field(
        default=None, description="When it happened (timezone-aware); default now."
    )


class ActivityRead(ActivityCreate):
    model_config = ConfigDict(extra="ignore", from_attributes=True)

    id: UUID
    tenant_id: str
    occurred_at: datetime
    created_at: datetime


class FieldChange(_Model):
    """One field's old and new value in a change-log entry (JSON-shaped)."""

    old: JsonValue = None
    new: JsonValue = None


class FieldEdit(_Model):
    """Who made the newest edit of one field in an external CRM, and when (to the CRM's precision)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    actor: Actor
    at: datetime


class ExternalOpportunityRead(OpportunityRead):
    """An opportunity as an external CRM holds it, with what the sync needs to link it.

    `id` and `external_id` are the external record's own id; `sync_key` is the id of the primary
    (PostgreSQL) record it mirrors, None for a record a human created in the external CRM.
    """

    external_id: str
    sync_key: UUID | None = None
    last_edited_by: Actor = Actor.HUMAN
    in_trash: bool = False
    merged_ids: list[str] = Field(default_factory=list)
    """External ids of records merged into this one in the CRM (HubSpot's merge): they now answer
    as this record, so links to them belong to it; empty where the CRM has no merges."""
    field_edits: dict[str, FieldEdit] = Field(default_factory=dict)
    """Per field, its newest edit, where the CRM keeps a history per property (HubSpot). Empty
    where it tells only the record's last editor (Notion): ``last_edited_by`` and ``updated_at``
    then stand for every field."""


class ChangeRecord(_Model):
    """One write to one record: which fields changed (old → new), when, and by whom.

    `sequence` is the primary store's change-log order (timestamps alone do not order commits);
    backends without one leave it None. `sync_key` links an external record to its primary record.
    A backend that keeps no old values (Notion) reports each field's current value as `new`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    sequence: int | None = None
    tenant_id: str
    record_type: RecordType
    record_id: str
    sync_key: str | None = None
    changes: dict[str, FieldChange]
    actor: Actor
    changed_at: datetime
    merged_ids: list[str] = Field(default_factory=list)
    """External ids the CRM merged into this record (``ExternalOpportunityRead.merged_ids``)."""
    field_edits: dict[str, FieldEdit] = Field(default_factory=dict)
    """Who made each changed field's newest edit and when, where the backend knows it per field
    (``ExternalOpportunityRead.field_edits``); a field without an entry was edited by ``actor`` at
    ``changed_at``, the record's last edit."""


class ChangeCursor(_Model):
    """A position in a tenant's change feed: every entry up to it has been read.

    Persist it as `str(cursor)` and restore it with `ChangeCursor.parse`; the zero cursor is the
    beginning of the log.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    txid: int = Field(default=0, ge=0)
    sequence: int = Field(default=0, ge=0)

    def __str__(self) -> str:
        return f"{self.txid}:{self.sequence}"

    @classmethod
    def parse(cls, text: str) -> ChangeCursor:
        txid, _, sequence = text.partition(":")
        return cls(txid=int(txid), sequence=int(sequence))


class ChangeFeedPage(_Model):
    """Entries of the change feed in commit-safe order, and the cursor to read on from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    entries: list[ChangeRecord]
    cursor: ChangeCursor


class SyncError(_Model):
    """Why one record could not be synced; every other record still is."""

    record_id: str
    reason: str
    field: str | None = None


class SyncResult(_Model):
    """What one sync pass did: records written out (``pushed``) and in (``pulled``), records
    created on either side, records trashed or archived, fields settled as conflicts, and the
    records that failed. ``skipped``: another pass of the tenant was running, so this one did nothing.
    ``deferred``: records left for a later pass: by the pass's time budget, or deals without a link
    past the creates a pass plans."""

    pushed: int = 0
    pulled: int = 0
    conflicts: int = 0
    errors: list[SyncError] = Field(default_factory=list)
    created: int = 0
    trashed: int = 0
    skipped: bool = False
    deferred: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors
