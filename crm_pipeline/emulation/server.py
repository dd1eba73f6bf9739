"""Serving an emulator's Starlette app: until interrupted (the command line), or in a background
thread for tests and demos."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import uvicorn
from starlette.applications import Starlette

S = TypeVar("S")


@dataclass(frozen=True)
class RunningEmulator(Generic[S]):
    """An emulator served in a thread."""

    base_url: str
    """Where its API answers; pass it to the SDK as the base URL or host."""
    sandbox: S
    """The live objects, for assertions that need no HTTP."""


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host``:``port`` (0: a free port, which ``getsockname`` tells)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def server_config(app: Starlette) -> uvicorn.Config:
    """uvicorn's settings for an emulator. One that sends its own ``Date`` header, from a clock
    tests can set (``app.state.sends_date``), gets none from uvicorn, whose would be the machine's."""
    sends_date = bool(getattr(app.state, "sends_date", False))
    return uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", date_header=not sends_date)


def serve_forever(app: Starlette, sock: socket.socket) -> None:
    """Serve on a bound socket until interrupted; the app's shutdown runs on the way out."""
    config = server_config(app)
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises the Ctrl-C it shut down on
        uvicorn.Server(config).run(sockets=[sock])


@contextlib.contextmanager
def serve_emulator_in_thread(app: Starlette, host: str = "127.0.0.1", port: int = 0) -> Iterator[RunningEmulator[Any]]:
    """``serve_app_in_thread`` yielding the base URL with the emulator the app keeps in its state."""
    with serve_app_in_thread(app, host, port) as base_url:
        yield RunningEmulator(base_url, app.state.sandbox)


@contextlib.contextmanager
def serve_app_in_thread(app: Starlette, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve ``app`` in a daemon thread (on a free loopback port unless ``port`` is given) and
    yield its base URL; the server stops (running the app's shutdown) on exit."""
    sock = listening_socket(host, port)
    port = sock.getsockname()[1]
    server = uvicorn.Server(server_config(app))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name=f"emulator:{port}")
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the emulator's server did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
