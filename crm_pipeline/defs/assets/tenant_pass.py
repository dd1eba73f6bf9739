"""Opening a sync pass for the run's tenant, and what every sync asset reports."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import dagster as dg
import pandas as pd

from crm_pipeline.crm.budget import PostgresBudget
from crm_pipeline.defs.resources import CRMConnectionResource, DealStoreResource, RequestCount, TenantsResource
from crm_pipeline.models import ChangeRecord, RecordType, SyncResult
from crm_pipeline.sync import SyncEngine
from crm_pipeline.sync.ownership import DEFAULT_FIELD_OWNERSHIP
from crm_pipeline.sync.report import changed_fields, deals_in, planned_writes, record_names, value_text
from crm_pipeline.sync.stages import Decisions, SideChanges
from crm_pipeline.sync.status import Direction
from crm_pipeline.tenants import TenantConnection


@dataclass
class TenantPass:
    tenant_id: str
    sync: SyncEngine
    requests: RequestCount
    budget_per_minute: int
    requests_before: int = 0

    def request_metadata(self) -> dict[str, dg.MetadataValue]:
        """The requests sent to the external CRM since the last report (this step's: the run's
        adapter is shared by its steps) and the budget its connector paces them to."""
        used, self.requests_before = self.requests.sent - self.requests_before, self.requests.sent
        return {
            "requests_used": dg.MetadataValue.int(used),
            "request_budget_per_minute": dg.MetadataValue.int(self.budget_per_minute),
        }


async def tenant_pass(
    tenant_id: str, deal_store: DealStoreResource, crm: CRMConnectionResource, tenants: TenantsResource
) -> TenantPass:
    """The tenant's sync engine over the deal store and its external CRM (open for the run),
    paced by a request budget in the deal store: runs on one token share its rate limit even where
    the run queue's per-integration limit does not hold them apart (a backfill's runs carry no
    integration tag)."""
    return open_pass(await tenants.get(tenant_id, deal_store.database), deal_store, crm)


def open_pass(tenant: TenantConnection, deal_store: DealStoreResource, crm: CRMConnectionResource) -> TenantPass:
    """``tenant_pass`` for a connection already read (the sweep reads its shard's in one query)."""
    external, requests = crm.open(tenant, PostgresBudget(deal_store.engine))
    sync = SyncEngine(
        deal_store.primary(tenant.tenant_id), external, DEFAULT_FIELD_OWNERSHIP, connector=tenant.connector
    )
    return TenantPass(tenant.tenant_id, sync, requests, crm.requests_per_minute(tenant), requests.sent)


async def read_metadata(run: TenantPass, read: SideChanges) -> dict[str, dg.MetadataValue]:
    """What a side's read found (``postgres_opportunities``, ``notion_pages``): the deal store's
    says how many of its changes were of deals without a link (counted, not held: those deals are
    created from their rows), and ``records`` counts the others' records; the external side's adds
    what it could not map, a schema that no longer fits, and its requests."""
    metadata = {
        "tenant": dg.MetadataValue.text(run.tenant_id),
        "changes": dg.MetadataValue.int(len(read.changes) + read.passed_over),
        "records": dg.MetadataValue.int(len({change.record_id for change in read.changes})),
        "lag_seconds": dg.MetadataValue.float(round(read.lag_seconds, 1)),
        "since": dg.MetadataValue.text(read.since or "(first pass)"),
        "latest": await changes_table(run, read),
    }
    if read.direction is Direction.OUTBOUND:
        return {**metadata, "changes_of_deals_without_a_link": dg.MetadataValue.int(read.passed_over)}
    return {
        **metadata,
        "unreadable": dg.MetadataValue.int(len(read.unreadable)),
        "schema_error": dg.MetadataValue.text(read.schema_error or "(none)"),
        **run.request_metadata(),
    }


async def decisions_metadata(run: TenantPass, decisions: Decisions) -> dict[str, dg.MetadataValue]:
    """What ``reconciled_deals`` decided: the counts, and each conflict by deal name, its old and
    new value, the side it is written to (PostgreSQL or the CRM) and the rule that decided it."""
    plan = decisions.plan
    names = await run.sync.deal_store.repository.opportunity_names(run.tenant_id, deals_in(plan))
    conflicts = [
        {
            "deal": write.deal,
            "record": write.record_id,
            "field": write.field,
            "old": value_text(write.old),
            "new": value_text(write.new),
            "written to": write.to,
            "rule": write.rule,
        }
        for write in planned_writes(plan, names, run.sync.status.connector)
        if write.conflict
    ]
    return {
        "to_create_externally": dg.MetadataValue.int(len(plan.creates)),
        "to_adopt": dg.MetadataValue.int(len(plan.adoptions)),
        "to_push": dg.MetadataValue.int(sum(bool(record.push) for record in plan.records)),
        "to_pull": dg.MetadataValue.int(sum(bool(record.pull) for record in plan.records)),
        "conflicts": dg.MetadataValue.int(len(conflicts)),
        "conflicts_decided": markdown(conflicts),
        "unplannable": dg.MetadataValue.int(len(plan.failures)),
        **run.request_metadata(),
    }


def outbound_metadata(run: TenantPass, result: SyncResult) -> dict[str, dg.MetadataValue]:
    """What ``outbound_sync`` wrote to the external CRM."""
    return {**result_metadata(result), **run.request_metadata()}


def inbound_metadata(run: TenantPass, decisions: Decisions, result: SyncResult) -> dict[str, dg.MetadataValue]:
    """What ``inbound_sync`` wrote to the deal store, and how long the pass's changes waited."""
    return {
        **result_metadata(result),
        "outbound_lag_seconds": dg.MetadataValue.float(round(decisions.primary.lag_seconds, 1)),
        "inbound_lag_seconds": dg.MetadataValue.float(round(decisions.external.lag_seconds, 1)),
        **run.request_metadata(),
    }


async def changes_table(run: TenantPass, read: SideChanges, limit: int = 20) -> dg.MetadataValue:
    """The latest changes read, newest first: which deal (by name, beside the id read), the fields
    that changed (a CRM's snapshot against the base the sync last stored), by whom, when."""
    latest = sorted(read.changes, key=lambda c: c.changed_at, reverse=True)[:limit]
    bases: dict[str, dict[str, Any]] = {}
    if read.direction is Direction.OUTBOUND:
        deals = {change.record_id: deal for change in latest if (deal := _deal_of(change)) is not None}
    else:
        deals = await run.sync.status.links_by_external(change.record_id for change in latest)
        stored = await run.sync.status.bases(deals.values())
        bases = {external_id: stored.get(deal, {}) for external_id, deal in deals.items()}
    names = await run.sync.deal_store.repository.opportunity_names(run.tenant_id, deals.values())
    name_of = {record_id: names[deal] for record_id, deal in deals.items() if deal in names} | record_names(latest)
    rows = [
        {
            "deal": name_of.get(change.record_id, ""),
            "record": change.record_id,
            "fields": ", ".join(
                changed_fields(change, None if read.direction is Direction.OUTBOUND else bases.get(change.record_id))
            ),
            "by": str(change.actor),
            "changed_at": change.changed_at.isoformat(timespec="seconds"),
        }
        for change in latest
    ]
    return markdown(rows)


def _deal_of(change: ChangeRecord) -> UUID | None:
    """The deal a deal-store change is about: the deal itself, or an activity's deal."""
    if change.record_type is RecordType.OPPORTUNITY:
        return UUID(change.record_id)
    deal = change.changes.get("opportunity_id")
    return UUID(str(deal.new)) if deal is not None else None


def markdown(rows: Sequence[dict[str, Any]]) -> dg.MetadataValue:
    return dg.MetadataValue.md(pd.DataFrame(rows).to_markdown(index=False) if rows else "(none)")


def result_metadata(result: SyncResult) -> dict[str, dg.MetadataValue]:
    """A writing step's counts and its errors (record, field, reason)."""
    errors = [error.model_dump() for error in result.errors]
    return {
        "created": dg.MetadataValue.int(result.created),
        "updated": dg.MetadataValue.int(result.pushed),
        "pulled": dg.MetadataValue.int(result.pulled),
        "trashed": dg.MetadataValue.int(result.trashed),
        "conflicts": dg.MetadataValue.int(result.conflicts),
        "errors": dg.MetadataValue.int(len(errors)),
        "error_details": markdown(errors[:20]),
    }
