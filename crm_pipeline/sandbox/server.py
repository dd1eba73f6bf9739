"""Serving the sandbox: from the command line, or in a background thread for tests and demos."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import uvicorn
from starlette.applications import Starlette

from crm_pipeline.emulation.server import serve_app_in_thread

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
    with serve_app_in_thread(app, host, port) as base_url:
        yield RunningSandbox(base_url, app.state.sandbox)
