"""Serving the sandbox: from the command line, or in a background thread for tests and demos."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import uvicorn
from starlette.applications import Starlette

from .app import create_app
from .config import SandboxConfig
from .runtime import Sandbox


def run(config: SandboxConfig, host: str, port: int) -> None:
    """Serve until interrupted; the state file (if any) is saved on shutdown."""
    uvicorn.run(create_app(config), host=host, port=port, log_level="warning", access_log=False)


@dataclass(frozen=True)
class RunningSandbox:
    base_url: str  # pass to notion_client.AsyncClient(base_url=...)
    sandbox: Sandbox  # the live objects, for assertions that need no HTTP


@contextlib.contextmanager
def serve_in_thread(
    config: SandboxConfig | None = None, host: str = "127.0.0.1", port: int = 0
) -> Iterator[RunningSandbox]:
    """Serve in a daemon thread (on a free loopback port unless `port` is given); stops (and saves
    state) on exit."""
    app: Starlette = create_app(config)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name=f"sandbox:{port}")
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the sandbox server did not start")
        time.sleep(0.01)
    try:
        yield RunningSandbox(f"http://{host}:{port}", app.state.sandbox)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
