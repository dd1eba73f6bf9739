"""The Starlette app: HubSpot's CRM routes over one portal, and the ``/_hubspot`` control surface."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from crm_pipeline.emulation.routes import emulator_app
from crm_pipeline.emulation.runtime import error_response

from .api import api_routes
from .config import HubSpotSandboxConfig
from .control import control_routes
from .errors import HubSpotError
from .runtime import HubSpotSandbox


async def _unknown_path(request: Request) -> Response:
    return error_response(HubSpotError(404, "OBJECT_NOT_FOUND", f"No route for {request.method} {request.url.path}"))


def create_app(config: HubSpotSandboxConfig | None = None) -> Starlette:
    return emulator_app(
        HubSpotSandbox(config or HubSpotSandboxConfig()), api_routes() + control_routes(), _unknown_path
    )
