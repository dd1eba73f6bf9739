"""The `/_sandbox` control surface: reset, settings, faults, clock, stats, human edits, seeding."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from crm_pipeline.emulation.bodies import parse_json_body
from crm_pipeline.emulation.control import Latency
from crm_pipeline.emulation.errors import BadRequest, RateLimited

from .control import FAULT_KINDS, notion_error
from .errors import NotionError, validation
from .render import page_json
from .runtime import WRITE_METHODS, Sandbox, SaveFailed, error_response, json_response


def _setting(body: dict[str, Any], key: str, current: float, integer: bool = False) -> Any:
    """A number from a settings body (ranges are checked where the setting is applied)."""
    value = body.get(key, current)
    kinds: tuple[type, ...] = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise validation(f"{key} must be {'an integer' if integer else 'a number'}, instead was {value!r}.")
    return value


def control_routes(sandbox: Sandbox) -> list[Route]:
    ws = sandbox.workspace

    def control(handler: Callable[[Request, Any], Any]) -> Callable[[Request], Awaitable[Response]]:
        async def serve(request: Request) -> Response:
            try:
                body = parse_json_body(await request.body()) if request.method in WRITE_METHODS else {}
                return json_response(handler(request, body))
            except NotionError as error:
                return error_response(error)
            except (BadRequest, RateLimited) as error:
                return error_response(notion_error(error))
            except (TypeError, ValueError, KeyError) as error:
                return error_response(validation(f"Bad control request: {error}"))

        return serve

    def reset(_: Request, __: Any) -> Any:
        sandbox.reset()
        return {"ok": True}

    def configure(request: Request, body: Any) -> Any:
        if request.method == "PUT":
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
        return {
            "rate_limit": sandbox.limiter.rate,
            "burst": sandbox.limiter.burst,
            "latency_ms": sandbox.latency.fixed_ms,
            "jitter_ms": sandbox.latency.jitter_ms,
            "result_cap": sandbox.result_cap,
        }

    def faults(request: Request, body: Any) -> Any:
        return sandbox.faults.control(request.method, body, FAULT_KINDS, "/v1/*")

    def clock(request: Request, body: Any) -> Any:
        if request.method == "POST":
            if not isinstance(body, dict):
                raise validation("Clock changes are an object: {set} | {advance_seconds} | {real: true}.")
            if body.get("real"):
                ws.clock.use_real_time()
            elif "set" in body:
                try:
                    moment = datetime.fromisoformat(str(body["set"]))
                except ValueError:
                    raise validation(f"Not an ISO-8601 datetime: {body['set']!r}") from None
                ws.clock.set(moment)
            elif isinstance(body.get("advance_seconds"), int | float) and not isinstance(body["advance_seconds"], bool):
                ws.clock.advance(body["advance_seconds"])
            else:
                raise validation("Clock changes are an object: {set} | {advance_seconds} | {real: true}.")
        return ws.clock.describe()

    def stats(request: Request, _: Any) -> Any:
        return sandbox.stats.control(request.method)

    def human_create(_: Request, body: Any) -> Any:
        page = ws.create_page(ws.human, _object(body))
        return page_json(ws.source_of(page), page, ws.user_table)

    def human_update(request: Request, body: Any) -> Any:
        page = ws.update_page(ws.human, ws.page(request.path_params["page_id"]), _object(body))
        return page_json(ws.source_of(page), page, ws.user_table)

    def set_computed(request: Request, body: Any) -> Any:
        page = ws.set_computed(ws.page(request.path_params["page_id"]), _object(body))
        return page_json(ws.source_of(page), page, ws.user_table)

    def all_pages(request: Request, _: Any) -> Any:
        ds = ws.data_source(request.path_params["data_source_id"])
        return {"results": [page_json(ds, page, ws.user_table) for page in ds.pages.values()]}

    def seed(_: Request, body: Any) -> Any:
        return {"databases": ws.seed(body)}

    def users(_: Request, __: Any) -> Any:
        return {"results": [user.to_json() for user in ws.users()]}

    def save(_: Request, __: Any) -> Any:
        try:
            sandbox.save_if_changed()
        except SaveFailed as error:
            raise NotionError(500, "internal_server_error", f"Saving the state file failed: {error}") from None
        return {"saved": sandbox.config.state_file is not None}

    return [
        Route("/_sandbox/health", control(lambda _, __: {"ok": True}), methods=["GET"]),
        Route("/_sandbox/reset", control(reset), methods=["POST"]),
        Route("/_sandbox/config", control(configure), methods=["GET", "PUT"]),
        Route("/_sandbox/faults", control(faults), methods=["GET", "POST", "DELETE"]),
        Route("/_sandbox/clock", control(clock), methods=["GET", "POST"]),
        Route("/_sandbox/stats", control(stats), methods=["GET", "DELETE"]),
        Route("/_sandbox/seed", control(seed), methods=["POST"]),
        Route("/_sandbox/users", control(users), methods=["GET"]),
        Route("/_sandbox/save", control(save), methods=["POST"]),
        Route("/_sandbox/pages", control(human_create), methods=["POST"]),
        Route("/_sandbox/pages/{page_id}", control(human_update), methods=["PATCH"]),
        Route("/_sandbox/pages/{page_id}/computed", control(set_computed), methods=["PUT"]),
        Route("/_sandbox/data_sources/{data_source_id}/pages", control(all_pages), methods=["GET"]),
    ]


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise validation("body failed validation: body should be an object.")
    return body
