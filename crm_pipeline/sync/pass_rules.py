"""The rules of a pass beyond the field table: which records exist on which side, and what becomes
of them. Pure: each family is a small function or table over what the pass read.

Families, in the order a pass applies them (docs/sync-rules.md names each rule and says why):
settled records (``settled_candidates``, as the pass reads), merges (``plan_merges``), external
records without a link (``sort_unlinked``), creates (``plan_creates``), vanished records and the
breaker (``plan_vanished``), archive and restore (``_LIFECYCLE``, ``plan_deletes``,
``plan_lifecycle``) and activities (``plan_activities``).
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from crm_pipeline.models import Actor, FieldEdit, OpportunityRead, SyncError
from crm_pipeline.sync.entries import LedgerEntry, QueuedActivity
from crm_pipeline.sync.merge import comparable
from crm_pipeline.sync.model import Side

__all__ = [
    "DeleteAction",
    "ExternalView",
    "Lifecycle",
    "LifecyclePlan",
    "MAX_VANISHED_SHARE",
    "Unlinked",
    "VanishedPlan",
    "crowded",
    "keys_carried",
    "links_after_merges",
    "merged_into_others",
    "plan_activities",
    "plan_creates",
    "plan_deletes",
    "plan_lifecycle",
    "plan_merges",
    "plan_vanished",
    "settled_candidates",
    "sort_unlinked",
]


@dataclass
class ExternalView:
    """The latest of an external record's changes read this pass, merged."""

    values: dict[str, Any] = field(default_factory=dict)
    changed_at: datetime | None = None
    sync_key: UUID | None = None
    in_trash: bool = False
    edited_by: Actor | None = None
    """Who made the record's latest edit, when the external side says (None: unknown)."""
    merged_ids: list[str] = field(default_factory=list)
    """The external records a person merged into this one (their links move to it)."""
    field_edits: dict[str, FieldEdit] = field(default_factory=dict)
    """Per field, who made its newest edit and when, where the external side tells per field."""


# --- settled records --------------------------------------------------------------------------


def settled_candidates(
    views: Mapping[str, ExternalView], links: Mapping[str, UUID], held_back: Collection[str]
) -> dict[UUID, dict[str, Any]]:
    """Rule *settled*: a linked external record read again that holds exactly its bases has
    nothing to decide (a change read's overlap re-reads the sync's own writes, every pass), so the
    pass leaves it out, as it does a record no change reported.

    These are the records that may be settled before their values meet their bases
    (``SyncStatus.settled``): linked (``links``: external id -> deal), carrying their own deal's
    key, live, merging no record and merged into none read, their key carried by no other record
    read, and neither they nor their deal in the ledger (``held_back``, by id). Per deal, the
    record's values that are not empty as the merge reads them (``comparable``).
    """
    keys = Counter(view.sync_key for view in views.values())
    merged = merged_into_others(views)
    candidates = {}
    for external_id, view in views.items():
        deal = links.get(external_id)
        if (
            deal is None
            or view.sync_key != deal
            or keys[deal] > 1
            or view.in_trash
            or view.merged_ids
            or external_id in merged
            or external_id in held_back
            or str(deal) in held_back
        ):
            continue
        candidates[deal] = {name: value for name, value in view.values.items() if comparable(value) is not None}
    return candidates


# --- merges -----------------------------------------------------------------------------------


def merged_into_others(views: Mapping[str, ExternalView]) -> set[str]:
    """The external records a person merged into one of those read (their links are read too)."""
    return {merged_id for view in views.values() for merged_id in view.merged_ids}


def plan_merges(
    views: Mapping[str, ExternalView], links: Mapping[str, UUID]
) -> tuple[list[tuple[UUID, str]], set[UUID]]:
    """Links to records a person merged into another (``merged_ids``) move to the survivor:
    (deal, survivor) re-links, and the deals merged away.

    ``links``: the stored links of the records read and of those merged into them (external id
    -> deal). Rules: *relink-by-key*, the deal whose key the survivor carries; *relink-first-deal*,
    carrying no key and linked to none, the first deal; *merged-away*, every other deal linked to
    a merged record (for the pending-delete queue, no writes: the CRM would put them on the
    survivor).
    """
    relinks: list[tuple[UUID, str]] = []
    away: set[UUID] = set()
    for survivor, view in sorted(views.items()):
        if not view.merged_ids:
            continue
        deals = sorted(links[i] for i in view.merged_ids if i in links)
        keep = view.sync_key if view.sync_key in deals else None
        if keep is None and view.sync_key is None and survivor not in links and deals:
            keep = deals[0]
        if keep is not None:
            relinks.append((keep, survivor))
        away |= set(deals) - {keep}
    return relinks, away


def links_after_merges(
    views: Mapping[str, ExternalView], links: Mapping[str, UUID]
) -> tuple[dict[str, UUID], list[tuple[UUID, str]], set[UUID]]:
    """The links of the external records read (external id -> deal) once the merges' re-links
    are made, the re-links, and the deals merged away (``plan_merges``)."""
    relinks, away = plan_merges(views, links)
    known = {ext: links[ext] for ext in views if ext in links} | {ext: deal for deal, ext in relinks}
    return known, relinks, away


# --- external records without a link ----------------------------------------------------------


@dataclass
class Unlinked:
    """What becomes of the external records read without a link (see ``sort_unlinked``)."""

    adoptions: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    key_writes: list[tuple[str, UUID]] = field(default_factory=list)
    links: list[tuple[UUID, str]] = field(default_factory=list)
    duplicates: list[tuple[UUID, str]] = field(default_factory=list)
    failures: list[LedgerEntry] = field(default_factory=list)


_NEVER = datetime.max.replace(tzinfo=UTC)
"""The creation time of a record that could not be read: after every other."""


def _keyed(views: Mapping[str, ExternalView], known: Mapping[str, UUID]) -> dict[UUID, list[str]]:
    """Deal key -> the live external records carrying it that have no link, in id order."""
    keyed: dict[UUID, list[str]] = {}
    for ext, view in sorted(views.items()):
        if view.sync_key is not None and ext not in known and not view.in_trash:
            keyed.setdefault(view.sync_key, []).append(ext)
    return keyed


def keys_carried(views: Mapping[str, ExternalView], known: Mapping[str, UUID]) -> set[UUID]:
    """The deal keys carried by external records without a link: their links and deals are read."""
    return set(_keyed(views, known))


def crowded(views: Mapping[str, ExternalView], known: Mapping[str, UUID], linked: Mapping[UUID, str]) -> list[str]:
    """The records whose creation time decides which one stays: several carry the key of a deal
    without a link. Read only for them, so a pass without duplicates pays nothing."""
    keyed = _keyed(views, known)
    return [ext for key, exts in keyed.items() if key not in linked and len(exts) > 1 for ext in exts]


def sort_unlinked(
    views: Mapping[str, ExternalView],
    known: Mapping[str, UUID],
    linked: Mapping[UUID, str],
    existing: Collection[UUID],
    created: Mapping[str, datetime],
) -> Unlinked:
    """Sort the external records read this pass by key and link.

    ``known``: the linked ones (external id -> deal); ``linked``: the links of the deals whose
    keys the others carry; ``existing``: which of those deals exist; ``created``: creation times
    of the ``crowded`` records. Rules: *write-key*, a linked record without its key gets it;
    *adopt*, no key and no link: a human's record becomes a deal; *link-by-key*, the key of a
    deal without a link: linked; *unknown-key*, a key no deal has: a ledger entry; one record per
    deal: *keep-linked*, the linked one stays, else *keep-first-created* (ties: the lower id);
    *trash-duplicate*, the others bring their edits in and go to the trash.
    """
    sorted_ = Unlinked(
        key_writes=[(ext, known[ext]) for ext, view in views.items() if view.sync_key is None and ext in known],
        adoptions=[(ext, view.values) for ext, view in views.items() if view.sync_key is None and ext not in known],
    )
    for key, exts in _keyed(views, known).items():
        if key not in existing:
            reason = f"carries the sync key {key}, which no deal of this tenant has"
            sorted_.failures += [LedgerEntry(ext, reason, Side.EXTERNAL) for ext in exts]
            continue
        keep = linked.get(key) or min(exts, key=lambda ext: (created.get(ext, _NEVER), ext))
        if key not in linked:
            sorted_.links.append((key, keep))
        sorted_.duplicates += [(key, ext) for ext in exts if ext != keep]
    return sorted_


# --- creates ----------------------------------------------------------------------------------


def plan_creates(
    record_ids: Iterable[UUID], links: Mapping[UUID, str], deals: Mapping[UUID, OpportunityRead]
) -> list[OpportunityRead]:
    """Rule *create*: the deals without a link, in id order, are created externally under their
    key; *archived-not-created*: an archived one is not (nor one that no longer exists)."""
    unlinked = sorted(set(record_ids) - links.keys())
    return [deals[i] for i in unlinked if i in deals and deals[i].archived_at is None]


# --- vanished records -------------------------------------------------------------------------


MAX_VANISHED_SHARE = 0.1
"""The mass-delete breaker's default share of the links that may vanish in one pass."""


@dataclass
class VanishedPlan:
    """The linked records read afresh: which vanished (queued), which came back, and the notice."""

    gone: set[UUID]
    vanished: set[UUID]
    found_again: set[UUID]
    notices: list[SyncError]


def plan_vanished(read: Mapping[UUID, str], found: Collection[str], link_count: int, max_share: float) -> VanishedPlan:
    """Rule *vanished-queued*: a linked record read and not found goes to the pending-delete
    queue (never straight to a delete); *found-again*: one found leaves it; *mass-delete-breaker*:
    when more than ``max_share`` of the ``link_count`` links vanish at once (and more than one),
    none is queued and the pass says so."""
    gone = {record_id for record_id, external_id in read.items() if external_id not in found}
    plan = VanishedPlan(gone, gone, set(read) - gone, [])
    if len(gone) > max(max_share * link_count, 1):
        reason = f"mass-delete breaker: {len(gone)} linked records vanished at once; none queued for deletion"
        plan.vanished, plan.notices = set(), [SyncError(record_id="*", reason=reason)]
    return plan


# --- archive and restore ----------------------------------------------------------------------


class Lifecycle(enum.StrEnum):
    """What a pass does about a linked pair's archived (deal) and trashed (page) state."""

    TRASH = "trash"
    """The deal was archived: move the page to the trash."""
    ARCHIVE = "archive"
    """The page was trashed: archive the deal (soft: nothing is deleted)."""
    RESTORE_EXTERNAL = "restore external"
    """The deal was restored: take the page out of the trash."""
    RESTORE_PRIMARY = "restore primary"
    """The page was restored: restore the deal."""
    MARK_ARCHIVED = "mark archived"
    """Both sides were archived independently: only the link's state changes."""
    MARK_LIVE = "mark live"
    """Both sides were restored independently: only the link's state changes."""


@dataclass(frozen=True)
class DeleteAction:
    record_id: UUID
    external_id: str
    action: Lifecycle


_LIFECYCLE: dict[tuple[bool, bool, bool], Lifecycle] = {
    # (link archived, deal archived, page trashed) -> action; absent: nothing to do.
    (False, True, False): Lifecycle.TRASH,
    (False, False, True): Lifecycle.ARCHIVE,
    (False, True, True): Lifecycle.MARK_ARCHIVED,
    (True, False, True): Lifecycle.RESTORE_EXTERNAL,
    (True, True, False): Lifecycle.RESTORE_PRIMARY,
    (True, False, False): Lifecycle.MARK_LIVE,
}


def plan_deletes(
    linked: Mapping[UUID, str],
    primary_archived: Mapping[UUID, bool],
    external_trashed: Mapping[str, bool],
    link_archived: Collection[UUID],
) -> list[DeleteAction]:
    """Archive and restore, both ways, per linked pair (``_LIFECYCLE``). ``external_trashed``
    holds the external records read this pass; one not read is as the link last saw it."""
    actions = []
    for record_id, external_id in sorted(linked.items()):
        was = record_id in link_archived
        primary = primary_archived[record_id]
        external = external_trashed.get(external_id, was)
        action = _LIFECYCLE.get((was, primary, external))
        if action is not None:
            actions.append(DeleteAction(record_id, external_id, action))
    return actions


@dataclass
class LifecyclePlan:
    """Archives and restores, the waiting restores dropped, and the pairs whose fields travel."""

    deletes: list[DeleteAction]
    restores_dropped: set[UUID]
    live: dict[UUID, str]


def plan_lifecycle(
    links: Mapping[UUID, str],
    deals: Mapping[UUID, OpportunityRead],
    trashed: Mapping[str, bool],
    link_archived: Collection[UUID],
    held_back: Collection[UUID],
    restore_by_hand: Collection[UUID],
) -> LifecyclePlan:
    """Archive and restore the pairs neither vanished nor waiting (``held_back``), by ``_LIFECYCLE``.

    Rules: *restore-waits-for-a-person*, a restore the CRM could not make (``restore_by_hand``)
    is not tried again, and is dropped once the deal is archived again (*restore-dropped*);
    *no-fields-while-archived*, only live pairs not changing state this pass, or marked live,
    get field writes.
    """
    pairs = {i: e for i, e in links.items() if i in deals and i not in held_back}
    deletes = [
        action
        for action in plan_deletes(pairs, {i: deals[i].archived_at is not None for i in pairs}, trashed, link_archived)
        if not (action.action is Lifecycle.RESTORE_EXTERNAL and action.record_id in restore_by_hand)
    ]
    changing = {d.record_id: d.action for d in deletes}
    live = {
        i: e
        for i, e in pairs.items()
        if changing.get(i) is Lifecycle.MARK_LIVE or (i not in changing and i not in link_archived)
    }
    dropped = {i for i in restore_by_hand if i in deals and deals[i].archived_at is not None}
    return LifecyclePlan(deletes, dropped, live)


# --- activities -------------------------------------------------------------------------------


def plan_activities(
    queued: Iterable[QueuedActivity], new: Iterable[QueuedActivity], appended: Collection[UUID]
) -> list[QueuedActivity]:
    """Rule *append-in-order*: every activity not appended yet, the queued ones (as attempted or
    not) and the ones this pass's changes logged, in the order they happened; *appended-once*: a
    logged one already ``appended`` is not (a pass that stopped before moving its watermark reads
    its changes again). The executor queues them first, then appends those of linked deals, in
    this order per deal."""
    logged = {activity.activity_id: activity for activity in new if activity.activity_id not in appended}
    waiting = logged | {activity.activity_id: activity for activity in queued}
    return sorted(waiting.values(), key=lambda activity: (activity.occurred_at, activity.activity_id))
