"""Two-way sync between the primary deal store and an external CRM.

So far the pure merge core: ``decide`` settles every (record, field) by the decision table of
docs/sync-rules.md, over whole columns; ``decide_record`` does one record with the same code.
"""

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
from crm_pipeline.sync.rules import CONDITIONS, DECISION_TABLE, TableRow, TimeOrder, When

__all__ = [
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
