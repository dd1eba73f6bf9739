"""Serving the local Salesforce in a background thread, for tests, benchmarks and the demo."""

from __future__ import annotations

from contextlib import AbstractContextManager

from crm_pipeline.emulation.server import RunningEmulator, serve_emulator_in_thread

from .app import create_app
from .config import SalesforceSandboxConfig
from .runtime import SalesforceSandbox

RunningSalesforce = RunningEmulator[SalesforceSandbox]
"""The served local Salesforce: ``base_url`` is the ``instance_url`` (with ``sandbox_session``)."""


def serve_salesforce_in_thread(
    config: SalesforceSandboxConfig | None = None, host: str = "127.0.0.1", port: int = 0
) -> AbstractContextManager[RunningSalesforce]:
    """Serve in a daemon thread (on a free loopback port unless `port` is given); stops on exit."""
    return serve_emulator_in_thread(create_app(config), host, port)
