"""``plan_pass`` on hand-built snapshots: the rule families composed into one pass, no database
and no HTTP (each family's own rules: test_pass_rules.py)."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

from crm_pipeline.models import Actor, OpportunityRead
from crm_pipeline.sync import entries, pass_rules, planner
from crm_pipeline.sync.entries import LedgerEntry, QueuedActivity
from crm_pipeline.sync.model import Side
from crm_pipeline.sync.ownership import DEFAULT_FIELD_OWNERSHIP
from crm_pipeline.sync.pass_rules import DeleteAction, ExternalView, Lifecycle
from crm_pipeline.sync.planner import PassPlan, PassSnapshot, plan_pass

T0 = datetime(2025, 1, 1, tzinfo=UTC)
D1, D2, D3 = UUID(int=1), UUID(int=2), UUID(int=3)
FIELDS = frozenset({"name", "deal_stage"})


def deal(record_id: UUID, name: str = "Acme", *, archived: bool = False) -> OpportunityRead:
    return OpportunityRead(
        id=record_id,
        tenant_id="t",
        name=name,
        deal_stage="lead",
        created_at=T0,
        updated_at=T0,
        archived_at=T0 if archived else None,
    )


def base(name: str = "Acme") -> dict[str, object]:
    return {"name": name, "deal_stage": "lead"}


def test_a_quiet_snapshot_plans_nothing() -> None:
    assert plan_pass(PassSnapshot(FIELDS), DEFAULT_FIELD_OWNERSHIP) == PassPlan()


def test_a_changed_deal_is_pushed_and_a_person_s_page_adopted_in_one_plan() -> None:
    snapshot = PassSnapshot(
        FIELDS,
        views={"new page": ExternalView(values={"name": "Globex"})},
        primary_times={D1: {"name": T0}},
        links={D1: "p1"},
        deals={D1: deal(D1, "Acme 2")},
        bases={D1: base()},
    )
    plan = plan_pass(snapshot, DEFAULT_FIELD_OWNERSHIP)
    assert plan.adoptions == [("new page", {"name": "Globex"})]
    assert [(r.record_id, r.push) for r in plan.records] == [(D1, {"name": "Acme 2"})]


def test_the_backlog_is_created_and_the_rest_waits() -> None:
    snapshot = PassSnapshot(FIELDS, backlog=(D2, D3), creates_waiting=4, deals={D2: deal(D2), D3: deal(D3)})
    plan = plan_pass(snapshot, DEFAULT_FIELD_OWNERSHIP)
    assert [d.id for d in plan.creates] == [D2, D3]
    assert plan.summary().deferred == 4


def with_duplicate(duplicate: ExternalView) -> PassSnapshot:
    """D1, linked to p1 and unchanged since its base, and ``duplicate``, a second page with its key."""
    return PassSnapshot(
        FIELDS,
        views={"dup": duplicate},
        key_links={D1: "p1"},
        key_deals=frozenset({D1}),
        links={D1: "p1"},
        deals={D1: deal(D1)},
        bases={D1: base()},
    )


def test_a_duplicate_s_edit_comes_in_and_goes_to_the_kept_page_too() -> None:
    duplicate = ExternalView(values={"name": "Acme (edited)", "deal_stage": "lead"}, sync_key=D1)
    plan = plan_pass(with_duplicate(duplicate), DEFAULT_FIELD_OWNERSHIP)
    assert plan.duplicates == [(D1, "dup")]
    [record] = plan.records
    assert (record.pull, record.push) == ({"name": "Acme (edited)"}, {"name": "Acme (edited)"})


def test_a_duplicate_the_sync_itself_last_edited_brings_nothing() -> None:
    duplicate = ExternalView(values={"name": "Acme (as sent)"}, sync_key=D1, edited_by=Actor.SYNC)
    plan = plan_pass(with_duplicate(duplicate), DEFAULT_FIELD_OWNERSHIP)
    assert plan.duplicates == [(D1, "dup")]
    assert plan.records == []


def test_reread_records_vanish_or_come_back_and_an_unreadable_one_waits() -> None:
    snapshot = PassSnapshot(
        FIELDS,
        reconcile={D1: "p1", D2: "p2", D3: "p3"},
        links={D1: "p1", D2: "p2", D3: "p3"},
        deals={i: deal(i) for i in (D1, D2, D3)},
        fresh={"p1": ExternalView(values=base())},
        unreadable=frozenset({"p3"}),
        link_count=100,
        bases={i: base() for i in (D1, D2, D3)},
    )
    plan = plan_pass(snapshot, DEFAULT_FIELD_OWNERSHIP)
    assert (plan.vanished, plan.found_again) == ({D2}, {D1})
    assert plan.deletes == [] and plan.records == []  # p3 neither vanished nor synced


def test_the_breaker_holds_back_records_vanishing_at_once() -> None:
    snapshot = PassSnapshot(
        FIELDS,
        reconcile={D1: "p1", D2: "p2"},
        links={D1: "p1", D2: "p2"},
        deals={D1: deal(D1), D2: deal(D2)},
        link_count=10,
        bases={D1: base(), D2: base()},
    )
    plan = plan_pass(snapshot, DEFAULT_FIELD_OWNERSHIP)
    assert plan.vanished == set()
    assert [notice.record_id for notice in plan.notices] == ["*"]
    assert plan.records == []


def test_a_trashed_page_archives_its_deal_and_no_field_travels() -> None:
    snapshot = PassSnapshot(
        FIELDS,
        views={"p1": ExternalView(values={"name": "Gone"}, in_trash=True)},
        external_links={"p1": D1},
        links={D1: "p1"},
        deals={D1: deal(D1)},
        bases={D1: base()},
    )
    plan = plan_pass(snapshot, DEFAULT_FIELD_OWNERSHIP)
    assert plan.deletes == [DeleteAction(D1, "p1", Lifecycle.ARCHIVE)]
    assert plan.records == []


def test_merged_away_deals_wait_in_the_queue_while_the_survivor_is_relinked() -> None:
    snapshot = PassSnapshot(
        FIELDS,
        views={"s": ExternalView(values=base(), sync_key=D1, merged_ids=["a", "b"])},
        external_links={"a": D1, "b": D2},
        links={D1: "a", D2: "b"},
        deals={D1: deal(D1), D2: deal(D2)},
        bases={D1: base(), D2: base()},
    )
    plan = plan_pass(snapshot, DEFAULT_FIELD_OWNERSHIP)
    assert plan.relinks == [(D1, "s")]
    assert plan.vanished == {D2}
    assert plan.records == []  # the survivor holds the base


def test_activities_and_failures_are_in_the_plan() -> None:
    queued = QueuedActivity(UUID(int=9), D1, T0, attempted=True)
    unreadable = LedgerEntry("p9", "cannot map", Side.EXTERNAL, "deal_stage", "??")
    snapshot = PassSnapshot(
        FIELDS,
        views={"p8": ExternalView(sync_key=D3)},
        queued_activities=(queued,),
        failures=(unreadable, unreadable),
    )
    plan = plan_pass(snapshot, DEFAULT_FIELD_OWNERSHIP)
    assert plan.activities == [queued]
    assert plan.failures == [
        unreadable,
        LedgerEntry("p8", f"carries the sync key {D3}, which no deal of this tenant has", Side.EXTERNAL),
    ]


def test_the_planner_imports_nothing_of_the_store() -> None:
    for module in (planner, pass_rules, entries):
        tree = ast.parse(Path(str(module.__file__)).read_text(encoding="utf-8"))
        imported = {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        store = ("sqlalchemy", "crm_pipeline.store", "crm_pipeline.sync.status", "crm_pipeline.sync.reader")
        assert [name for name in imported if name.startswith(store)] == [], module.__name__
