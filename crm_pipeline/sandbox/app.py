"""The Starlette app: Notion's `/v1` routes over the workspace, and the `/_sandbox` control surface."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .config import SandboxConfig
from .control import (
    GATEWAY_HTML,
    FaultScript,
    Latency,
    RateLimiter,
    Stats,
    fault_error,
    parse_fault,
)
from .errors import NotionError, invalid_url, validation
from .model import User
from .render import (
    block_json,
    data_source_json,
    database_json,
    list_json,
    page_json,
    page_text,
)
from .state import Workspace

MAX_BODY_BYTES = 500 * 1024
logger = logging.getLogger(__name__)
WRITE_METHODS = ("POST", "PATCH", "PUT")


@dataclass
class Call:
    """One API request as a handler sees it."""

    sandbox: Sandbox
    actor: User
    params: dict[str, str]
    query: dict[str, list[str]]
    body: dict[str, Any]

    @property
    def workspace(self) -> Workspace:
        return self.sandbox.workspace


Handler = Callable[[Call], Any]  # returns a JSON-ready dict, or JSON text


class Sandbox:
    """Workspace plus the switches the control surface flips."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.workspace = Workspace(config.tokens)
        self.faults = FaultScript()
        self.stats = Stats()
        self.limiter = RateLimiter(config.rate_limit, config.burst)
        self.latency = Latency(config.latency_ms, config.jitter_ms)
        self.result_cap = config.result_cap
        self._saved_revision = -1

    def reset(self) -> None:
        """Back to the start-up state: empty workspace (re-seeded), start-up settings, real time."""
        self.workspace.clear()
        self.workspace.clock.use_real_time()
        self.faults.faults.clear()
        self.stats.counts.clear()
        self.limiter.configure(self.config.rate_limit, self.config.burst)
        self.latency = Latency(self.config.latency_ms, self.config.jitter_ms)
        self.result_cap = self.config.result_cap
        if self.config.seed_file is not None:
            self.workspace.seed(json.loads(self.config.seed_file.read_text(encoding="utf-8")))

    def start(self) -> None:
        state_file = self.config.state_file
        if state_file is not None and state_file.exists():
            self.workspace.load(state_file)
        elif self.config.seed_file is not None:
            self.workspace.seed(json.loads(self.config.seed_file.read_text(encoding="utf-8")))
        self._saved_revision = self.workspace.revision

    def save_if_changed(self) -> None:
        if self.config.state_file is not None and self.workspace.revision != self._saved_revision:
            revision = self.workspace.revision
            self.workspace.save(self.config.state_file)
            self._saved_revision = revision

    async def serve(self, request: Request, route: str, handler: Handler | None) -> Response:
        try:
            response = await self._pipeline(request, handler)
        except NotionError as error:
            response = error_response(error)
        except Exception:  # a sandbox bug: still answer in Notion's shape, and say so in the log
            logger.exception("unexpected error serving %s", route)
            response = error_response(NotionError(500, "internal_server_error", "Unexpected error occurred."))
        self.stats.record(route, response.status_code)
        return response

    async def _pipeline(self, request: Request, handler: Handler | None) -> Response:
        delay = self.latency.sample_seconds()
        if delay > 0:
            await asyncio.sleep(delay)
        if handler is None:
            raise invalid_url()
        if not request.headers.get("notion-version"):
            raise NotionError(
                400,
                "missing_version",
                "Notion-Version header failed validation: Notion-Version header should be defined, instead was `undefined`.",
            )
        token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        actor = self.workspace.bots.get(token)
        if actor is None:
            raise NotionError(401, "unauthorized", "API token is invalid.")
        self.limiter.check(token)
        fault = self.faults.take(request.method, request.url.path)
        if fault is not None and not fault.applied:
            return await self._fault_response(fault.kind, fault.hang_seconds)
        call = Call(self, actor, dict(request.path_params), _query_lists(request), await _json_body(request))
        result = handler(call)
        if fault is not None:
            return await self._fault_response(fault.kind, fault.hang_seconds)
        return json_response(result)

    async def _fault_response(self, kind: str, hang_seconds: float) -> Response:
        if kind == "502":
            return Response(GATEWAY_HTML, status_code=502, media_type="text/html")
        if kind == "hang":
            await asyncio.sleep(hang_seconds)
            return error_response(fault_error("504"))
        return error_response(fault_error(kind))


def json_response(result: Any, status: int = 200) -> Response:
    text = result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)
    return Response(text, status_code=status, media_type="application/json")


def error_response(error: NotionError) -> Response:
    return Response(
        json.dumps(error.body(), ensure_ascii=False),
        status_code=error.status,
        media_type="application/json",
        headers=error.headers or None,
    )


def _query_lists(request: Request) -> dict[str, list[str]]:
    return {key: request.query_params.getlist(key) for key in request.query_params}


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


async def _json_body(request: Request) -> dict[str, Any]:
    if request.method not in WRITE_METHODS:
        return {}
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise validation(f"Request body too large: {len(raw)} bytes, the limit is {MAX_BODY_BYTES}.")
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError):
        raise NotionError(400, "invalid_json", "Error parsing JSON body.") from None
    if not isinstance(body, dict):
        raise validation(f"body failed validation: body should be an object, instead was `{json.dumps(body)[:40]}`.")
    return body


# --- /v1 handlers ----------------------------------------------------------------------------------


def _filter_properties(call: Call, ds_id: str) -> set[str] | None:
    keys = call.query.get("filter_properties") or call.query.get("filter_properties[]")
    if not keys:
        return None
    ds = call.workspace.data_sources[ds_id]
    resolved = set()
    for key in keys:
        prop = ds.resolve(key)
        if prop is None:
            raise validation(f"Could not find property with name or id: {key}")
        resolved.add(prop.id)
    return resolved


def _page_result(call: Call, page_id: str) -> Any:
    ws = call.workspace
    page = ws.pages[page_id]
    ds = ws.source_of(page)
    only = _filter_properties(call, ds.id)
    return page_text(ds, page) if only is None else page_json(ds, page, only)


def users_me(call: Call) -> Any:
    return call.actor.to_json()


def get_database(call: Call) -> Any:
    db = call.workspace.database(call.params["database_id"])
    return database_json(db, [call.workspace.data_sources[i] for i in db.data_source_ids])


def create_database(call: Call) -> Any:
    db = call.workspace.create_database(call.actor, call.body)
    return database_json(db, [call.workspace.data_sources[i] for i in db.data_source_ids])


def get_data_source(call: Call) -> Any:
    ds = call.workspace.data_source(call.params["data_source_id"])
    return data_source_json(ds, call.workspace.databases[ds.database_id])


def update_data_source(call: Call) -> Any:
    ds = call.workspace.data_source(call.params["data_source_id"])
    call.workspace.update_data_source(call.actor, ds, call.body)
    return data_source_json(ds, call.workspace.databases[ds.database_id])


def query_data_source(call: Call) -> Any:
    ds = call.workspace.data_source(call.params["data_source_id"])
    only = _filter_properties(call, ds.id)
    result = call.workspace.queries.run(ds, call.body, call.sandbox.result_cap)
    pages = (page_text(ds, p) if only is None else json.dumps(page_json(ds, p, only)) for p in result.pages)
    tail = (
        ',"request_status":{"type":"incomplete","incomplete_reason":"query_result_limit_reached"}'
        if result.capped
        else ""
    )
    return (
        '{"object":"list","results":['
        + ",".join(pages)
        + '],"next_cursor":'
        + json.dumps(result.next_cursor)
        + ',"has_more":'
        + json.dumps(result.next_cursor is not None)
        + ',"type":"page_or_data_source","page_or_data_source":{}'
        + tail
        + "}"
    )


def create_page(call: Call) -> Any:
    return _page_result(call, call.workspace.create_page(call.actor, call.body).id)


def get_page(call: Call) -> Any:
    return _page_result(call, call.workspace.page(call.params["page_id"]).id)


def update_page(call: Call) -> Any:
    page = call.workspace.page(call.params["page_id"])
    return _page_result(call, call.workspace.update_page(call.actor, page, call.body).id)


def list_children(call: Call) -> Any:
    children = call.workspace.children_of(call.params["block_id"])
    size_text = (call.query.get("page_size") or ["100"])[0]
    if not size_text.isdigit() or not 1 <= int(size_text) <= 100:
        raise validation(
            f"query failed validation: query.page_size should be an integer between 1 and 100, instead was `{size_text}`."
        )
    cursors = call.query.get("start_cursor")
    start = 0
    if cursors:
        cursor = cursors[0]
        if cursor not in children:
            raise validation(f"The start_cursor provided is invalid: {cursor}")
        start = children.index(cursor)
    end = start + int(size_text)
    blocks = [block_json(call.workspace.blocks[i]) for i in children[start:end]]
    return list_json(blocks, children[end] if end < len(children) else None, "block")


def append_children(call: Call) -> Any:
    created = call.workspace.append_children(call.actor, call.params["block_id"], call.body)
    return list_json([block_json(block) for block in created], None, "block")


API_ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/v1/users/me", users_me),
    ("POST", "/v1/databases", create_database),
    ("GET", "/v1/databases/{database_id}", get_database),
    ("GET", "/v1/data_sources/{data_source_id}", get_data_source),
    ("PATCH", "/v1/data_sources/{data_source_id}", update_data_source),
    ("POST", "/v1/data_sources/{data_source_id}/query", query_data_source),
    ("POST", "/v1/pages", create_page),
    ("GET", "/v1/pages/{page_id}", get_page),
    ("PATCH", "/v1/pages/{page_id}", update_page),
    ("GET", "/v1/blocks/{block_id}/children", list_children),
    ("PATCH", "/v1/blocks/{block_id}/children", append_children),
]
ALL_METHODS = ["GET", "POST", "PATCH", "PUT", "DELETE"]


def _api_routes(sandbox: Sandbox) -> list[Route]:
    """One Starlette route per path template; an unsupported method there is an invalid URL, as in Notion."""
    by_template: dict[str, dict[str, Handler]] = {}
    for method, template, handler in API_ROUTES:
        by_template.setdefault(template, {})[method] = handler

    def endpoint(template: str, handlers: dict[str, Handler]) -> Callable[[Request], Awaitable[Response]]:
        async def serve(request: Request) -> Response:
            return await sandbox.serve(request, f"{request.method} {template}", handlers.get(request.method))

        return serve

    routes = [Route(t, endpoint(t, h), methods=ALL_METHODS) for t, h in by_template.items()]
    routes.append(Route("/v1/{rest:path}", endpoint("<unknown>", {}), methods=ALL_METHODS))
    return routes


# --- control surface -------------------------------------------------------------------------------


async def _control_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw) if raw.strip() else {}
    except ValueError:
        raise NotionError(400, "invalid_json", "Error parsing JSON body.") from None


def _control_routes(sandbox: Sandbox) -> list[Route]:
    ws = sandbox.workspace

    def control(handler: Callable[[Request, Any], Any]) -> Callable[[Request], Awaitable[Response]]:
        async def serve(request: Request) -> Response:
            try:
                body = await _control_body(request) if request.method in WRITE_METHODS else {}
                return json_response(handler(request, body))
            except NotionError as error:
                return error_response(error)
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
            sandbox.limiter.configure(
                float(body.get("rate_limit", sandbox.limiter.rate)), int(body.get("burst", sandbox.limiter.burst))
            )
            sandbox.latency = Latency(
                float(body.get("latency_ms", sandbox.latency.fixed_ms)),
                float(body.get("jitter_ms", sandbox.latency.jitter_ms)),
            )
            sandbox.result_cap = int(body.get("result_cap", sandbox.result_cap))
        return {
            "rate_limit": sandbox.limiter.rate,
            "burst": sandbox.limiter.burst,
            "latency_ms": sandbox.latency.fixed_ms,
            "jitter_ms": sandbox.latency.jitter_ms,
            "result_cap": sandbox.result_cap,
        }

    def faults(request: Request, body: Any) -> Any:
        if request.method == "POST":
            sandbox.faults.faults.append(parse_fault(body))
        elif request.method == "DELETE":
            sandbox.faults.faults.clear()
        return {"faults": [fault.to_json() for fault in sandbox.faults.faults]}

    def clock(request: Request, body: Any) -> Any:
        if request.method == "POST":
            if not isinstance(body, dict):
                raise validation("Clock changes are an object: {set} | {advance_seconds} | {real: true}.")
            if body.get("real"):
                ws.clock.use_real_time()
            elif "set" in body:
                try:
                    ws.clock.set(datetime.fromisoformat(str(body["set"])))
                except ValueError:
                    raise validation(f"Not an ISO-8601 datetime: {body['set']!r}") from None
            elif isinstance(body.get("advance_seconds"), int | float):
                ws.clock.advance(body["advance_seconds"])
            else:
                raise validation("Clock changes are an object: {set} | {advance_seconds} | {real: true}.")
        return ws.clock.describe()

    def stats(request: Request, _: Any) -> Any:
        if request.method == "DELETE":
            sandbox.stats.counts.clear()
        return sandbox.stats.to_json()

    def human_create(_: Request, body: Any) -> Any:
        page = ws.create_page(ws.human, _object(body))
        return page_json(ws.source_of(page), page)

    def human_update(request: Request, body: Any) -> Any:
        page = ws.update_page(ws.human, ws.page(request.path_params["page_id"]), _object(body))
        return page_json(ws.source_of(page), page)

    def all_pages(request: Request, _: Any) -> Any:
        ds = ws.data_source(request.path_params["data_source_id"])
        return {"results": [page_json(ds, page) for page in ds.pages.values()]}

    def seed(_: Request, body: Any) -> Any:
        return {"databases": ws.seed(body)}

    def users(_: Request, __: Any) -> Any:
        return {"results": [user.to_json() for user in ws.users()]}

    def save(_: Request, __: Any) -> Any:
        sandbox.save_if_changed()
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
        Route("/_sandbox/data_sources/{data_source_id}/pages", control(all_pages), methods=["GET"]),
    ]


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise validation("body failed validation: body should be an object.")
    return body


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
            sandbox.save_if_changed()

    routes = _api_routes(sandbox) + _control_routes(sandbox)
    routes.append(Route("/{rest:path}", _unknown_path, methods=ALL_METHODS))
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.sandbox = sandbox
    return app


async def _save_periodically(sandbox: Sandbox) -> None:
    """Debounced persistence: at most one write per interval, however many edits arrive."""
    while True:
        await asyncio.sleep(sandbox.config.save_interval_s)
        sandbox.save_if_changed()
