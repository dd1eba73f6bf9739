"""A crash at every step of a pass, then clean passes: nothing is lost, made twice or left stuck.

The test runs the same small scenario once for every n, the pass crashing just before its n-th
step (``crashes.CrashAt``: any external call or commit), until a pass finishes without reaching
n; that last run proves no step was left untried.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from crm_pipeline.models import ActivityCreate, OpportunityCreate, OpportunityUpdate, SyncResult
from crm_pipeline.store import DealRepository
from crm_pipeline.sync import SyncEngine
from crm_pipeline_tests.crm.conftest import Workspace
from crm_pipeline_tests.sync.crashes import Crash, CrashAt, install
from crm_pipeline_tests.sync.test_engine_e2e import key_of, paragraphs

pytestmark = pytest.mark.integration

STEPS = 38
"""At least as many as the scenario's pass takes: the run with n = STEPS + 1 must finish uncrashed
(a run with n past the pass's last step finishes uncrashed too, and checks the same)."""


@pytest.mark.parametrize("n", range(1, STEPS + 2))
async def test_a_crash_at_any_step_is_followed_by_a_clean_pass(
    engine: SyncEngine,
    repository: DealRepository,
    tenant: str,
    workspace: Workspace,
    monkeypatch: pytest.MonkeyPatch,
    n: int,
) -> None:
    linked = await repository.create_opportunity(tenant, OpportunityCreate(name="Acme", estimated_value=Decimal(1)))
    noted = await repository.create_opportunity(tenant, OpportunityCreate(name="Hooli"))
    await engine.run_pass()
    pages = {key_of(page): page for page in workspace.control.all_pages(workspace.data_source_id)}
    # the pass: an agent edit to push, a new deal to create, an activity to append, a human's
    # edit to pull, a human's new page to make a deal of and key
    await repository.update_opportunity(tenant, linked.id, OpportunityUpdate(deal_stage="Qualified"))
    new = await repository.create_opportunity(tenant, OpportunityCreate(name="Globex"))
    occurred = datetime(2027, 1, 4, 9, 0, tzinfo=UTC)
    await repository.create_activity(
        tenant, ActivityCreate(opportunity_id=linked.id, subject="Demo", occurred_at=occurred)
    )
    workspace.control.human_update_page(
        pages[str(noted.id)]["id"], {"properties": {"Notes": {"rich_text": [{"text": {"content": "call back"}}]}}}
    )
    workspace.control.human_create_page(
        {
            "parent": {"data_source_id": workspace.data_source_id},
            "properties": {
                "Deal Name": {"title": [{"text": {"content": "Initech"}}]},
                "Stage": {"select": {"name": "Lead"}},
            },
        }
    )

    crash = CrashAt()
    install(monkeypatch, crash)
    crash.arm(n)
    try:
        assert (await engine.run_pass()).errors == []
    except Crash:
        assert n <= STEPS, f"the pass takes more than {STEPS} steps: raise STEPS so that every one is tried"
    await crash.revive()
    for _ in range(2):
        assert (await engine.run_pass()).errors == []

    deals = {deal.name: deal for deal in await repository.list_opportunities(tenant)}
    assert sorted(deals) == ["Acme", "Globex", "Hooli", "Initech"]  # the human's page became one deal
    live = [page for page in workspace.control.all_pages(workspace.data_source_id) if not page["in_trash"]]
    assert sorted(map(key_of, live)) == sorted(str(deal.id) for deal in deals.values())  # one page per deal
    by_key = {key_of(page): page for page in live}
    assert by_key[str(linked.id)]["properties"]["Stage"]["select"]["name"] == "Qualified"  # the agent's edit
    assert deals["Hooli"].custom_notes == "call back"  # the human's edit
    assert str(new.id) in by_key
    assert paragraphs(workspace, by_key[str(linked.id)]["id"]) == ["Note: Demo (2027-01-04 09:00 UTC)"]  # once
    assert await engine.run_pass() == SyncResult()  # nothing stuck: a third pass has nothing to do
    assert await engine.status.errors() == []
