"""One fixture per connector, each driving its local CRM over HTTP through the vendor's own client.

``Connector`` is what the contract suite needs of a CRM beyond its adapter: a fresh adapter (no
caches), a lost answer on the next create or update, a person's edit and delete made in the CRM,
and its clock. A new connector joins the suite by adding a builder to ``BUILDERS``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
import pytest_asyncio
from hubspot import HubSpot

from crm_pipeline.crm import CRMAdapter, NotionAdapter
from crm_pipeline.crm.hubspot import HubSpotAdapter
from crm_pipeline.crm.hubspot import RateLimit as HubSpotRateLimit
from crm_pipeline.crm.hubspot import RetryPolicy as HubSpotRetryPolicy
from crm_pipeline.crm.salesforce import RateLimit as SalesforceRateLimit
from crm_pipeline.crm.salesforce import RetryPolicy as SalesforceRetryPolicy
from crm_pipeline.crm.salesforce import SalesforceAdapter
from crm_pipeline.emulation.control_client import ControlClient
from crm_pipeline.hubspot_sandbox import DEFAULT_TOKEN as HUBSPOT_TOKEN
from crm_pipeline.hubspot_sandbox import HubSpotControl, RunningHubSpot
from crm_pipeline.salesforce_sandbox import DEFAULT_TOKEN as SALESFORCE_TOKEN
from crm_pipeline.salesforce_sandbox import HUMAN_USER, RunningSalesforce, SalesforceControl, sandbox_salesforce
from crm_pipeline.sandbox import DEFAULT_TOKEN as NOTION_TOKEN
from crm_pipeline.sandbox import RunningSandbox, SandboxControl
from crm_pipeline_tests.conftest import SALESFORCE_USERNAME, clock_sleep
from crm_pipeline_tests.crm.conftest import CONTACTS_SCHEMA, DEALS_SCHEMA, FAST_RETRY, UNPACED

CLOCK = datetime(2026, 3, 2, 9, 30, 15, tzinfo=UTC)
RESULT_CAP = 200
"""Each local CRM answers at most this many results per query (Notion's query, HubSpot's search,
Salesforce's query page):
small, so the suite reads past the cap with a few hundred records."""


@dataclass
class Connector:
    name: str
    make_adapter: Callable[[], CRMAdapter]
    lose_next_answer: Callable[[str], None]
    """Carry out the next ``create`` or ``update`` of a deal, or ``activity`` appended to one, then
    answer 503 (the answer is lost)."""
    human_rename: Callable[[str, str], None]
    """A person renames the deal (by external id) in the CRM."""
    human_delete: Callable[[str], None]
    """A person deletes the deal in the CRM (to its trash / recycling bin)."""
    advance_clock: Callable[[float], None]
    adapters: list[CRMAdapter] = field(default_factory=list)

    def adapter(self) -> CRMAdapter:
        """A new adapter: nothing cached from an earlier one."""
        adapter = self.make_adapter()
        self.adapters.append(adapter)
        return adapter


def answer_lost(control: ControlClient, requests: Mapping[str, tuple[str, str]]) -> Callable[[str], None]:
    """``Connector.lose_next_answer`` of a local CRM: ``requests`` names the (path, method) of each
    kind of write."""

    def lose(kind: str) -> None:
        path, method = requests[kind]
        control.add_fault("503", path=path, method=method, applied=True)

    return lose


def notion_connector(server: RunningSandbox, control: SandboxControl) -> Connector:
    control.reset()
    control.configure(result_cap=RESULT_CAP)
    control.set_clock(CLOCK)
    deals, contacts = control.seed(
        {
            "databases": [
                {"title": "Deals", "properties": DEALS_SCHEMA},
                {"title": "Contacts", "properties": CONTACTS_SCHEMA},
            ]
        }
    )

    def make() -> CRMAdapter:
        return NotionAdapter(
            NOTION_TOKEN,
            deals["database_id"],
            base_url=server.base_url,
            contacts_data_source_id=contacts["data_source_id"],
            retry=FAST_RETRY,
            rate_limit=UNPACED,
        )

    lose = answer_lost(
        control,
        {
            "create": ("/v1/pages", "POST"),
            "update": ("/v1/pages/*", "PATCH"),
            "activity": ("/v1/blocks/*/children", "PATCH"),
        },
    )

    def rename(page_id: str, name: str) -> None:
        control.human_update_page(page_id, {"properties": {"Deal Name": {"title": [{"text": {"content": name}}]}}})

    return Connector(
        "notion",
        make,
        lose,
        rename,
        lambda page_id: control.human_update_page(page_id, {"in_trash": True}) and None,
        control.advance_clock,
    )


def hubspot_connector(server: RunningHubSpot, control: HubSpotControl) -> Connector:
    control.reset()
    control.configure(search_result_cap=RESULT_CAP)
    control.set_clock(CLOCK)
    sdk = HubSpot(access_token=HUBSPOT_TOKEN, host=server.base_url)

    def make() -> CRMAdapter:
        return HubSpotAdapter(
            HUBSPOT_TOKEN,
            base_url=server.base_url,
            retry=HubSpotRetryPolicy(sleep=clock_sleep(control)),
            rate_limit=HubSpotRateLimit(per_ten_seconds=0, searches_per_second=0),
            search_result_cap=RESULT_CAP,
        )

    lose = answer_lost(
        control,
        {
            "create": ("/crm/v3/objects/deals/batch/upsert", "POST"),
            "update": ("/crm/v3/objects/deals/batch/update", "POST"),
            "activity": ("/crm/v3/objects/notes", "POST"),
        },
    )

    return Connector(
        "hubspot",
        make,
        lose,
        lambda deal_id, name: control.ui_edit("deals", deal_id, {"dealname": name}) and None,
        lambda deal_id: sdk.crm.deals.basic_api.archive(deal_id),
        control.advance_clock,
    )


def salesforce_connector(server: RunningSalesforce, control: SalesforceControl) -> Connector:
    """The local Salesforce as ``salesforce_org`` sets it up, its query pages and the adapter's
    keyset windows both RESULT_CAP rows; a person deletes through their own session."""
    control.configure(query_page_cap=RESULT_CAP)
    control.set_clock(CLOCK)
    control.grant_token("person-session", HUMAN_USER)
    person = sandbox_salesforce(server.base_url, "person-session")

    def make() -> CRMAdapter:
        return SalesforceAdapter(
            SALESFORCE_TOKEN,
            instance_url=server.base_url,
            integration_username=SALESFORCE_USERNAME,
            retry=SalesforceRetryPolicy(sleep=clock_sleep(control)),
            rate_limit=SalesforceRateLimit(per_minute=0),
            page_rows=RESULT_CAP,
        )

    lose = answer_lost(
        control,
        {
            "create": ("*/composite/sobjects/Opportunity/Sync_Key__c", "PATCH"),
            "update": ("*/composite/sobjects", "PATCH"),
            "activity": ("*/sobjects/Task/", "POST"),
        },
    )

    return Connector(
        "salesforce",
        make,
        lose,
        lambda record_id, name: control.person_edit("Opportunity", record_id, {"Name": name}) and None,
        lambda record_id: person.Opportunity.delete(record_id) and None,
        control.advance_clock,
    )


BUILDERS: dict[str, Callable[[pytest.FixtureRequest], Connector]] = {
    "notion": lambda request: notion_connector(
        request.getfixturevalue("sandbox_server"), request.getfixturevalue("control")
    ),
    "hubspot": lambda request: hubspot_connector(
        request.getfixturevalue("hubspot_server"), request.getfixturevalue("hubspot_control")
    ),
    "salesforce": lambda request: salesforce_connector(
        request.getfixturevalue("salesforce_org"), request.getfixturevalue("salesforce_control")
    ),
}


@pytest.fixture(params=list(BUILDERS))
def crm(request: pytest.FixtureRequest) -> Connector:
    return BUILDERS[request.param](request)


@pytest_asyncio.fixture
async def adapter(crm: Connector) -> AsyncIterator[CRMAdapter]:
    adapter = crm.adapter()
    yield adapter
    for made in crm.adapters:
        await made.aclose()
