"""The pass's rule families on hand-built reads: no database, no HTTP. One test per named rule of
docs/sync-rules.md ("What a pass does with records"), named after it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import takewhile
from pathlib import Path
from uuid import UUID

from crm_pipeline.models import OpportunityRead
from crm_pipeline.sync.entries import LedgerEntry, QueuedActivity
from crm_pipeline.sync.model import Side
from crm_pipeline.sync.pass_rules import (
    _LIFECYCLE,
    DeleteAction,
    ExternalView,
    Lifecycle,
    crowded,
    keys_carried,
    plan_activities,
    plan_creates,
    plan_deletes,
    plan_lifecycle,
    plan_merges,
    plan_vanished,
    settled_candidates,
    sort_unlinked,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "sync-rules.md"
T0 = datetime(2025, 1, 1, tzinfo=UTC)
D1, D2, D3 = UUID(int=1), UUID(int=2), UUID(int=3)


def deal(record_id: UUID, *, archived: bool = False) -> OpportunityRead:
    return OpportunityRead(
        id=record_id,
        tenant_id="t",
        name=f"deal {record_id.int}",
        deal_stage="lead",
        created_at=T0,
        updated_at=T0,
        archived_at=T0 if archived else None,
    )


# --- settled records --------------------------------------------------------------------------


def test_settled_candidates_are_linked_records_with_their_own_key_live_and_alone() -> None:
    d4, d5, d6, d7, d8 = (UUID(int=n) for n in range(4, 9))
    views = {
        "linked": ExternalView({"name": "Acme", "notes": "", "tags": [], "value": None}, sync_key=D1),
        "unlinked": ExternalView({"name": "new"}, sync_key=None),
        "keyless": ExternalView({"name": "x"}, sync_key=None),
        "other key": ExternalView({"name": "x"}, sync_key=D3),
        "trashed": ExternalView({"name": "x"}, sync_key=d4, in_trash=True),
        "survivor": ExternalView({"name": "x"}, sync_key=d5, merged_ids=["absorbed"]),
        "absorbed": ExternalView({"name": "x"}, sync_key=d6),
        "crowded": ExternalView({"name": "x"}, sync_key=d7),
        "its duplicate": ExternalView({"name": "x"}, sync_key=d7),
        "in the ledger": ExternalView({"name": "x"}, sync_key=d8),
    }
    links = {"linked": D1, "keyless": D2, "other key": D2, "trashed": d4, "survivor": d5, "absorbed": d6}
    links |= {"crowded": d7, "in the ledger": d8}
    # the empty values are left out: the merge reads them as no value
    assert settled_candidates(views, links, {"in the ledger"}) == {D1: {"name": "Acme"}}
    assert settled_candidates(views, links, {str(D1)}) == {d8: {"name": "x"}}  # a deal's own entry holds it back


# --- merges -----------------------------------------------------------------------------------


def test_relink_by_key_keeps_the_deal_whose_key_the_survivor_carries() -> None:
    views = {"s": ExternalView(sync_key=D2, merged_ids=["a", "b"])}
    relinks, away = plan_merges(views, {"a": D1, "b": D2})
    assert relinks == [(D2, "s")]
    assert away == {D1}


def test_relink_first_deal_when_the_survivor_carries_no_key_and_has_no_link() -> None:
    views = {"s": ExternalView(merged_ids=["b", "a"])}
    assert plan_merges(views, {"a": D2, "b": D1}) == ([(D1, "s")], {D2})


def test_merged_away_when_the_survivor_stays_another_deals() -> None:
    views = {"s": ExternalView(merged_ids=["a"])}
    assert plan_merges(views, {"a": D1, "s": D3}) == ([], {D1})


def test_a_merge_of_unlinked_records_moves_nothing() -> None:
    assert plan_merges({"s": ExternalView(merged_ids=["a"])}, {}) == ([], set())


# --- external records without a link ----------------------------------------------------------


def test_adopt_a_record_without_key_or_link() -> None:
    views = {"p": ExternalView(values={"name": "Acme"})}
    assert sort_unlinked(views, {}, {}, set(), {}).adoptions == [("p", {"name": "Acme"})]


def test_write_key_on_a_linked_record_without_it() -> None:
    unlinked = sort_unlinked({"p": ExternalView()}, {"p": D1}, {}, set(), {})
    assert unlinked.key_writes == [("p", D1)]
    assert unlinked.adoptions == []


def test_link_by_key_when_the_deal_has_no_link() -> None:
    unlinked = sort_unlinked({"p": ExternalView(sync_key=D1)}, {}, {}, {D1}, {})
    assert unlinked.links == [(D1, "p")]
    assert unlinked.duplicates == []


def test_unknown_key_goes_to_the_ledger() -> None:
    unlinked = sort_unlinked({"p": ExternalView(sync_key=D1)}, {}, {}, set(), {})
    assert unlinked.failures == [
        LedgerEntry("p", f"carries the sync key {D1}, which no deal of this tenant has", Side.EXTERNAL)
    ]
    assert unlinked.links == []


def test_keep_linked_and_trash_duplicate() -> None:
    views = {"dup": ExternalView(sync_key=D1)}
    unlinked = sort_unlinked(views, {}, {D1: "kept"}, {D1}, {})
    assert unlinked.links == []
    assert unlinked.duplicates == [(D1, "dup")]


def test_keep_first_created_among_records_of_a_deal_without_link() -> None:
    views = {"a": ExternalView(sync_key=D1), "b": ExternalView(sync_key=D1), "c": ExternalView(sync_key=D1)}
    assert crowded(views, {}, {}) == ["a", "b", "c"]
    created = {"a": T0 + timedelta(seconds=2), "b": T0, "c": T0}
    unlinked = sort_unlinked(views, {}, {}, {D1}, created)
    assert unlinked.links == [(D1, "b")]  # b and c tie: the lower id
    assert unlinked.duplicates == [(D1, "a"), (D1, "c")]


def test_a_trashed_or_linked_record_carrying_a_key_is_not_sorted_again() -> None:
    views = {"t": ExternalView(sync_key=D1, in_trash=True), "l": ExternalView(sync_key=D2)}
    assert keys_carried(views, {"l": D2}) == set()
    assert crowded(views, {"l": D2}, {}) == []


# --- creates ----------------------------------------------------------------------------------


def test_create_the_deals_without_a_link_in_id_order() -> None:
    deals = {i: deal(i) for i in (D1, D2, D3)}
    assert plan_creates([D3, D1, D2], {D2: "p"}, deals) == [deals[D1], deals[D3]]


def test_archived_not_created() -> None:
    assert plan_creates([D1, D2], {}, {D1: deal(D1, archived=True)}) == []


# --- vanished records -------------------------------------------------------------------------


def test_vanished_queued_and_found_again() -> None:
    plan = plan_vanished({D1: "a", D2: "b"}, {"b"}, link_count=100, max_share=0.1)
    assert (plan.gone, plan.vanished, plan.found_again, plan.notices) == ({D1}, {D1}, {D2}, [])


def test_mass_delete_breaker_holds_every_vanished_record_back() -> None:
    plan = plan_vanished({D1: "a", D2: "b", D3: "c"}, set(), link_count=10, max_share=0.1)
    assert plan.gone == {D1, D2, D3}
    assert plan.vanished == set()
    assert [notice.record_id for notice in plan.notices] == ["*"]
    assert "3 linked records vanished at once" in plan.notices[0].reason


def test_one_vanished_record_never_trips_the_breaker() -> None:
    assert plan_vanished({D1: "a"}, set(), link_count=1, max_share=0.1).vanished == {D1}


# --- archive and restore ----------------------------------------------------------------------


def test_lifecycle_table_both_ways() -> None:
    pairs = {UUID(int=i): f"p{i}" for i in range(1, 8)}
    archived = {UUID(int=i): i in (1, 3, 5) for i in range(1, 8)}
    trashed = {"p2": True, "p3": True, "p4": True, "p5": False, "p6": False}
    link_archived = {UUID(int=i) for i in (4, 5, 6)}
    assert plan_deletes(pairs, archived, trashed, link_archived) == [
        DeleteAction(UUID(int=1), "p1", Lifecycle.TRASH),  # p1 not read: as the link saw it, live
        DeleteAction(UUID(int=2), "p2", Lifecycle.ARCHIVE),
        DeleteAction(UUID(int=3), "p3", Lifecycle.MARK_ARCHIVED),
        DeleteAction(UUID(int=4), "p4", Lifecycle.RESTORE_EXTERNAL),
        DeleteAction(UUID(int=5), "p5", Lifecycle.RESTORE_PRIMARY),
        DeleteAction(UUID(int=6), "p6", Lifecycle.MARK_LIVE),
    ]


def test_the_lifecycle_table_is_the_one_the_doc_shows() -> None:
    lines = DOC.read_text(encoding="utf-8").splitlines()
    start = lines.index("| link archived | deal archived | page trashed | action | why |")
    rows = [line.split("|")[1:5] for line in takewhile(lambda line: line.startswith("|"), lines[start + 2 :])]
    shown = {tuple(cell.strip() == "yes" for cell in row[:3]): Lifecycle(row[3].strip()) for row in rows}
    assert shown == _LIFECYCLE


def test_no_fields_while_archived_and_none_for_held_back_pairs() -> None:
    deals = {D1: deal(D1, archived=True), D2: deal(D2), D3: deal(D3)}
    plan = plan_lifecycle({D1: "a", D2: "b", D3: "c"}, deals, {}, set(), {D3}, set())
    assert plan.deletes == [DeleteAction(D1, "a", Lifecycle.TRASH)]
    assert plan.live == {D2: "b"}


def test_restore_waits_for_a_person() -> None:
    plan = plan_lifecycle({D1: "a"}, {D1: deal(D1)}, {"a": True}, {D1}, set(), {D1})
    assert plan.deletes == []
    assert plan.live == {}
    assert plan.restores_dropped == set()


def test_restore_dropped_once_the_deal_is_archived_again() -> None:
    plan = plan_lifecycle({D1: "a"}, {D1: deal(D1, archived=True)}, {"a": True}, {D1}, set(), {D1})
    assert plan.restores_dropped == {D1}


# --- activities -------------------------------------------------------------------------------


def test_append_in_order_queued_and_new_by_when_they_happened() -> None:
    a1, a2, a3 = UUID(int=11), UUID(int=12), UUID(int=13)
    queued = [QueuedActivity(a1, D1, T0 + timedelta(hours=2), attempted=True)]
    new = [QueuedActivity(a3, D1, T0 + timedelta(hours=3)), QueuedActivity(a2, D2, T0), QueuedActivity(a1, D1, T0)]
    assert plan_activities(queued, new, set()) == [
        QueuedActivity(a2, D2, T0),
        QueuedActivity(a1, D1, T0 + timedelta(hours=2), attempted=True),  # the queue's, as attempted
        QueuedActivity(a3, D1, T0 + timedelta(hours=3)),
    ]


def test_appended_once_even_when_a_pass_reads_its_changes_again() -> None:
    logged = QueuedActivity(UUID(int=11), D1, T0)
    assert plan_activities([], [logged], {logged.activity_id}) == []


def test_every_rule_the_doc_names_has_a_test_named_after_it() -> None:
    rules = _doc_rules()
    tests = [name for name in globals() if name.startswith("test_")]
    assert len(rules) == 21
    assert [rule for rule in rules if not any(rule.replace("-", "_") in test for test in tests)] == []


def _doc_rules() -> list[str]:
    """The first column of every table headed "| rule |" in docs/sync-rules.md."""
    rules, in_table = [], False
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("| rule |"):
            in_table = True
        elif in_table and line.startswith("|"):
            rules += [] if line.startswith("|---") else [line.split("|")[1].strip()]
        else:
            in_table = False
    return rules
