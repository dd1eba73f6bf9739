"""The Starlette app: Notion's `/v1` routes over the workspace, the `/_sandbox` control surface, and
the `/ui/` pages where a person edits the workspace (its "Notion UI")."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from crm_pipeline.emulation.routes import emulator_app
from crm_pipeline.emulation.runtime import error_response

from .api import api_routes
from .config import SandboxConfig
from .control_api import control_routes
from .errors import invalid_url
from .runtime import Sandbox, SaveFailed
from .ui import ui_routes


async def _unknown_path(request: Request) -> Response:
    return error_response(invalid_url())


def create_app(config: SandboxConfig | None = None) -> Starlette:
    sandbox = Sandbox(config or SandboxConfig())
    sandbox.start()

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        saver = asyncio.create_task(_save_periodically(sandbox)) if sandbox.config.state_file else None
        try:
            yield
        finally:
            if saver is not None:
                saver.cancel()
            with contextlib.suppress(SaveFailed):  # logged; nothing more can be done at shutdown
                sandbox.save_if_changed()

    return emulator_app(sandbox, api_routes() + control_routes() + ui_routes(), _unknown_path, lifespan)


async def _save_periodically(sandbox: Sandbox) -> None:
    """Debounced persistence: at most one write per interval, however many edits arrive; a failed
    write (already logged) is retried at the next interval."""
    while True:
        await asyncio.sleep(sandbox.config.save_interval_s)
        with contextlib.suppress(SaveFailed):
            sandbox.save_if_changed()
