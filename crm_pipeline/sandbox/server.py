"""Serving the sandbox in a background thread, for tests and demos (the command line serves it
with ``crm_pipeline.emulation.cli``; the state file, if any, is saved on shutdown)."""

from __future__ import annotations

from contextlib import AbstractContextManager

from crm_pipeline.emulation.server import RunningEmulator, serve_emulator_in_thread

from .app import create_app
from .config import SandboxConfig
from .runtime import Sandbox

RunningSandbox = RunningEmulator[Sandbox]
"""The served sandbox: pass ``base_url`` to ``notion_client.AsyncClient(base_url=...)``."""


def serve_in_thread(
    config: SandboxConfig | None = None, host: str = "127.0.0.1", port: int = 0
) -> AbstractContextManager[RunningSandbox]:
    """Serve in a daemon thread (on a free loopback port unless `port` is given); stops (and saves
    state) on exit."""
    return serve_emulator_in_thread(create_app(config), host, port)
