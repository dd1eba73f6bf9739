"""A crash at each step of a pass (before or after an external call, between an external call and
the commit, before the watermarks move), then clean passes: nothing is lost or made twice."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest

from crm_pipeline.crm import NotionAdapter
from crm_pipeline.models import OpportunityCreate, OpportunityUpdate, SyncResult
from crm_pipeline.store import DealRepository
from crm_pipeline.sync import SyncEngine, SyncStatus
from crm_pipeline_tests.crm.conftest import Workspace

pytestmark = pytest.mark.integration


class Crash(BaseException):
    """The process dies here: nothing below catches it, as nothing catches a kill."""


CRASH_POINTS = [
    (SyncStatus, "record_synced"),  # between an external call and the commit of its result
    (SyncStatus, "set_watermark"),  # after every write, before the watermarks move
    (NotionAdapter, "upsert_opportunities"),  # before the creates
    (NotionAdapter, "write_opportunity"),  # before a page write
    (NotionAdapter, "link_opportunity"),  # after a page became a deal, before its key is written
]


def crash_once(monkeypatch: pytest.MonkeyPatch, owner: type, name: str) -> None:
    original: Callable[..., Awaitable[Any]] = getattr(owner, name)
    crashed = False

    async def crashing(self: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal crashed
        if not crashed:
            crashed = True
            raise Crash(f"{owner.__name__}.{name}")
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(owner, name, crashing)


@pytest.mark.parametrize(("owner", "name"), CRASH_POINTS, ids=[f"{o.__name__}.{n}" for o, n in CRASH_POINTS])
async def test_a_crash_at_any_step_is_followed_by_a_clean_pass(
    engine: SyncEngine,
    repository: DealRepository,
    tenant: str,
    workspace: Workspace,
    monkeypatch: pytest.MonkeyPatch,
    owner: type,
    name: str,
) -> None:
    linked = await repository.create_opportunity(tenant, OpportunityCreate(name="Acme", estimated_value=Decimal(1)))
    await engine.run_pass()
    await repository.update_opportunity(tenant, linked.id, OpportunityUpdate(deal_stage="Qualified"))
    new = await repository.create_opportunity(tenant, OpportunityCreate(name="Globex"))
    workspace.control.human_create_page(
        {
            "parent": {"data_source_id": workspace.data_source_id},
            "properties": {
                "Deal Name": {"title": [{"text": {"content": "Initech"}}]},
                "Stage": {"select": {"name": "Lead"}},
            },
        }
    )
    crash_once(monkeypatch, owner, name)
    with pytest.raises(Crash):
        await engine.run_pass()
    for _ in range(2):
        assert (await engine.run_pass()).errors == []

    deals = {deal.name: deal for deal in await repository.list_opportunities(tenant)}
    assert sorted(deals) == ["Acme", "Globex", "Initech"]  # the human's page became one deal
    pages = [page for page in workspace.control.all_pages(workspace.data_source_id) if not page["in_trash"]]
    keys = sorted("".join(t["plain_text"] for t in page["properties"]["Sync Key"]["rich_text"]) for page in pages)
    assert keys == sorted(str(deal.id) for deal in deals.values())  # one page per deal, each keyed
    by_key = {"".join(t["plain_text"] for t in p["properties"]["Sync Key"]["rich_text"]): p for p in pages}
    assert by_key[str(linked.id)]["properties"]["Stage"]["select"]["name"] == "Qualified"
    assert str(new.id) in by_key
    assert await engine.run_pass() == SyncResult()
