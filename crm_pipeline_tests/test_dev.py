"""`crm-pipeline dev`: what it hands to Dagster, the sandbox it serves, and how it stops."""

from __future__ import annotations

import asyncio
import math
import os
import re
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable
from pathlib import Path
from uuid import uuid4

import dagster as dg
import httpx
import pytest
from dagster_graphql import DagsterGraphQLClient

from crm_pipeline.defs.dagster_home import add_tenant_partitions
from crm_pipeline.defs.sweep import SHARD_TAG, SWEEP_JOB
from crm_pipeline.demo import (
    DEMO_NOTION_DATA_SOURCE_ID,
    DEMO_NOTION_DATABASE_ID,
    HUBSPOT_DEMO_TENANT,
    SALESFORCE_DEMO_TENANT,
    demo_notion_seed,
)
from crm_pipeline.dev import _hubspot, _notion, _prepare, _salesforce, demo_tenants, ready_banner
from crm_pipeline.hubspot_sandbox import HubSpotControl
from crm_pipeline.salesforce_sandbox import SalesforceControl
from crm_pipeline.sandbox import DEFAULT_TOKEN, NOTION_VERSION, SandboxConfig, SandboxControl, serve_in_thread
from crm_pipeline.settings import PROJECT_ROOT, Settings
from crm_pipeline.store import Database
from crm_pipeline.tenants import TenantConnection, TenantRegistry, sandbox_notion, save_tenants
from crm_pipeline_tests.dagster_processes import (
    FINISHED,
    free_port,
    start_in_own_group,
    stop_group,
    wait_for_code_location,
)


def test_a_configured_notion_is_handed_to_dagster(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, notion_token="ntn_real", notion_database_id="db-1")
    with _notion(settings) as environment:
        assert environment == {"CRM_PIPELINE_NOTION_TOKEN": "ntn_real", "CRM_PIPELINE_NOTION_DATABASE_ID": "db-1"}
    assert not (tmp_path / "sandbox-state.json").exists()  # no sandbox was served


def test_a_token_without_a_database_is_refused_up_front(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, notion_token="ntn_real")
    with pytest.raises(SystemExit, match="set CRM_PIPELINE_NOTION_DATABASE_ID"), _notion(settings):
        pass


def test_without_a_notion_the_sandbox_serves_the_demo_database_and_keeps_it(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, sandbox_port=0)
    with _notion(settings) as environment:
        # No token handed on: a connection without one finds the sandbox on this port.
        [port] = environment.values()
        token, database_id, base_url = sandbox_notion(int(port), None, None)
        assert (token, database_id) == (DEFAULT_TOKEN, DEMO_NOTION_DATABASE_ID)
        response = httpx.get(
            f"{base_url}/v1/databases/{database_id}",
            headers={"Authorization": f"Bearer {token}", "Notion-Version": NOTION_VERSION},
        )
        assert response.status_code == 200
        assert [source["id"] for source in response.json()["data_sources"]] == [DEMO_NOTION_DATA_SOURCE_ID]
    assert list(environment) == ["CRM_PIPELINE_SANDBOX_PORT"]
    assert (tmp_path / "sandbox-state.json").exists()


def test_a_workspace_saved_without_the_demo_database_gets_it(tmp_path: Path) -> None:
    """A sandbox workspace saved by an older demo, whose Deals database had other ids."""
    older = demo_notion_seed()
    older["databases"][0] |= {"id": str(uuid4()), "data_source_id": str(uuid4())}
    with (
        serve_in_thread(SandboxConfig(state_file=tmp_path / "sandbox-state.json")) as sandbox,
        SandboxControl(sandbox.base_url) as control,
    ):
        control.seed(older)
    settings = Settings(data_dir=tmp_path, sandbox_port=0)
    with _notion(settings) as environment:
        response = httpx.get(
            f"http://127.0.0.1:{environment['CRM_PIPELINE_SANDBOX_PORT']}/v1/databases/{DEMO_NOTION_DATABASE_ID}",
            headers={"Authorization": f"Bearer {DEFAULT_TOKEN}", "Notion-Version": NOTION_VERSION},
        )
    assert response.status_code == 200


HUBSPOT_TEAM_DEALS = 6
"""Deals in the demo's local HubSpot before any sync: 3 of the agent's, imported, and 3 of the team's."""


async def test_the_demo_registers_the_demo_tenants_in_an_empty_registry_and_never_replaces_one(
    empty_store: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CRM_PIPELINE_HUBSPOT_TOKEN", raising=False)
    monkeypatch.delenv("CRM_PIPELINE_SALESFORCE_TOKEN", raising=False)
    settings = empty_store.model_copy(update={"data_dir": tmp_path, "tenant_id": "demo"})
    async with await Database.open(empty_store) as database:
        registry = TenantRegistry(database)
        assert await demo_tenants(database, settings) == ["demo", HUBSPOT_DEMO_TENANT, SALESFORCE_DEMO_TENANT]
        demo_connections = [
            TenantConnection(tenant_id="demo"),
            TenantConnection(tenant_id=HUBSPOT_DEMO_TENANT, connector="hubspot"),
            TenantConnection(tenant_id=SALESFORCE_DEMO_TENANT, connector="salesforce"),
        ]
        assert await registry.connections() == demo_connections
        await registry.set_active("demo", False)
        assert await demo_tenants(database, settings) == []
        assert [t.active for t in await registry.connections()] == [False, True, True]
        # An earlier demo's tenants file, with an operator's changes, is what an empty registry takes.
        for tenant in demo_connections:
            await registry.remove(tenant.tenant_id)
        save_tenants(tmp_path / "tenants.toml", [TenantConnection(tenant_id="acme", database_id="db-1")])
        assert await demo_tenants(database, settings) == ["acme"]
        assert [t.tenant_id for t in await registry.connections()] == ["acme"]


@pytest.mark.parametrize(
    ("tokens", "registered"),
    [
        (["CRM_PIPELINE_HUBSPOT_TOKEN"], ["demo", SALESFORCE_DEMO_TENANT]),
        (["CRM_PIPELINE_SALESFORCE_TOKEN"], ["demo", HUBSPOT_DEMO_TENANT]),
        (["CRM_PIPELINE_HUBSPOT_TOKEN", "CRM_PIPELINE_SALESFORCE_TOKEN"], []),  # the settings' tenant, by default
    ],
    ids=["hubspot", "salesforce", "both"],
)
def test_with_a_connectors_token_no_demo_goes_to_its_crm(
    tokens: list[str], registered: list[str], empty_store: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("CRM_PIPELINE_HUBSPOT_TOKEN", "CRM_PIPELINE_SALESFORCE_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name in tokens:
        monkeypatch.setenv(name, "a-real-token")
    settings = Settings(data_dir=tmp_path, hubspot_sandbox_port=0, salesforce_sandbox_port=0)

    async def register() -> list[str]:
        async with await Database.open(empty_store) as database:
            return await demo_tenants(database, settings)

    assert asyncio.run(register()) == registered
    with _hubspot(settings, seed=False) as hubspot, _salesforce(settings, seed=False) as salesforce:
        served = [*hubspot, *salesforce]
    assert served == [
        variable
        for token, variable in (
            ("CRM_PIPELINE_HUBSPOT_TOKEN", "CRM_PIPELINE_HUBSPOT_SANDBOX_PORT"),
            ("CRM_PIPELINE_SALESFORCE_TOKEN", "CRM_PIPELINE_SALESFORCE_SANDBOX_PORT"),
        )
        if token not in tokens
    ]


def test_the_local_hubspot_is_seeded_once_and_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRM_PIPELINE_HUBSPOT_TOKEN", raising=False)
    settings = Settings(data_dir=tmp_path, hubspot_sandbox_port=0)
    with _hubspot(settings, seed=True) as environment:
        base_url = f"http://127.0.0.1:{environment['CRM_PIPELINE_HUBSPOT_SANDBOX_PORT']}"
        with HubSpotControl(base_url) as control:
            records = control.all_records("deals")
            assert len(records) == HUBSPOT_TEAM_DEALS
            control.ui_edit("deals", records[0]["id"], {"amount": "1"})  # a person's edit, kept
    with _hubspot(settings, seed=True) as environment:
        base_url = f"http://127.0.0.1:{environment['CRM_PIPELINE_HUBSPOT_SANDBOX_PORT']}"
        with HubSpotControl(base_url) as control:
            again = control.all_records("deals")
    assert len(again) == HUBSPOT_TEAM_DEALS and again[0]["properties"]["amount"] == "1"


SALESFORCE_TEAM_DEALS = 6
"""Opportunities in the demo's local Salesforce before any sync: 4 of the agent's, imported, and 2 of the team's."""


def test_the_local_salesforce_is_set_up_seeded_once_and_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRM_PIPELINE_SALESFORCE_TOKEN", raising=False)
    settings = Settings(data_dir=tmp_path, salesforce_sandbox_port=0)
    with _salesforce(settings, seed=True) as environment:
        base_url = f"http://127.0.0.1:{environment['CRM_PIPELINE_SALESFORCE_SANDBOX_PORT']}"
        with SalesforceControl(base_url) as control:
            records = control.all_records("Opportunity")
            assert len(records) == SALESFORCE_TEAM_DEALS
            control.person_edit("Opportunity", records[0]["Id"], {"Amount": 1})  # a person's edit, kept
    with _salesforce(settings, seed=True) as environment:
        base_url = f"http://127.0.0.1:{environment['CRM_PIPELINE_SALESFORCE_SANDBOX_PORT']}"
        with SalesforceControl(base_url) as control:
            again = control.all_records("Opportunity")
            fields = {field["name"] for field in control.setup()["custom_fields"]}
    assert len(again) == SALESFORCE_TEAM_DEALS and again[0]["Amount"] == 1
    assert {"Product_Line__c", "Manual_Tags__c", "Override_Stage__c"} <= fields  # the mapped fields, kept


def test_the_ready_banner_names_each_local_api_served(tmp_path: Path) -> None:
    local_apis = {
        "CRM_PIPELINE_SANDBOX_PORT": "8765",
        "CRM_PIPELINE_HUBSPOT_SANDBOX_PORT": "8766",
        "CRM_PIPELINE_SALESFORCE_SANDBOX_PORT": "8767",
    }
    banner = ready_banner("http://127.0.0.1:3000", local_apis, tmp_path / "dagster.log").splitlines()
    assert "  local HubSpot     http://127.0.0.1:8766" in banner
    assert "  local Salesforce  http://127.0.0.1:8767" in banner
    only_notion = ready_banner("http://127.0.0.1:3000", {"CRM_PIPELINE_SANDBOX_PORT": "8765"}, tmp_path)
    assert "local Salesforce" not in only_notion and "sandbox Notion" in only_notion


GENEROUS_WAIT = 120
"""Seconds a bounded wait may take on a loaded machine; far below the 900 s the children sleep, so
a child still alive at the end was not stopped."""

SUPERVISOR = """
import sys
import time
from collections.abc import Callable
from pathlib import Path
from crm_pipeline.dagster_process import Interrupts, ProcessTree

# The child starts a grandchild, as dagster dev starts its webserver and daemon.
child = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(900)']); time.sleep(900)"
interrupts = Interrupts()
tree = ProcessTree([sys.executable, "-c", child], cwd=Path("."), env={"PATH": ""}, log_path=Path("/dev/null"))
print("ready", flush=True)
while not interrupts.stop:
    tree.refresh()
    time.sleep(0.05)
sys.exit(tree.stop(interrupts, wait_seconds=1))  # the grandchild outstays any wait: it is killed
"""


@pytest.mark.skipif(sys.platform == "win32", reason="process groups")
def test_sigterm_stops_the_whole_process_group() -> None:
    supervisor = subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR],
        stdout=subprocess.PIPE,
        text=True,
        # As from a non-interactive shell: SIGINT ignored, which dagster dev turns into ignoring SIGTERM.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    assert supervisor.stdout is not None and supervisor.stdout.readline().strip() == "ready"
    deadline = time.monotonic() + GENEROUS_WAIT
    while len(_descendants(supervisor.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    family = _descendants(supervisor.pid)
    assert len(family) == 2

    supervisor.send_signal(signal.SIGTERM)
    supervisor.wait(timeout=GENEROUS_WAIT)
    deadline = time.monotonic() + GENEROUS_WAIT
    while any(_alive(pid) for pid in family) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in family)


def _descendants(pid: int) -> list[int]:
    children = [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return children + [grandchild for child in children for grandchild in _descendants(child)]


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def _start_crm_pipeline_dev(data_dir: Path, ports: tuple[int, int, int], console: Path) -> subprocess.Popen[bytes]:
    """`crm-pipeline dev` on the embedded PostgreSQL of ``data_dir`` and the UI, sandbox Notion and
    local HubSpot ``ports``, its console (stdout and stderr) appended to ``console``."""
    ui_port, sandbox_port, hubspot_port = ports
    environment = os.environ | {
        "CRM_PIPELINE_DATA_DIR": str(data_dir),
        "CRM_PIPELINE_SANDBOX_PORT": str(sandbox_port),
        "CRM_PIPELINE_HUBSPOT_SANDBOX_PORT": str(hubspot_port),
    }
    for external in ("CRM_PIPELINE_DATABASE_URL", "CRM_PIPELINE_APP_DATABASE_URL", "CRM_PIPELINE_HUBSPOT_TOKEN"):
        environment.pop(external, None)
    with console.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "crm_pipeline.cli", "dev", "--port", str(ui_port)],
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


RUNS = "{ runsOrError { ... on Runs { results { runId status creationTime } } } }"
HANG_SECONDS = 5
"""How long each CRM holds a request before answering 504: the connectors try each request 6
times, so a run stays in flight for half a minute at least, far past the moment the test stops it,
while a held request ends soon after the stop (the HubSpot client cannot be interrupted mid-request,
and a local API's server waits for its held requests when it stops)."""


def _run_statuses(graphql_url: str, created_before: float = math.inf) -> dict[str, str]:
    """Each run's status by its id (the runs created before ``created_before``, a Unix time)."""
    answer = httpx.post(graphql_url, json={"query": RUNS}, timeout=10).json()
    runs = answer["data"]["runsOrError"]["results"]
    return {run["runId"]: run["status"] for run in runs if run["creationTime"] < created_before}


def _wait_for(what: str, check: Callable[[], bool], dev: subprocess.Popen[bytes], console: Path) -> None:
    deadline = time.monotonic() + GENEROUS_WAIT
    while not check():
        assert dev.poll() is None and time.monotonic() < deadline, f"{what}:\n{console.read_text()[-3000:]}"
        time.sleep(0.5)


BANNER = re.compile(r"crm-pipeline dev is ready.*\n(?:  .*\n)+")


def _banner(dev: subprocess.Popen[bytes], console: Path) -> str:
    """The ready banner, once `crm-pipeline dev` has printed it (it may see the code location
    loaded a moment after a test does)."""
    _wait_for("the ready banner", lambda: len(BANNER.findall(console.read_text())) == 1, dev, console)
    return BANNER.findall(console.read_text())[0]


def _launch_sync_runs(client: DagsterGraphQLClient) -> list[str]:
    """The sweep run of both demo tenants, launched through the webserver as the schedule's tick
    requests it (what `sync_every_minute` does, without waiting for its minute). A tick's own
    sweep running beside it leaves each tenant to whichever pass holds it first."""
    return [
        client.submit_job_execution(
            SWEEP_JOB,
            run_config={"ops": {"sync_tenants": {"config": {"shard": 0, "shards": 1}}}},
            tags={SHARD_TAG: "0/1"},
        )
    ]


def _stop_at_once(dev: subprocess.Popen[bytes]) -> None:
    """A test that failed midway: two SIGINTs (apart: signals arriving together count once), so
    nothing of Dagster outlives it."""
    if dev.poll() is None:
        dev.send_signal(signal.SIGINT)
        time.sleep(0.5)
        dev.send_signal(signal.SIGINT)
        dev.wait(timeout=GENEROUS_WAIT)


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as a server restarting binds
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.mark.long
@pytest.mark.skipif(sys.platform == "win32", reason="signals")
def test_ctrl_c_with_runs_in_flight_cancels_them_stops_everything_and_the_next_start_syncs(tmp_path: Path) -> None:
    """The README's main command, end to end, in a data directory of its own: the first start
    seeds both demo CRMs and serves the code location. Then the worst moment to stop: SIGINT right
    after both tenants' runs started (as a tick launches them), each held in flight by its CRM (a
    hang fault on every API request). The runs end CANCELED, no process of Dagster's tree, no port
    and no PostgreSQL is left, and the console has no traceback. The next start is quiet (the ready
    banner with working addresses; no step events, no warnings: those go to Dagster's log), syncs,
    and stops as cleanly on SIGTERM."""
    ui_port, sandbox_port, hubspot_port = ports = free_port(), free_port(), free_port()
    graphql = f"http://127.0.0.1:{ui_port}/graphql"
    client = DagsterGraphQLClient("127.0.0.1", port_number=ui_port)
    first, second = tmp_path / "first-console.log", tmp_path / "second-console.log"
    dev = _start_crm_pipeline_dev(tmp_path, ports, first)
    try:
        location = wait_for_code_location(graphql, dev)
        assert location == {"name": "crm_pipeline", "loadStatus": "LOADED"}, first.read_text()[-3000:]
        deals = httpx.get(
            f"http://127.0.0.1:{sandbox_port}/v1/databases/{DEMO_NOTION_DATABASE_ID}",
            headers={"Authorization": f"Bearer {DEFAULT_TOKEN}", "Notion-Version": NOTION_VERSION},
        )
        assert deals.status_code == 200
        edit_page = httpx.get(f"http://127.0.0.1:{sandbox_port}/ui/")
        assert edit_page.status_code == 200 and f"data_sources/{DEMO_NOTION_DATA_SOURCE_ID}" in edit_page.text
        with HubSpotControl(f"http://127.0.0.1:{hubspot_port}") as hubspot:
            assert len(hubspot.all_records("deals")) == HUBSPOT_TEAM_DEALS
        with (
            SandboxControl(f"http://127.0.0.1:{sandbox_port}") as notion,
            HubSpotControl(f"http://127.0.0.1:{hubspot_port}") as hubspot,
        ):
            notion.add_fault("hang", hang_seconds=HANG_SECONDS, count=1000)
            hubspot.add_fault("hang", hang_seconds=HANG_SECONDS, count=1000)
        interrupted = _launch_sync_runs(client)
        _wait_for(
            "the sweep run started",
            lambda: all(_run_statuses(graphql)[run_id] == "STARTED" for run_id in interrupted),
            dev,
            first,
        )
        family = _descendants(dev.pid)
        dev.send_signal(signal.SIGINT)
        exit_code = dev.wait(timeout=GENEROUS_WAIT)
    finally:
        _stop_at_once(dev)
    console = first.read_text()
    assert exit_code == 0, console[-3000:]
    assert "demo deals for tenant 'demo'" in console and "demo deals for tenant 'demo-hubspot'" in console
    assert not [pid for pid in family if _alive(pid)], console[-3000:]
    assert all(_port_is_free(port) for port in ports)
    assert not (tmp_path / "postgres" / "postmaster.pid").exists()  # the embedded server stopped too
    assert re.search(r"\d+ run\(s\) in flight canceled", console) and "without waiting" not in console, console
    assert "Traceback" not in console, console

    restarted = time.time()
    dev = _start_crm_pipeline_dev(tmp_path, ports, second)
    try:
        assert wait_for_code_location(graphql, dev) is not None, second.read_text()[-3000:]
        before = _run_statuses(graphql, created_before=restarted)  # the new start's own runs aside
        assert {before[run_id] for run_id in interrupted} == {"CANCELED"}
        assert set(before.values()) <= {"CANCELED", "SUCCESS"}, before
        synced = _launch_sync_runs(client)
        _wait_for(
            "the runs finished",
            lambda: all(dg.DagsterRunStatus(_run_statuses(graphql)[run_id]) in FINISHED for run_id in synced),
            dev,
            second,
        )
        dagster_log = tmp_path / "dagster" / "dagster.log"
        assert {_run_statuses(graphql)[run_id] for run_id in synced} == {"SUCCESS"}, dagster_log.read_text()[-3000:]
        assert "FAILURE" not in _run_statuses(graphql).values()
        banner = _banner(dev, second)
        console = second.read_text()  # of the start: pgserver may have its say on the way out
        assert (
            f"http://127.0.0.1:{ui_port}\n" in banner and httpx.get(f"http://127.0.0.1:{ui_port}/").status_code == 200
        )
        page = f"http://127.0.0.1:{sandbox_port}/ui/"
        assert page in banner and httpx.get(page).status_code == 200
        assert f"http://127.0.0.1:{hubspot_port}\n" in banner
        with HubSpotControl(f"http://127.0.0.1:{hubspot_port}") as hubspot:
            assert hubspot.all_records("deals")
        assert f"{dagster_log}\n" in banner and "STEP_START" in dagster_log.read_text()  # the step events went there
        assert "STEP_START" not in console and "DEBUG" not in console, console
        assert not re.search(r"Warning|WARNING|Traceback", console), console
        family = _descendants(dev.pid)
        dev.send_signal(signal.SIGTERM)  # as a service manager stops it
        assert dev.wait(timeout=GENEROUS_WAIT) == 0
        assert not [pid for pid in family if _alive(pid)]
    finally:
        _stop_at_once(dev)


@pytest.mark.long
@pytest.mark.parametrize(
    "command",
    [
        ["dagster", "asset", "materialize", "-m", "crm_pipeline.definitions", "--select", "*", "--partition"],
        ["dg", "launch", "--assets", "*", "--partition"],
    ],
    ids=["dagster asset materialize", "dg launch"],
)
def test_dagster_commands_from_the_checkout_need_no_settings(command: list[str], tmp_path: Path) -> None:
    """The whole sync for the demo tenant, run in the checkout with nothing but PATH, HOME and an
    instance holding the tenant's partition (as `crm-pipeline dagster-home` leaves it): the
    embedded deal store and the sandbox Notion, found at run time."""
    settings = Settings(data_dir=tmp_path, database_url=None, app_database_url=None, sandbox_port=free_port())
    asyncio.run(_prepare(settings, seed=True))  # the demo tenant, as `crm-pipeline dev` leaves it
    dagster_home = tmp_path / "dagster"
    assert add_tenant_partitions(settings, dagster_home) == [
        settings.tenant_id,
        HUBSPOT_DEMO_TENANT,
        SALESFORCE_DEMO_TENANT,
    ]  # dagster-home
    environment = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "DAGSTER_HOME": str(dagster_home),
        "CRM_PIPELINE_DATA_DIR": str(tmp_path),
        "CRM_PIPELINE_SANDBOX_PORT": str(settings.sandbox_port),
    }
    executable = str(Path(sys.executable).with_name(command[0]))
    with _notion(settings):  # the sandbox `crm-pipeline dev` serves
        run = subprocess.run(
            [executable, *command[1:], settings.tenant_id],
            cwd=PROJECT_ROOT,
            env=environment,
            capture_output=True,
            text=True,
            timeout=180,
        )
    assert run.returncode == 0, run.stderr[-3000:]
    for asset in ("postgres_opportunities", "notion_pages", "reconciled_deals", "outbound_sync", "inbound_sync"):
        assert f"ASSET_MATERIALIZATION - Materialized value {asset}." in run.stderr
    assert "RUN_SUCCESS" in run.stderr


@pytest.mark.long
@pytest.mark.skipif(sys.platform == "win32", reason="signals")
@pytest.mark.parametrize("command", [["dg", "dev"], ["dagster", "dev"]], ids=["dg dev", "dagster dev"])
def test_dagster_dev_from_the_checkout_serves_and_stops_on_sigint(command: list[str], tmp_path: Path) -> None:
    """`dg dev` and `dagster dev` as run in the checkout, with nothing but PATH and HOME: the
    code location loads in a temporary instance configured by the checkout's dagster.yaml, and
    one SIGINT to the command (Ctrl-C, or a supervisor stopping it) stops every process it started."""
    port = free_port()
    environment = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    log = (tmp_path / "dev.log").open("wb")
    executable = str(Path(sys.executable).with_name(command[0]))
    dev = start_in_own_group(
        [executable, *command[1:], "-p", str(port)],
        cwd=PROJECT_ROOT,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        location = wait_for_code_location(f"http://127.0.0.1:{port}/graphql", dev)
        assert location == {"name": "crm_pipeline", "loadStatus": "LOADED"}, (tmp_path / "dev.log").read_text()[-3000:]
        family = _descendants(dev.pid)
        assert len(family) >= 3  # webserver, daemon, code server (and what they start)
        dev.send_signal(signal.SIGINT)
        exit_code = dev.wait(timeout=GENEROUS_WAIT)
    finally:
        if dev.poll() is None:
            stop_group(dev)
        log.close()
    assert exit_code == 0, (tmp_path / "dev.log").read_text()[-3000:]
    deadline = time.monotonic() + GENEROUS_WAIT
    while any(_alive(pid) for pid in family) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in family)


@pytest.mark.long
def test_what_crm_pipeline_dev_sets_up_syncs_every_demo_tenant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo tenants, the local APIs and the environment `crm-pipeline dev` hands Dagster:
    `dagster asset materialize` of each demo tenant's partition syncs it with its own CRM (what the
    schedule's runs do, without waiting for its ticks)."""
    for token in ("CRM_PIPELINE_NOTION_TOKEN", "CRM_PIPELINE_HUBSPOT_TOKEN", "CRM_PIPELINE_SALESFORCE_TOKEN"):
        monkeypatch.delenv(token, raising=False)
    settings = Settings(
        data_dir=tmp_path,
        database_url=None,
        app_database_url=None,
        sandbox_port=0,
        hubspot_sandbox_port=0,
        salesforce_sandbox_port=0,
    )
    asyncio.run(_prepare(settings, seed=True))
    dagster_home = tmp_path / "dagster"
    tenants = add_tenant_partitions(settings, dagster_home)  # `crm-pipeline dagster-home`
    environment = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "DAGSTER_HOME": str(dagster_home),
        "CRM_PIPELINE_DATA_DIR": str(tmp_path),
    }
    dagster = str(Path(sys.executable).with_name("dagster"))
    command = [dagster, "asset", "materialize", "-m", "crm_pipeline.definitions", "--select", "*"]
    with (
        _notion(settings) as notion,
        _hubspot(settings, seed=True) as hubspot,
        _salesforce(settings, seed=True) as salesforce,
    ):
        for tenant in tenants:
            run = subprocess.run(
                [*command, "--partition", tenant],
                cwd=PROJECT_ROOT,
                env=environment | notion | hubspot | salesforce,
                capture_output=True,
                text=True,
                timeout=180,
            )
            assert run.returncode == 0 and "RUN_SUCCESS" in run.stderr, run.stderr[-3000:]
        with SandboxControl(f"http://127.0.0.1:{notion['CRM_PIPELINE_SANDBOX_PORT']}") as control:
            assert len(control.all_pages(DEMO_NOTION_DATA_SOURCE_ID)) == 24 + 8  # the agent's and the team's
        with HubSpotControl(f"http://127.0.0.1:{hubspot['CRM_PIPELINE_HUBSPOT_SANDBOX_PORT']}") as control:
            assert len(control.all_records("deals")) == 8 + 3
        with SalesforceControl(f"http://127.0.0.1:{salesforce['CRM_PIPELINE_SALESFORCE_SANDBOX_PORT']}") as control:
            assert len(control.all_records("Opportunity")) == 6 + 2
    assert tenants == ["demo", HUBSPOT_DEMO_TENANT, SALESFORCE_DEMO_TENANT]


@pytest.mark.long
def test_crm_pipeline_dev_runs_from_the_built_wheel_in_an_empty_folder(tmp_path: Path) -> None:
    """Installed, the package has no checkout beside it: `crm-pipeline dev` finds the instance
    settings and workspace the wheel carries and keeps its state in the working directory.

    The fresh virtualenv gets the wheel alone; its dependencies come from this environment's
    site-packages through a .pth file (the same packages a `pip install` of the wheel would fetch)."""
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(PROJECT_ROOT), "--no-deps", "-q", "-w", str(tmp_path / "dist")],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert build.returncode == 0, build.stderr
    [wheel] = (tmp_path / "dist").glob("crm_pipeline-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    [site_packages] = (venv / "lib").glob("python3.*/site-packages")
    (site_packages / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q", "--no-deps"]
    subprocess.run([*pip, str(wheel)], check=True, timeout=120)
    folder = tmp_path / "empty"
    folder.mkdir()
    ui_port, sandbox_port, hubspot_port, salesforce_port = free_port(), free_port(), free_port(), free_port()
    environment = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "CRM_PIPELINE_SANDBOX_PORT": str(sandbox_port),
        "CRM_PIPELINE_HUBSPOT_SANDBOX_PORT": str(hubspot_port),
        "CRM_PIPELINE_SALESFORCE_SANDBOX_PORT": str(salesforce_port),
    }
    log = (tmp_path / "dev.log").open("w")
    dev = subprocess.Popen(
        [str(venv / "bin" / "crm-pipeline"), "dev", "--port", str(ui_port), "--agent-every", "0"],
        cwd=folder,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        location = wait_for_code_location(f"http://127.0.0.1:{ui_port}/graphql", dev)
        assert location == {"name": "crm_pipeline", "loadStatus": "LOADED"}, (tmp_path / "dev.log").read_text()[-3000:]
    finally:
        dev.send_signal(signal.SIGTERM)
        exit_code = dev.wait(timeout=60)
        log.close()
    assert exit_code == 0, (tmp_path / "dev.log").read_text()[-3000:]
    assert (folder / ".crm_pipeline" / "dagster" / "dagster.yaml").is_file()
    assert (folder / ".crm_pipeline" / "sandbox-state.json").is_file()
    assert (folder / ".crm_pipeline" / "hubspot-state.json").is_file()  # seeded from the wheel's demo data
    assert (folder / ".crm_pipeline" / "salesforce-state.json").is_file()
    # The wheel's migrations made the registry; the demo's three tenants are in it.
    registered = asyncio.run(_registered(Settings(data_dir=folder / ".crm_pipeline")))
    assert [tenant.connector for tenant in registered] == ["notion", "hubspot", "salesforce"]


async def _registered(settings: Settings) -> list[TenantConnection]:
    """The tenant registry of the deal store the settings name."""
    async with await Database.open(settings) as database:
        return await TenantRegistry(database).connections()
