"""The plan's named SyncEngine tests: no external CRM, and ``_resolve_conflict`` per ownership class."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from crm_pipeline.crm import NotionAdapter, PostgresAdapter, SyncEngine
from crm_pipeline.models import Actor, ChangeRecord, FieldChange, RecordType, SyncResult
from crm_pipeline.sync.ownership import DEFAULT_FIELD_OWNERSHIP

pytestmark = pytest.mark.integration

AT = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)


def change(actor: Actor, at: datetime, **fields: tuple[Any, Any]) -> ChangeRecord:
    """One side's change of a record: field=(old, new)."""
    return ChangeRecord(
        tenant_id="t",
        record_type=RecordType.OPPORTUNITY,
        record_id=str(RECORD),
        changes={name: FieldChange(old=old, new=new) for name, (old, new) in fields.items()},
        actor=actor,
        changed_at=at,
    )


RECORD = uuid4()


async def test_sync_outbound_no_external(primary: PostgresAdapter) -> None:
    engine = SyncEngine(primary, None, DEFAULT_FIELD_OWNERSHIP)
    assert not engine.has_external()
    result = await engine.sync_outbound([change(Actor.AGENT, AT, name=("a", "b"))])
    assert result == SyncResult(pushed=0, pulled=0, conflicts=0, errors=[])


def test_has_external(engine: SyncEngine) -> None:
    assert engine.has_external() and engine.sync_interval_seconds == 60 and engine._last_sync is None


def test_resolve_conflict_agent_owned(engine: SyncEngine) -> None:
    human = change(Actor.HUMAN, AT, probability=("0.5", "0.9"))
    agent = change(Actor.AGENT, AT - timedelta(hours=1), probability=("0.5", "0.7"))
    # The agent changed it too: the agent wins, the human's change is dropped.
    assert engine._resolve_conflict(human, agent).changes == {}
    assert engine._resolve_conflict(agent, human).changes == agent.changes
    # The agent left it alone: the human's edit is an explicit override and stands.
    assert engine._resolve_conflict(human).changes == human.changes


def test_resolve_conflict_human_owned(engine: SyncEngine) -> None:
    human = change(Actor.HUMAN, AT - timedelta(hours=1), custom_notes=("old", "from the team"))
    agent = change(Actor.AGENT, AT, custom_notes=("old", "from the agent"))
    assert engine._resolve_conflict(human, agent).changes == human.changes
    assert engine._resolve_conflict(agent, human).changes == {}
    assert engine._resolve_conflict(agent).changes == {}  # a primary write never goes out


def test_resolve_conflict_shared_last_write_wins(engine: SyncEngine) -> None:
    early, late = AT, AT + timedelta(minutes=5)
    human_late = change(Actor.HUMAN, late, estimated_value=("100", "300"))
    agent_early = change(Actor.AGENT, early, estimated_value=("100", "200"))
    assert engine._resolve_conflict(human_late, agent_early).changes == human_late.changes
    assert engine._resolve_conflict(agent_early, human_late).changes == {}
    agent_late = change(Actor.AGENT, late, estimated_value=("100", "200"))
    human_early = change(Actor.HUMAN, early, estimated_value=("100", "300"))
    assert engine._resolve_conflict(agent_late, human_early).changes == agent_late.changes
    # Within Notion's minute the order is unknown: the human's edit is kept.
    same_minute = change(Actor.AGENT, early + timedelta(seconds=30), estimated_value=("100", "200"))
    assert engine._resolve_conflict(human_early, same_minute).changes == human_early.changes
    # Only one side changed: that side wins, whatever the time.
    assert engine._resolve_conflict(agent_early).changes == agent_early.changes


def test_resolve_conflict_leaves_unmapped_fields_out(engine: SyncEngine, notion: NotionAdapter) -> None:
    assert "qualification_snapshot" not in notion.mapped_fields
    agent = change(Actor.AGENT, AT, qualification_snapshot=(None, {"budget": "yes"}), name=("a", "b"))
    assert set(engine._resolve_conflict(agent).changes) == {"name"}
