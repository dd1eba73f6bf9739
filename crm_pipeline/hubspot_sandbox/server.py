"""Serving the local HubSpot in a background thread, for tests, benchmarks and the demo."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from crm_pipeline.emulation.server import serve_app_in_thread

from .app import create_app
from .config import HubSpotSandboxConfig
from .runtime import HubSpotSandbox


@dataclass(frozen=True)
class RunningHubSpot:
    base_url: str  # pass to hubspot.HubSpot(host=...)
    sandbox: HubSpotSandbox  # the live objects, for assertions that need no HTTP


@contextlib.contextmanager
def serve_hubspot_in_thread(
    config: HubSpotSandboxConfig | None = None, host: str = "127.0.0.1", port: int = 0
) -> Iterator[RunningHubSpot]:
    app = create_app(config)
    with serve_app_in_thread(app, host, port) as base_url:
        yield RunningHubSpot(base_url, app.state.sandbox)
