"""A Hypothesis state machine over the real deal store and the sandbox Notion: random interleavings
of agent edits, human edits, archives, trash and restores on both sides, lost answers, rate
limits (429), hung requests (client timeouts), passes and passes that crash at a random step.
After the faults stop and two clean passes, both sides agree on every mapped field, a deal is
archived exactly when its page is trashed, no deal has two pages, and no edit is lost: the last
human edit of a human-owned field stands, and an agent-owned field holds one of its two sides'
last values."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, precondition, rule, run_state_machine_as_test

from crm_pipeline.crm import NotionAdapter, PostgresAdapter
from crm_pipeline.crm.notion.client import is_retryable
from crm_pipeline.crm.notion.properties import SYNCED_PROPERTY_MAP, notion_properties_schema
from crm_pipeline.models import OpportunityCreate, OpportunityUpdate
from crm_pipeline.sandbox import DEFAULT_TOKEN, RunningSandbox, SandboxControl
from crm_pipeline.settings import Settings
from crm_pipeline.store import Database, DealRepository
from crm_pipeline.sync import SyncEngine, comparable
from crm_pipeline.sync.ownership import DEFAULT_FIELD_OWNERSHIP
from crm_pipeline_tests.crm.conftest import FAST_RETRY, HANG_SECONDS, HANG_TIMEOUT_S, UNPACED
from crm_pipeline_tests.sync.crashes import Crash, CrashAt, install

pytestmark = pytest.mark.integration

NOTES = st.sampled_from(["call back", "on hold", "send pricing", ""])
PROBABILITY = st.sampled_from([Decimal("0.1"), Decimal("0.5"), Decimal("0.9")])
STAGES = st.sampled_from(["Lead", "Qualified", "Proposal"])


def page_for(
    control: SandboxControl, data_source_id: str, deal_id: UUID, *, in_trash: bool = False
) -> list[dict[str, Any]]:
    """The live (or trashed) pages carrying the deal's key."""
    return [
        page
        for page in control.all_pages(data_source_id)
        if page["in_trash"] == in_trash
        and "".join(t["plain_text"] for t in page["properties"]["Sync Key"]["rich_text"]) == str(deal_id)
    ]


def machine(
    store_settings: Settings, sandbox: RunningSandbox, control: SandboxControl, crash: CrashAt
) -> type[RuleBasedStateMachine]:
    class SyncMachine(RuleBasedStateMachine):
        deals = Bundle("deals")

        def __init__(self) -> None:
            super().__init__()
            self.loop = asyncio.new_event_loop()
            control.reset()
            [source] = control.seed(
                {"databases": [{"title": "Deals", "properties": notion_properties_schema(SYNCED_PROPERTY_MAP)}]}
            )
            self.data_source_id = source["data_source_id"]
            self.database = self.run(Database.open(store_settings))
            self.repository = DealRepository(self.database)
            self.tenant = f"m-{id(self):x}"[:30]
            self.run(self.repository.register_tenant(self.tenant))
            self.notion = NotionAdapter(
                DEFAULT_TOKEN,
                source["database_id"],
                base_url=sandbox.base_url,
                property_map=SYNCED_PROPERTY_MAP,
                retry=FAST_RETRY,
                rate_limit=UNPACED,
                timeout_s=HANG_TIMEOUT_S,
            )
            primary = PostgresAdapter(self.repository, self.tenant)
            self.engine = SyncEngine(
                primary, self.notion, DEFAULT_FIELD_OWNERSHIP, reconcile_seconds=0, trash_check_seconds=0
            )
            self.human_notes: dict[UUID, str | None] = {}
            self.probabilities: dict[UUID, set[Any]] = {}
            self.synced: set[UUID] = set()

        def run(self, work: Any) -> Any:
            return self.loop.run_until_complete(work)

        @rule(target=deals, name=st.sampled_from(["Acme", "Globex", "Initech"]))
        def agent_creates(self, name: str) -> UUID:
            deal = self.run(self.repository.create_opportunity(self.tenant, OpportunityCreate(name=name)))
            self.probabilities[deal.id] = {None}
            return deal.id

        @rule(deal=deals, stage=STAGES, probability=PROBABILITY, notes=NOTES)
        def agent_edits(self, deal: UUID, stage: str, probability: Decimal, notes: str) -> None:
            update = OpportunityUpdate(deal_stage=stage, probability=probability, custom_notes=notes or None)
            self.run(self.repository.update_opportunity(self.tenant, deal, update))
            self.probabilities[deal].add(probability)

        @precondition(lambda self: bool(self.synced))
        @rule(data=st.data(), stage=STAGES, probability=PROBABILITY, notes=NOTES)
        def human_edits(self, data: st.DataObject, stage: str, probability: Decimal, notes: str) -> None:
            deal = data.draw(st.sampled_from(sorted(self.synced)))
            pages = page_for(control, self.data_source_id, deal)
            if not pages:  # in the trash: Notion refuses edits there
                return
            [page] = pages
            properties = {
                "Stage": {"select": {"name": stage}},
                "Probability": {"number": float(probability)},
                "Notes": {"rich_text": [{"text": {"content": notes}}] if notes else []},
            }
            control.human_update_page(page["id"], {"properties": properties})
            self.human_notes[deal] = notes or None
            self.probabilities[deal].add(probability)

        @rule(deal=deals, archive=st.booleans())
        def agent_archives_or_restores(self, deal: UUID, archive: bool) -> None:
            change = self.repository.archive_opportunity if archive else self.repository.restore_opportunity
            self.run(change(self.tenant, deal))

        @precondition(lambda self: bool(self.synced))
        @rule(data=st.data(), trash=st.booleans())
        def human_trashes_or_restores(self, data: st.DataObject, trash: bool) -> None:
            deal = data.draw(st.sampled_from(sorted(self.synced)))
            pages = page_for(control, self.data_source_id, deal) + page_for(
                control, self.data_source_id, deal, in_trash=True
            )
            control.human_update_page(pages[0]["id"], {"in_trash": trash})

        @rule(kind=st.sampled_from(["503", "504", "529"]), applied=st.booleans())
        def notion_loses_an_answer(self, kind: str, applied: bool) -> None:
            control.add_fault(kind, method="*", path="/v1/pages*", applied=applied)

        @rule(applied=st.booleans())
        def notion_hangs(self, applied: bool) -> None:
            """The next page request hangs past the client's timeout (carried out first or not)."""
            control.add_fault("hang", method="*", path="/v1/pages*", applied=applied, hang_seconds=HANG_SECONDS)

        @rule(rate=st.sampled_from([5.0, 20.0]))
        def a_pass_runs_rate_limited(self, rate: float) -> None:
            """Notion answers 429 to what goes over ``rate`` requests/s (bursts of 2) during a pass."""
            control.configure(rate_limit=rate, burst=2)
            try:
                self.a_pass_runs()
            finally:
                control.configure(rate_limit=0)

        @rule(step=st.integers(min_value=1, max_value=40))
        def a_pass_crashes(self, step: int) -> None:
            """The process dies just before the pass's ``step``-th external call or commit (or the
            pass finishes first, when it has fewer steps)."""
            crash.arm(step)
            try:
                self.a_pass_runs()
            except Crash:
                pass
            finally:
                self.run(crash.revive())
            self.synced |= set(self.run(self.engine.status.links()))

        @rule(seconds=st.sampled_from([20, 61, 300]))
        def time_passes(self, seconds: int) -> None:
            control.advance_clock(seconds)

        @rule()
        def a_pass_runs(self) -> None:
            try:
                self.run(self.engine.run_pass())
            except Exception as error:
                # Notion failing a read past every retry (faults stacked on one request) stops
                # the pass, as an outage should; anything else is a defect
                if not is_retryable(error):
                    raise
            self.synced |= set(self.run(self.engine.status.links()))

        def teardown(self) -> None:
            try:
                control.clear_faults()
                for _ in range(2):
                    self.run(self.engine.run_pass())
                self.check_converged()
            finally:
                self.run(self.notion.aclose())
                self.run(self.database.close())
                self.loop.close()

        def check_converged(self) -> None:
            for deal in self.probabilities:
                stored = self.run(self.repository.get_opportunity(self.tenant, deal))
                assert stored is not None
                live = page_for(control, self.data_source_id, deal)
                trashed = page_for(control, self.data_source_id, deal, in_trash=True)
                if stored.archived_at is not None and not self.run(self.engine.status.links([deal])):
                    assert live + trashed == []  # archived before it ever had a page: none is made
                    continue
                assert len(live + trashed) == 1, f"deal {deal} has {len(live)} live and {len(trashed)} trashed pages"
                assert bool(trashed) == (stored.archived_at is not None), f"deal {deal}: archived and trashed differ"
                if trashed:
                    continue
                page = self.run(self.notion.get_opportunity(live[0]["id"]))
                assert page is not None
                for name in self.notion.mapped_fields:
                    assert comparable(getattr(stored, name)) == comparable(getattr(page, name)), name
                if deal in self.human_notes:
                    assert stored.custom_notes == self.human_notes[deal]
                assert stored.probability in self.probabilities[deal]

    return SyncMachine


@pytest.mark.long
def test_random_interleavings_with_faults_converge_without_losing_an_edit(
    store_settings: Settings, sandbox_server: RunningSandbox, control: SandboxControl, monkeypatch: pytest.MonkeyPatch
) -> None:
    crash = CrashAt()
    install(monkeypatch, crash)
    run_state_machine_as_test(
        machine(store_settings, sandbox_server, control, crash),
        settings=settings(
            max_examples=8,
            stateful_step_count=15,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
