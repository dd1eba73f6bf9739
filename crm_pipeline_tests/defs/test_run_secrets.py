"""No token or password reaches what Dagster records of a run: events, logs, errors, the run itself.

Failing runs matter most: their errors travel into the event log with messages, causes and stack
traces, and a connection error is where a password would show.
"""

from __future__ import annotations

import dagster as dg
import pytest

from crm_pipeline.defs.assets import notion_pages, postgres_opportunities
from crm_pipeline.defs.resources import DealStoreResource, NotionResource
from crm_pipeline.demo import DEMO_NOTION_DATABASE_ID
from crm_pipeline.sandbox import RunningSandbox

TOKEN = "ntn_Qr8Lm2Xz6Wv4Tb"
PASSWORD = "Pw@Zq7Xk9Vw3Jm"  # random characters: no fragment of them occurs in code or messages


def _everything_recorded(instance: dg.DagsterInstance, run_id: str) -> str:
    run = instance.get_run_by_id(run_id)
    assert run is not None
    records = [entry.to_json() for entry in instance.all_logs(run_id)]
    return "\n".join([dg.serialize_value(run), *records])


def _assert_secret_absent(recorded: str, secret: str) -> None:
    fragments = {secret[start : start + 5] for start in range(len(secret) - 4)}
    leaked = sorted(fragment for fragment in fragments if fragment in recorded)
    assert not leaked, f"fragments of a secret in the run's records: {leaked}"


def test_a_rejected_notion_token_leaves_no_trace_of_itself(sandbox_server: RunningSandbox) -> None:
    notion = NotionResource(token=TOKEN, database_id=DEMO_NOTION_DATABASE_ID, base_url=sandbox_server.base_url)
    with dg.instance_for_test() as instance:
        result = dg.materialize([notion_pages], resources={"notion": notion}, instance=instance, raise_on_error=False)
        assert not result.success  # the sandbox refuses the unknown token: the error is recorded
        recorded = _everything_recorded(instance, result.run_id)
    assert "API token is invalid" in recorded
    _assert_secret_absent(recorded, TOKEN)


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("postgresql://crm:Pw%40Zq7Xk9Vw3Jm@127.0.0.1:1/crm", "cannot connect to PostgreSQL at 127.0.0.1:1/crm"),
        # An unencoded '@' in the password: the URL is refused without quoting any of it.
        (f"postgresql://crm:{PASSWORD}@127.0.0.1:1/crm", "more than one unencoded '@'"),
    ],
    ids=["unreachable", "malformed"],
)
def test_a_database_that_cannot_be_opened_leaves_no_trace_of_its_password(url: str, said: str) -> None:
    deal_store = DealStoreResource(tenant_id="demo", database_url=url, app_database_url=url)
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [postgres_opportunities], resources={"deal_store": deal_store}, instance=instance, raise_on_error=False
        )
        assert not result.success
        recorded = _everything_recorded(instance, result.run_id)
    assert said in recorded
    _assert_secret_absent(recorded, PASSWORD)
