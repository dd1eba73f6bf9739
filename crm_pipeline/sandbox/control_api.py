"""The `/_sandbox` control surface: reset, settings, faults, clock, stats, human edits, seeding.
Each handler turns a `Control` into a JSON body; `CONTROL_ROUTES` names the handler of each path."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from crm_pipeline.emulation.control import Latency
from crm_pipeline.emulation.errors import BadRequest, RateLimited
from crm_pipeline.emulation.routes import ControlCall, shared_control_routes, table_routes
from crm_pipeline.emulation.runtime import error_response

from .control import FAULT_KINDS, notion_error
from .errors import NotionError, validation
from .model import Page
from .render import page_json
from .runtime import Sandbox, SaveFailed, json_response

Control = ControlCall[Sandbox]
ControlHandler = Callable[[Control], Any]


def health(_: Control) -> Any:
    return {"ok": True}


def configure(call: Control) -> Any:
    """PUT changes the rate limit, latency and result cap, all or nothing; each answers them."""
    sandbox = call.sandbox
    if call.method == "PUT":
        _apply_settings(sandbox, call.body)
    return {
        "rate_limit": sandbox.limiter.rate,
        "burst": sandbox.limiter.burst,
        "latency_ms": sandbox.latency.fixed_ms,
        "jitter_ms": sandbox.latency.jitter_ms,
        "result_cap": sandbox.result_cap,
    }


def _apply_settings(sandbox: Sandbox, body: Any) -> None:
    if not isinstance(body, dict):
        raise validation("Settings must be an object.")
    rate, burst = (
        _setting(body, "rate_limit", sandbox.limiter.rate),
        _setting(body, "burst", sandbox.limiter.burst, True),
    )
    latency = Latency(
        float(_setting(body, "latency_ms", sandbox.latency.fixed_ms)),
        float(_setting(body, "jitter_ms", sandbox.latency.jitter_ms)),
    )
    result_cap = _setting(body, "result_cap", sandbox.result_cap, integer=True)
    if result_cap < 1:
        raise validation(f"result_cap must be at least 1, instead was {result_cap}.")
    sandbox.limiter.configure(float(rate), burst)  # everything checked first: all or nothing
    sandbox.latency = latency
    sandbox.result_cap = result_cap


def _setting(body: dict[str, Any], key: str, current: float, integer: bool = False) -> Any:
    """A number from a settings body (ranges are checked where the setting is applied)."""
    value = body.get(key, current)
    kinds: tuple[type, ...] = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise validation(f"{key} must be {'an integer' if integer else 'a number'}, instead was {value!r}.")
    return value


def human_create(call: Control) -> Any:
    ws = call.sandbox.workspace
    return _page_json(call, ws.create_page(ws.human, _object(call.body)))


def human_update(call: Control) -> Any:
    ws = call.sandbox.workspace
    return _page_json(call, ws.update_page(ws.human, ws.page(call.params["page_id"]), _object(call.body)))


def set_computed(call: Control) -> Any:
    ws = call.sandbox.workspace
    return _page_json(call, ws.set_computed(ws.page(call.params["page_id"]), _object(call.body)))


def _page_json(call: Control, page: Page) -> Any:
    ws = call.sandbox.workspace
    return page_json(ws.source_of(page), page, ws.user_table)


def all_pages(call: Control) -> Any:
    ws = call.sandbox.workspace
    ds = ws.data_source(call.params["data_source_id"])
    return {"results": [page_json(ds, page, ws.user_table) for page in ds.pages.values()]}


def seed(call: Control) -> Any:
    return {"databases": call.sandbox.workspace.seed(call.body)}


def users(call: Control) -> Any:
    return {"results": [user.to_json() for user in call.sandbox.workspace.users()]}


def save(call: Control) -> Any:
    try:
        call.sandbox.save_if_changed()
    except SaveFailed as error:
        raise NotionError(500, "internal_server_error", f"Saving the state file failed: {error}") from None
    return {"saved": call.sandbox.config.state_file is not None}


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise validation("body failed validation: body should be an object.")
    return body


CONTROL_ROUTES: list[tuple[str, list[str], ControlHandler]] = [
    ("/health", ["GET"], health),
    *shared_control_routes(FAULT_KINDS, "/v1/*"),
    ("/config", ["GET", "PUT"], configure),
    ("/seed", ["POST"], seed),
    ("/users", ["GET"], users),
    ("/save", ["POST"], save),
    ("/pages", ["POST"], human_create),
    ("/pages/{page_id}", ["PATCH"], human_update),
    ("/pages/{page_id}/computed", ["PUT"], set_computed),
    ("/data_sources/{data_source_id}/pages", ["GET"], all_pages),
]
"""Each path under `/_sandbox`, its methods and its handler."""


def control_routes() -> list[Route]:
    return table_routes("/_sandbox", CONTROL_ROUTES, _serve)


async def _serve(handler: ControlHandler, request: Request) -> Response:
    """A control answer, or the error in Notion's shape."""
    try:
        return json_response(handler(await ControlCall.read(request)))
    except NotionError as error:
        return error_response(error)
    except (BadRequest, RateLimited) as error:
        return error_response(notion_error(error))
    except (TypeError, ValueError, KeyError) as error:
        return error_response(validation(f"Bad control request: {error}"))
