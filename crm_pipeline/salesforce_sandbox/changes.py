"""``sobjects/{object}/updated`` and ``deleted``: the ids whose SystemModstamp (or deletion) falls
in a window. Seconds of ``start`` and ``end`` are dropped; ``updated`` reaches 30 days back and
``deleted`` 15 (or to where the delete log was purged, ``earliestDateAvailable``);
``latestDateCovered`` stops at a transaction the sandbox holds in flight, if any."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from .errors import bad_request
from .runtime import Call
from .sobjects import object_of
from .values import parse_datetime, sf_datetime

UPDATED_DAYS, DELETED_DAYS = 30, 15


def updated(call: Call) -> Any:
    object_name = object_of(call)
    start, end = _window(call, UPDATED_DAYS, None)
    ids = [
        r.id
        for r in call.org.state.records[object_name].values()
        if not r.deleted and start <= r.values["SystemModstamp"] < end
    ]
    return {"ids": sorted(ids), "latestDateCovered": sf_datetime(_covered(call, end))}


def deleted(call: Call) -> Any:
    object_name = object_of(call)
    earliest = _earliest_available(call)
    start, end = _window(call, DELETED_DAYS, earliest)
    found = [
        {"id": d.record_id, "deletedDate": sf_datetime(d.at)}
        for d in call.org.state.deletions
        if d.object_name == object_name and start <= d.at < end
    ]
    return {
        "deletedRecords": found,
        "earliestDateAvailable": sf_datetime(earliest),
        "latestDateCovered": sf_datetime(_covered(call, end)),
    }


def _moment(call: Call, name: str) -> datetime:
    moment = parse_datetime(call.query.get(name, ""))
    if moment is None:
        raise bad_request("INVALID_REPLICATION_DATE", f"{name}: an ISO 8601 date and time with a zone is required")
    return moment.replace(second=0)


def _window(call: Call, days: int, earliest: datetime | None) -> tuple[datetime, datetime]:
    start, end = _moment(call, "start"), _moment(call, "end")
    now = call.org.now()
    if end < start:
        raise bad_request("INVALID_REPLICATION_DATE", "end date cannot be before the start date")
    if start < now - timedelta(days=days) or (earliest is not None and start < earliest.replace(second=0)):
        raise bad_request("INVALID_REPLICATION_DATE", f"start date cannot be more than {days} days ago")
    return start, end


def _covered(call: Call, end: datetime) -> datetime:
    """How far the answer is complete: the window's end, the clock's minute, or a held transaction's start."""
    covered = min(end, call.org.now().replace(second=0))
    held = call.sandbox.held_coverage
    return covered if held is None else min(covered, held)


def _earliest_available(call: Call) -> datetime:
    floor = call.org.now().replace(second=0) - timedelta(days=DELETED_DAYS)
    purged = call.org.state.purged_until
    return floor if purged is None else max(floor, purged)
