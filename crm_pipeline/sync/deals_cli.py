"""`crm-pipeline deals list|show`: what the sync did to each deal, read-only.

`list` prints one line per deal: its stage, value, last change and who made it (the deal store's
change log), and where it stands with its external record (the sync's state in PostgreSQL).
`show` prints one deal's synced fields on both sides, each with its base, the newest write the sync
decided for it and the rule that decided it, and the deal's ledger entries waiting for a retry; it
reads the CRM's side with one get of the linked record through the tenant's adapter, as
`crm-pipeline sync` opens it. `--json` prints one JSON object instead of the table.

Exit codes: 0 shown; 1 no deal matches; 2 cannot run (no store, unknown tenant); 3 the name
matches several deals (they are listed); 4 shown, but the CRM could not be read (its side is empty).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from tabulate import tabulate

from crm_pipeline.crm.budget import PostgresBudget
from crm_pipeline.models import OPPORTUNITY_FIELDS, ChangeRecord, OpportunityRead
from crm_pipeline.settings import Settings, get_settings
from crm_pipeline.store import Database, DealRepository, StoreError
from crm_pipeline.sync.cli import CANNOT_RUN, cannot_run, external_adapter
from crm_pipeline.sync.model import Side
from crm_pipeline.sync.report import PRIMARY_NAME, json_value, side_name, value_text
from crm_pipeline.sync.status import DealLink, OpenFailure, SyncedField, SyncStatus
from crm_pipeline.tenants.source import configured_connection

NO_MATCH = 1
AMBIGUOUS = 3
CRM_UNREADABLE = 4


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "deals",
        help="what the sync did to each deal (read-only)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="deals_command", required=True)
    listing = commands.add_parser("list", help="one line per deal: stage, value, last change, link to the CRM")
    listing.add_argument("--search", help="only deals whose name contains this text (any case)")
    listing.set_defaults(handler=run_list)
    show = commands.add_parser("show", help="one deal's synced fields on both sides, bases, rules, open failures")
    show.add_argument("deal", help="the deal's id, or its name (any case; a part of it when no name is equal)")
    show.set_defaults(handler=run_show)
    for command in (listing, show):
        command.add_argument("--tenant", help="the tenant (default: CRM_PIPELINE_TENANT_ID)")
        command.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


async def tenant_connector(database: Database, settings: Settings, tenant_id: str) -> str:
    """The connector whose sync state the tenant's deals have: its connection's in the registry
    (or the tenants file the settings name), else Notion (as `crm-pipeline sync` and the Dagster
    runs choose it)."""
    connection = await configured_connection(database, settings, tenant_id)
    return "notion" if connection is None else connection.connector


# --- deals list ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DealLine:
    """One deal with its last change and its link."""

    deal: OpportunityRead
    last_change: ChangeRecord | None
    link: DealLink


async def deal_lines(settings: Settings, tenant_id: str, search: str | None) -> tuple[str, list[DealLine]]:
    """The tenant's connector and its deals (those whose name contains ``search``), by name."""
    async with await Database.open(settings) as database:
        connector = await tenant_connector(database, settings, tenant_id)
        repository = DealRepository(database)
        deals = await repository.search_opportunities(tenant_id, search)
        ids = [deal.id for deal in deals]
        changes = await repository.latest_changes(tenant_id, ids)
        links = await SyncStatus(repository, tenant_id, connector).deal_links(ids)
    return connector, [DealLine(deal, changes.get(deal.id), links[deal.id]) for deal in deals]


def link_text(link: DealLink, deal: OpportunityRead, connector: str) -> str:
    """The link's state in words: which external record, how many failures wait (``show`` says why)."""
    state = link.state(deal_archived=deal.archived_at is not None)
    parts = [f"{side_name(Side.EXTERNAL, connector)} {link.external_id}"] if link.external_id else []
    if link.failures:
        parts.append(f"{len(link.failures)} open failure{'s' if len(link.failures) > 1 else ''}")
    return f"{state}: {', '.join(parts)}" if parts else str(state)


def _when(at: datetime | None) -> str:
    """A moment in UTC to the second, as the tables print it."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if at is not None else ""


def _fields_text(change: ChangeRecord, shown: int = 3) -> str:
    """The fields a change touched, the first few by name (a create touches them all)."""
    names = sorted(change.changes)
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" (+{more})" if more > 0 else "")


def _change_json(change: ChangeRecord | None) -> dict[str, Any] | None:
    if change is None:
        return None
    return {"at": change.changed_at.isoformat(), "by": str(change.actor), "fields": sorted(change.changes)}


def line_json(line: DealLine, connector: str) -> dict[str, Any]:
    deal, link = line.deal, line.link
    return {
        "id": str(deal.id),
        "name": deal.name,
        "stage": deal.deal_stage,
        "value": json_value(deal.estimated_value),
        "archived": deal.archived_at is not None,
        "last_change": _change_json(line.last_change),
        "link": {
            "state": str(link.state(deal_archived=deal.archived_at is not None)),
            "crm": side_name(Side.EXTERNAL, connector),
            "external_id": link.external_id,
            "failures": [_failure_json(failure) for failure in link.failures],
        },
    }


def lines_table(lines: Sequence[DealLine], connector: str) -> str:
    rows = [
        [
            line.deal.name,
            line.deal.deal_stage,
            value_text(line.deal.estimated_value),
            _when(line.last_change.changed_at) if line.last_change else "",
            str(line.last_change.actor) if line.last_change else "",
            _fields_text(line.last_change) if line.last_change else "",
            link_text(line.link, line.deal, connector),
        ]
        for line in lines
    ]
    return tabulate(
        rows, headers=["deal", "stage", "value", "last change", "by", "fields", "sync"], disable_numparse=True
    )


def run_list(args: argparse.Namespace) -> int:
    settings = get_settings()
    tenant_id = args.tenant or settings.tenant_id
    try:
        connector, lines = asyncio.run(deal_lines(settings, tenant_id, args.search))
    except StoreError as error:
        return _cannot_read(tenant_id, error)
    if args.json:
        print(json.dumps({"tenant": tenant_id, "deals": [line_json(line, connector) for line in lines]}))
    elif lines:
        print(lines_table(lines, connector))
    if not lines:
        print(f"crm-pipeline deals: no deal of tenant {tenant_id!r} matches {args.search!r}", file=sys.stderr)
        return NO_MATCH
    return 0


# --- deals show ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DealView:
    """One deal as both sides and the sync's state hold it."""

    deal: OpportunityRead
    connector: str
    link: DealLink
    fields: dict[str, SyncedField]
    synced: tuple[str, ...]
    """The fields the tenant's CRM holds (every field the sync has state of, when it cannot say)."""
    external: OpportunityRead | None = None
    crm_missing: bool = False
    """The CRM answered that it has no record of the link's id."""
    crm_error: str | None = None
    """Why the CRM's side could not be read (it could not be reached, refused the token …)."""
    last_change: ChangeRecord | None = None


class DealNotFoundError(LookupError):
    """No deal of the tenant has this id or name."""


class AmbiguousDealError(LookupError):
    """Several deals match the name given."""

    def __init__(self, name: str, candidates: Sequence[OpportunityRead]) -> None:
        super().__init__(f"{len(candidates)} deals match {name!r}")
        self.candidates = list(candidates)


async def find_deal(repository: DealRepository, tenant_id: str, wanted: str) -> OpportunityRead:
    """The deal with this id, or whose name is ``wanted`` in any case, or, when none is, the one
    whose name contains it; AmbiguousDealError when several do, DealNotFoundError when none."""
    try:
        by_id = await repository.get_opportunity(tenant_id, UUID(wanted))
    except ValueError:
        by_id = None
    if by_id is not None:
        return by_id
    containing = await repository.search_opportunities(tenant_id, wanted)
    equal = [deal for deal in containing if deal.name.casefold() == wanted.casefold()]
    matches = equal or containing
    if not matches:
        raise DealNotFoundError(f"no deal of tenant {tenant_id!r} has the id or name {wanted!r}")
    if len(matches) > 1:
        raise AmbiguousDealError(wanted, matches)
    return matches[0]


async def deal_view(settings: Settings, tenant_id: str, wanted: str) -> DealView:
    """Find the deal and read its sync state; then its record in the CRM, when it is linked (one
    get). A CRM that cannot be reached leaves its side empty and says why."""
    async with await Database.open(settings) as database:
        connector = await tenant_connector(database, settings, tenant_id)
        repository = DealRepository(database)
        deal = await find_deal(repository, tenant_id, wanted)
        status = SyncStatus(repository, tenant_id, connector)
        fields = await status.synced_fields(deal.id)
        view = DealView(
            deal,
            connector,
            (await status.deal_links([deal.id]))[deal.id],
            fields,
            tuple(name for name in OPPORTUNITY_FIELDS if name in fields),
            last_change=(await repository.latest_changes(tenant_id, [deal.id])).get(deal.id),
        )
        try:
            external = await external_adapter(database, settings, tenant_id, PostgresBudget(database.engine))
        except Exception as error:
            if not _crm_failure(error):
                raise
            return replace(view, crm_error=f"could not be opened: {error}")
        view = replace(view, synced=tuple(name for name in OPPORTUNITY_FIELDS if name in external.mapped_fields))
        try:
            if view.link.external_id is None:
                return view
            record = await external.get_opportunity(view.link.external_id)
            return replace(view, external=record, crm_missing=record is None)
        except Exception as error:
            if not _crm_failure(error):
                raise
            return replace(view, crm_error=f"could not be read: {error}")
        finally:
            await external.aclose()


def _crm_failure(error: Exception) -> bool:
    """The CRM's side could not be read (as `crm-pipeline sync` would fail on it), the store's could."""
    return cannot_run(error) and not isinstance(error, StoreError)


def _field_row(view: DealView, name: str) -> list[str]:
    """field, the deal store's value, the CRM's, the base, when the base was stored, the last write."""
    field = view.fields.get(name)
    return [
        name,
        value_text(getattr(view.deal, name)),
        value_text(getattr(view.external, name)) if view.external is not None else "",
        value_text(field.base) if field is not None and field.has_base else "(none)",
        _when(field.synced_at) if field is not None else "",
        _write_text(field, view.connector),
    ]


def _write_text(field: SyncedField | None, connector: str) -> str:
    if field is None or field.last_write is None:
        return ""
    write = field.last_write
    return f"{_when(field.written_at)} to {side_name(write.side, connector)}, {write.rule} ({write.outcome})"


def view_text(view: DealView) -> str:
    """The deal's heading, its fields on both sides with bases and rules, and its open failures."""
    deal, crm = view.deal, side_name(Side.EXTERNAL, view.connector)
    lines = [
        f"{deal.name}  (deal {deal.id})",
        f"sync: {link_text(view.link, deal, view.connector)}",
    ]
    if view.last_change is not None:
        change = view.last_change
        lines.append(f"last change: {_when(change.changed_at)} by {change.actor} ({_fields_text(change)})")
    if view.crm_error:
        lines.append(f"{crm} {view.crm_error}; its column is empty")
    if view.crm_missing:
        lines.append(f"{crm} has no record {view.link.external_id}; its column is empty")
    lines.append("")
    rows = [_field_row(view, name) for name in view.synced]
    lines.append(
        tabulate(
            rows,
            headers=["field", PRIMARY_NAME, crm, "base", "base stored", "last write (rule)"],
            disable_numparse=True,
        )
    )
    if view.link.failures:
        lines += ["", "open failures (retried by every pass):"]
        failure_rows = [
            [f.entry.field or "(record)", side_name(f.entry.side, view.connector), f.entry.reason, f.attempts]
            for f in view.link.failures
        ]
        lines.append(
            tabulate(failure_rows, headers=["field", "failed writing to", "reason", "attempts"], disable_numparse=True)
        )
    return "\n".join(lines)


def _failure_json(failure: OpenFailure) -> dict[str, Any]:
    entry = failure.entry
    return {
        "record_id": entry.record_id,
        "field": entry.field or None,
        "side": entry.side.value,
        "reason": entry.reason,
        "value": entry.value,
        "attempts": failure.attempts,
        "first_seen_at": failure.first_seen_at.isoformat(),
        "last_seen_at": failure.last_seen_at.isoformat(),
    }


def _field_json(view: DealView, name: str) -> dict[str, Any]:
    field = view.fields.get(name)
    write = field.last_write if field is not None else None
    return {
        "field": name,
        "postgres": json_value(getattr(view.deal, name)),
        "crm": json_value(getattr(view.external, name)) if view.external is not None else None,
        "has_base": bool(field and field.has_base),
        "base": json_value(field.base) if field is not None else None,
        "base_stored_at": _when(field.synced_at) or None if field is not None else None,
        "last_write": None
        if write is None or field is None
        else {
            "at": _when(field.written_at),
            "to": side_name(write.side, view.connector),
            "old": json_value(write.old),
            "new": json_value(write.new),
            "outcome": write.outcome.value,
            "rule": write.rule.value,
        },
    }


def view_json(view: DealView, tenant_id: str) -> dict[str, Any]:
    deal, link = view.deal, view.link
    return {
        "tenant": tenant_id,
        "id": str(deal.id),
        "name": deal.name,
        "crm": side_name(Side.EXTERNAL, view.connector),
        "link": {
            "state": str(link.state(deal_archived=deal.archived_at is not None)),
            "external_id": link.external_id,
            "linked_at": _when(link.linked_at) or None,
        },
        "crm_error": view.crm_error,
        "crm_missing": view.crm_missing,
        "last_change": _change_json(view.last_change),
        "fields": [_field_json(view, name) for name in view.synced],
        "open_failures": [_failure_json(failure) for failure in link.failures],
    }


def run_show(args: argparse.Namespace) -> int:
    settings = get_settings()
    tenant_id = args.tenant or settings.tenant_id
    try:
        view = asyncio.run(deal_view(settings, tenant_id, args.deal))
    except StoreError as error:
        return _cannot_read(tenant_id, error)
    except DealNotFoundError as error:
        print(f"crm-pipeline deals: {error}", file=sys.stderr)
        return NO_MATCH
    except AmbiguousDealError as error:
        candidates = [[deal.name, deal.deal_stage, str(deal.id)] for deal in error.candidates]
        print(f"crm-pipeline deals: {error}; give one's id or its whole name:", file=sys.stderr)
        print(tabulate(candidates, headers=["deal", "stage", "id"], disable_numparse=True), file=sys.stderr)
        return AMBIGUOUS
    print(json.dumps(view_json(view, tenant_id)) if args.json else view_text(view))
    return CRM_UNREADABLE if view.crm_error is not None else 0


def _cannot_read(tenant_id: str, error: StoreError) -> int:
    print(f"crm-pipeline deals: cannot read tenant {tenant_id!r}: {error}", file=sys.stderr)
    return CANNOT_RUN
