"""Serving the local HubSpot in a background thread, for tests, benchmarks and the demo."""

from __future__ import annotations

from contextlib import AbstractContextManager

from crm_pipeline.emulation.server import RunningEmulator, serve_emulator_in_thread

from .app import create_app
from .config import HubSpotSandboxConfig
from .runtime import HubSpotSandbox

RunningHubSpot = RunningEmulator[HubSpotSandbox]
"""The served local HubSpot: pass ``base_url`` to ``hubspot.HubSpot(host=...)``."""


def serve_hubspot_in_thread(
    config: HubSpotSandboxConfig | None = None, host: str = "127.0.0.1", port: int = 0
) -> AbstractContextManager[RunningHubSpot]:
    """Serve in a daemon thread (on a free loopback port unless `port` is given); stops on exit."""
    return serve_emulator_in_thread(create_app(config), host, port)
