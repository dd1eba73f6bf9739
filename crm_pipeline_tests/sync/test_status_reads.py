"""What `crm-pipeline deals` reads from the sync's state in PostgreSQL: each deal's link with its
open ledger entries and state, and each field's base with its newest decided write."""

from __future__ import annotations

from uuid import UUID, uuid4

from crm_pipeline.models import OpportunityCreate
from crm_pipeline.store import DealRepository
from crm_pipeline.sync import AuditEntry, LedgerEntry, Outcome, Rule, Side, SyncStatus
from crm_pipeline.sync.status import LinkState


async def deal(repository: DealRepository, tenant: str, name: str) -> UUID:
    return (await repository.create_opportunity(tenant, OpportunityCreate(name=name))).id


async def link(status: SyncStatus, record_id: UUID, external_id: str, *audit: AuditEntry) -> None:
    async with status.transaction() as connection:
        await status.record_synced(connection, record_id, external_id, {"name": "agreed"}, audit)


async def test_each_deal_reads_as_linked_not_linked_failed_missing_or_trashed(
    repository: DealRepository, tenant: str
) -> None:
    status = SyncStatus(repository, tenant, "notion")
    linked, unlinked, failed, missing, trashed = [
        await deal(repository, tenant, name) for name in ("linked", "unlinked", "failed", "missing", "trashed")
    ]
    for record_id, page in ((linked, "p-1"), (failed, "p-3"), (missing, "p-4"), (trashed, "p-5")):
        await link(status, record_id, page)
    await status.record_errors([LedgerEntry("p-3", "Notion said 500", Side.EXTERNAL, "deal_stage", "Won")])
    await status.record_errors([LedgerEntry(str(unlinked), "create refused", Side.EXTERNAL)])
    await status.set_vanished([missing], vanished=True)
    async with status.transaction() as connection:
        await status.set_archived(connection, trashed, archived=True)
    await SyncStatus(repository, tenant, "hubspot").record_errors(
        [LedgerEntry(str(linked), "another CRM's", Side.EXTERNAL)]
    )

    links = await status.deal_links([linked, unlinked, failed, missing, trashed])

    states = {record_id: found.state(deal_archived=False) for record_id, found in links.items()}
    assert states == {
        linked: LinkState.LINKED,
        unlinked: LinkState.FAILED,  # its create waits in the ledger
        failed: LinkState.FAILED,  # an entry of its page counts as the deal's
        missing: LinkState.MISSING,
        trashed: LinkState.TRASHED,
    }
    assert links[linked].external_id == "p-1" and links[unlinked].external_id is None
    [waiting] = links[failed].failures
    assert (waiting.entry.field, waiting.entry.reason, waiting.attempts) == ("deal_stage", "Notion said 500", 1)
    assert links[linked].state(deal_archived=True) is LinkState.TRASHED  # archived in the store, not yet in Notion
    never = await deal(repository, tenant, "never synced")
    assert (await status.deal_links([never]))[never].state(deal_archived=False) is LinkState.NOT_LINKED


async def test_each_field_reads_with_its_base_and_its_newest_decided_write(
    repository: DealRepository, tenant: str
) -> None:
    status = SyncStatus(repository, tenant, "notion")
    record_id = await deal(repository, tenant, "Acme")
    first = AuditEntry("deal_stage", "Lead", "Qualified", Side.EXTERNAL, Outcome.PUSH, Rule.CHANGED_SIDE_WINS)
    newest = AuditEntry("deal_stage", "Qualified", "Proposal", Side.PRIMARY, Outcome.CONFLICT, Rule.LAST_WRITE_WINS)
    await link(status, record_id, "p-1", first)
    await link(status, record_id, "p-1", newest)

    fields = await status.synced_fields(record_id)

    assert set(fields) == {"name", "deal_stage"}
    assert (fields["name"].has_base, fields["name"].base, fields["name"].last_write) == (True, "agreed", None)
    stage = fields["deal_stage"]
    assert (stage.has_base, stage.last_write, stage.written_at is not None) == (False, newest, True)


async def test_state_reads_and_ledger_writes_take_more_records_than_a_statement_takes_parameters(
    repository: DealRepository, tenant: str
) -> None:
    """PostgreSQL binds at most 65,535 parameters a statement: a large tenant's first load defers
    tens of thousands of creates to the ledger (eight parameters each), and reads their state."""
    status = SyncStatus(repository, tenant, "notion")
    record_id = await deal(repository, tenant, "linked")
    await link(status, record_id, "p-1")
    ids = [uuid4() for _ in range(70_000)] + [record_id]
    deferred = [LedgerEntry(str(other), "deferred", Side.EXTERNAL) for other in ids[:10_000]]

    await status.record_errors(deferred)
    await status.record_errors(deferred)

    assert len(await status.errors()) == 10_000
    assert await status.links(ids) == {record_id: "p-1"}
    assert await status.links_by_external(["p-1", *map(str, ids)]) == {"p-1": record_id}
    assert await status.bases(ids) == {record_id: {"name": "agreed"}}
    assert await status.archived(ids) == set()
    await status.set_vanished(ids, vanished=True)
    assert await status.pending_deletes() == {record_id: "p-1"}
    assert (await status.deal_links(ids))[ids[0]].failures[0].attempts == 2
