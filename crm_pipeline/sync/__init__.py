"""Two-way sync between the primary deal store and an external CRM.

The pure merge core (``decide`` settles every (record, field) by the decision table of
docs/sync-rules.md, over whole columns; ``decide_record`` does one record with the same code), the
pure planner over it (``plan_pass``: a whole pass from the ``PassSnapshot`` its reads froze), the
executor that writes plans, the status store in PostgreSQL, and
``SyncEngine``, which runs a pass with them, whole (``run_pass``) or stage by stage (the values
the stages hand each other: ``SideChanges``, ``Decisions``; a writing stage whose decisions went
stale raises ``PassRefusedError``; ``PassOvertakenError`` when another pass of the tenant wrote
meanwhile).
"""

from crm_pipeline.sync.engine import SyncEngine
from crm_pipeline.sync.merge import cells_frame, comparable, decide, decide_record
from crm_pipeline.sync.model import (
    CELL_COLUMNS,
    DECISION_COLUMNS,
    EXTERNAL_TIME_PRECISION,
    FieldDecision,
    FieldState,
    Outcome,
    Rule,
    Side,
)
from crm_pipeline.sync.planner import PassPlan, PassSnapshot, RecordPlan, RecordState, plan_pass, plan_records
from crm_pipeline.sync.rules import CONDITIONS, DECISION_TABLE, TableRow, TimeOrder, When
from crm_pipeline.sync.stages import (
    INBOUND_PARTS,
    OUTBOUND_PARTS,
    Decisions,
    PassOvertakenError,
    PassRefusedError,
    SideChanges,
)
from crm_pipeline.sync.status import AuditEntry, Direction, LedgerEntry, SyncStatus

__all__ = [
    "AuditEntry",
    "Decisions",
    "Direction",
    "INBOUND_PARTS",
    "LedgerEntry",
    "OUTBOUND_PARTS",
    "PassOvertakenError",
    "PassPlan",
    "PassRefusedError",
    "PassSnapshot",
    "RecordPlan",
    "RecordState",
    "SideChanges",
    "SyncEngine",
    "SyncStatus",
    "plan_pass",
    "plan_records",
    "CELL_COLUMNS",
    "CONDITIONS",
    "DECISION_COLUMNS",
    "DECISION_TABLE",
    "EXTERNAL_TIME_PRECISION",
    "FieldDecision",
    "FieldState",
    "Outcome",
    "Rule",
    "Side",
    "TableRow",
    "TimeOrder",
    "When",
    "cells_frame",
    "comparable",
    "decide",
    "decide_record",
]
