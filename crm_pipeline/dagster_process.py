"""`dagster dev` under `crm-pipeline dev`: its whole process tree, its output in a log file, and a
stop that leaves neither a process nor a run behind.

`dagster dev` starts the webserver, the daemon and a code server; the default run launcher starts
each run as a subprocess of the code server. A terminal's Ctrl-C reaches all of them at once, so a
run in flight dies "unexpectedly" (Dagster marks it FAILURE), and `dagster dev` exits before its
code server has. Here the first SIGINT or SIGTERM asks Dagster to terminate every run in flight,
the way the UI's Terminate does (the run coordinator's `cancel_run`: a queued run is canceled, a
started one gets the run launcher's termination request and ends CANCELED), waits for them, and
only then interrupts `dagster dev` and waits for every process of its tree (a canceled run's
process may take until its CRM request times out to exit). A second signal hurries: the runs left
are marked CANCELED at once (the UI's force termination) and the tree is killed. Either way the
caller goes on (stopping the emulators and PostgreSQL) only once no process of the tree is left.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import httpx
import psutil

if TYPE_CHECKING:
    import dagster as dg

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.5
RUNS_STOP_SECONDS = 60.0
"""How long runs get to end CANCELED before they are marked so and their processes stopped."""
TREE_STOP_SECONDS = 60.0
"""How long Dagster's processes get to exit after the interrupt before they are killed."""

LOCATIONS_QUERY = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"


class Interrupts:
    """SIGINT and SIGTERM counted, never raised (no traceback; the stop runs in the open): the
    first asks for a clean stop, the second for a quick one. Installed before Dagster is started,
    so it starts with default signal handling even where this process inherited SIGINT ignored (a
    background job of a non-interactive shell), which `dagster dev` would turn into ignoring SIGTERM."""

    def __init__(self) -> None:
        self.count = 0
        signal.signal(signal.SIGINT, self._received)
        signal.signal(signal.SIGTERM, self._received)

    def _received(self, _signum: int, _frame: FrameType | None) -> None:
        self.count += 1  # nothing more: the main thread may be holding a lock (logging's) just now

    @property
    def stop(self) -> bool:
        return self.count >= 1

    @property
    def hurry(self) -> bool:
        return self.count >= 2


class ProcessTree:
    """A process started in a session of its own, and every process it starts, remembered as they
    appear (``refresh``): one re-parented when its parent exits (a code server outliving `dagster
    dev`) is still waited for."""

    def __init__(self, command: list[str], *, cwd: Path, env: dict[str, str], log_path: Path) -> None:
        with log_path.open("ab") as log:
            self.root = subprocess.Popen(
                command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._known: dict[int, psutil.Process] = {}
        self.refresh()

    def refresh(self) -> None:
        """Remember the root's descendants now (one scan of the process table); forget the dead."""
        try:
            root = psutil.Process(self.root.pid)
            for process in [root, *root.children(recursive=True)]:
                self._known.setdefault(process.pid, process)
        except psutil.NoSuchProcess:
            pass  # the root has exited: its orphans are already known
        self._known = {pid: process for pid, process in self._known.items() if _running(process)}

    def alive(self) -> list[psutil.Process]:
        self.root.poll()  # reaps the root once it exits; the others are reaped by their parents or init
        self.refresh()
        return list(self._known.values())

    def stop(self, interrupts: Interrupts, wait_seconds: float = TREE_STOP_SECONDS) -> int:
        """Interrupt the root, as Ctrl-C would: `dagster dev` stops its webserver and daemon and
        asks its code servers to shut down, which each does once its runs' processes have ended.
        Wait for every process of the tree; kill what is left past ``wait_seconds`` or at once on
        a second signal. Returns the root's exit code."""
        self.refresh()
        try:
            self.root.send_signal(signal.SIGINT)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + wait_seconds
        while self.alive() and not interrupts.hurry and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
        if left := self.alive():
            if not interrupts.hurry:
                logger.warning("killing what of Dagster did not stop: %s", ", ".join(_describe(p) for p in left))
            for process in left:
                _kill(process)
            psutil.wait_procs(left, timeout=wait_seconds)
        return self.root.wait()


def _running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _kill(process: psutil.Process) -> None:
    try:
        process.kill()
    except psutil.NoSuchProcess:
        pass


def _describe(process: psutil.Process) -> str:
    try:
        return f"{process.pid} ({' '.join(process.cmdline()[1:4])})"
    except psutil.Error:
        return str(process.pid)


def code_locations(graphql_url: str) -> list[dict[str, str]]:
    """The code locations the webserver lists (name and load status); none while it is not up."""
    try:
        answer = httpx.post(graphql_url, json={"query": LOCATIONS_QUERY}, timeout=5).json()
        return [dict(entry) for entry in answer["data"]["workspaceOrError"]["locationEntries"]]
    except (httpx.HTTPError, KeyError, TypeError, ValueError):
        return []


def wait_until_loaded(graphql_url: str, tree: ProcessTree, interrupts: Interrupts) -> bool:
    """Wait until the webserver lists a loaded code location: True; False if Dagster exits or a
    stop is asked for first."""
    while tree.root.poll() is None and not interrupts.stop:
        if any(entry["loadStatus"] == "LOADED" for entry in code_locations(graphql_url)):
            return True
        time.sleep(POLL_SECONDS)
    return False


def cancel_runs(dagster_home: Path, interrupts: Interrupts) -> None:
    """Terminate every run in flight through Dagster's own path and wait until each has ended;
    runs launched meanwhile (a tick, the queue) are terminated too. Past the wait, or on a second
    signal, the runs left are marked CANCELED at once, as the UI's force termination does."""
    import dagster as dg  # here: imported only on the way out

    cancelable = {dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTED}  # what the UI's Terminate accepts
    launching = {dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING}  # cancelable once started
    in_flight = [*cancelable, *launching, dg.DagsterRunStatus.CANCELING]
    asked: set[str] = set()
    deadline = time.monotonic() + RUNS_STOP_SECONDS
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        while runs := instance.get_runs(dg.RunsFilter(statuses=in_flight)):
            if interrupts.hurry or time.monotonic() > deadline:
                for run in runs:
                    instance.report_run_canceled(run, message="Marked canceled: `crm-pipeline dev` stopped at once.")
                logger.warning("%d run(s) marked canceled without waiting for them", len(runs))
                return
            for run in runs:
                if run.status in cancelable and run.run_id not in asked:
                    asked.add(run.run_id)
                    _cancel(instance, run.run_id)
            time.sleep(POLL_SECONDS)
    if asked:
        logger.info("%d run(s) in flight canceled", len(asked))


def _cancel(instance: dg.DagsterInstance, run_id: str) -> None:
    """The run coordinator's cancel, which the webserver's terminateRuns calls (it raises what the
    code server's gRPC answer carries; the run then stays in flight and the wait marks it)."""
    try:
        instance.run_coordinator.cancel_run(run_id)
    except Exception as error:
        logger.warning("could not ask run %s to terminate: %s", run_id, error)


def supervise(
    command: list[str],
    *,
    dagster_home: Path,
    env: dict[str, str],
    log_path: Path,
    graphql_url: str,
    on_ready: Callable[[], None],
) -> int:
    """Run `dagster dev` (``command``) in ``dagster_home`` until it exits or a signal stops it, as
    the module says; ``on_ready`` is called once the webserver lists the code location loaded.
    The instance there must be openable from this process's environment (to cancel runs)."""
    interrupts = Interrupts()
    if log_path.exists():
        log_path.replace(log_path.with_name(log_path.name + ".1"))  # the previous start's, one kept
    tree = ProcessTree(command, cwd=dagster_home, env=env, log_path=log_path)
    try:
        if wait_until_loaded(graphql_url, tree, interrupts):
            on_ready()
        while tree.root.poll() is None and not interrupts.stop:
            tree.refresh()
            time.sleep(POLL_SECONDS)
        if interrupts.stop:
            logger.info("stopping: canceling the runs in flight first (Ctrl-C again stops at once)")
            cancel_runs(dagster_home, interrupts)
        else:
            tail = log_path.read_text(errors="replace").splitlines()[-20:]
            logger.error(
                "Dagster exited (code %s); the end of its log, %s:\n%s", tree.root.returncode, log_path, "\n".join(tail)
            )
    finally:  # whatever went wrong above, nothing of Dagster outlives this
        code = tree.stop(interrupts)
    logger.info("Dagster stopped")
    return code
