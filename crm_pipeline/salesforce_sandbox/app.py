"""The Starlette app: Salesforce's REST routes over one org, and the ``/_salesforce`` control surface."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from crm_pipeline.emulation.routes import emulator_app, emulator_of
from crm_pipeline.emulation.runtime import error_response

from .api import api_routes
from .config import SalesforceSandboxConfig
from .control import control_routes
from .errors import not_found
from .runtime import SalesforceSandbox


async def _unknown_path(request: Request) -> Response:
    sandbox: SalesforceSandbox = emulator_of(request)
    response = error_response(not_found())
    response.headers.update(sandbox.answer_headers())
    return response


def create_app(config: SalesforceSandboxConfig | None = None) -> Starlette:
    app = emulator_app(
        SalesforceSandbox(config or SalesforceSandboxConfig()), api_routes() + control_routes(), _unknown_path
    )
    app.state.sends_date = True  # by the org's clock, as Salesforce's stamps are
    return app
