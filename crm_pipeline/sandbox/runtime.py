"""The request pipeline every `/v1` call goes through: latency, version and token checks, rate
limit, scripted faults, body parsing, then the handler; plus the runtime switches it reads."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from crm_pipeline.emulation.bodies import parse_json_body
from crm_pipeline.emulation.clock import Clock
from crm_pipeline.emulation.control import CLIENT_CLOSED, GATEWAY_HTML, FaultScript, Latency, RateLimiter, Stats
from crm_pipeline.emulation.errors import BadRequest, RateLimited
from crm_pipeline.emulation.routes import WRITE_METHODS
from crm_pipeline.emulation.runtime import ClientGone, bearer_token, error_response, simulate_delay

from .config import SandboxConfig
from .control import fault_error, notion_error
from .errors import NotFound, NotionError, invalid_url, validation
from .model import User
from .state import Workspace

MAX_BODY_BYTES = 500 * 1024
logger = logging.getLogger(__name__)


class SaveFailed(Exception):
    """The state file could not be written; the error is logged and the changes stay unsaved."""


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
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep  # simulated delays; tests may swap it
        self._saved_revision = -1

    @property
    def clock(self) -> Clock:
        """The workspace's clock, which the control surface sets."""
        return self.workspace.clock

    def reset(self) -> None:
        """Back to the start-up state: empty workspace (re-seeded), start-up settings, real time."""
        self.workspace.clear()
        self.workspace.clock.use_real_time()
        self.faults.faults.clear()
        self.stats.clear()
        self.limiter.configure(self.config.rate_limit, self.config.burst)
        self.latency = Latency(self.config.latency_ms, self.config.jitter_ms)
        self.result_cap = self.config.result_cap
        if self.config.seed_file is not None:
            self.workspace.seed(json.loads(self.config.seed_file.read_text(encoding="utf-8")))

    def start(self) -> None:
        """Load the saved workspace, or seed a new one; a seeded workspace counts as unsaved, so
        its page ids are kept from the first run on."""
        state_file = self.config.state_file
        if state_file is not None and state_file.exists():
            self.workspace.load(state_file)
            self._saved_revision = self.workspace.revision
        elif self.config.seed_file is not None:
            self.workspace.seed(json.loads(self.config.seed_file.read_text(encoding="utf-8")))

    def save_if_changed(self) -> None:
        """Write the state file if the workspace changed since the last successful save.

        Raises SaveFailed after logging the cause at error level; the workspace stays marked
        unsaved, so the next save (periodic, shutdown or requested) writes everything again.
        """
        state_file = self.config.state_file
        if state_file is None or self.workspace.revision == self._saved_revision:
            return
        revision = self.workspace.revision
        try:
            self.workspace.save(state_file)
        except Exception as error:  # whatever broke, the saver must survive it and say so
            logger.exception("saving the sandbox state to %s failed; the changes stay unsaved", state_file)
            raise SaveFailed(f"{type(error).__name__}: {error}") from error
        self._saved_revision = revision

    async def serve(self, request: Request, route: str, handler: Handler | None) -> Response:
        epoch = self.stats.epoch  # a request that outlives a stats reset is not counted in the new epoch
        bot = self.workspace.bots.get(bearer_token(request))
        token_name = None if bot is None else bot.name
        try:
            response = await self._pipeline(request, handler)
        except (ClientGone, ClientDisconnect):
            logger.info("client closed the connection during %s %s", request.method, request.url.path)
            self.stats.record(route, CLIENT_CLOSED, epoch, token_name)
            return Response(status_code=CLIENT_CLOSED)  # nobody reads it
        except NotionError as error:
            response = error_response(error)
        except (BadRequest, RateLimited) as error:
            response = error_response(notion_error(error))
        except Exception:  # a sandbox bug: still answer in Notion's shape, and say so in the log
            logger.exception("unexpected error serving %s", route)
            response = error_response(NotionError(500, "internal_server_error", "Unexpected error occurred."))
        self.stats.record(route, response.status_code, epoch, token_name)
        return response

    async def _pipeline(self, request: Request, handler: Handler | None) -> Response:
        raw = await request.body()  # read first: after it, a disconnect is the only message left
        await simulate_delay(request, self.latency.sample_seconds(), self.sleep)
        if handler is None:
            raise invalid_url()
        if not request.headers.get("notion-version"):
            raise NotionError(
                400,
                "missing_version",
                "Notion-Version header failed validation: Notion-Version header should be defined, instead was `undefined`.",
            )
        token = bearer_token(request)
        actor = self.workspace.bots.get(token)
        if actor is None:
            raise NotionError(401, "unauthorized", "API token is invalid.")
        self.limiter.check(token)
        fault = self.faults.take(request.method, request.url.path)
        if fault is not None and not fault.applied:
            return await self._fault_response(request, fault.kind, fault.hang_seconds)
        call = Call(self, actor, dict(request.path_params), query_lists(request), json_body(request.method, raw))
        try:
            result = handler(call)
        except NotFound as error:
            raise error.for_integration(actor.name, actor.id) from None
        if fault is not None:
            return await self._fault_response(request, fault.kind, fault.hang_seconds)
        return json_response(with_request_id(result))

    async def _fault_response(self, request: Request, kind: str, hang_seconds: float) -> Response:
        if kind == "502":
            return Response(GATEWAY_HTML, status_code=502, media_type="text/html")
        if kind == "hang":
            await simulate_delay(request, hang_seconds, self.sleep)
            return error_response(fault_error("504"))
        return error_response(fault_error(kind))


def with_request_id(result: Any) -> Any:
    """Notion puts a `request_id` on every answer, successful ones included."""
    request_id = str(uuid.uuid4())
    if isinstance(result, str):  # pre-rendered JSON text of an object
        return f'{result[:-1]},"request_id":"{request_id}"}}'
    return {**result, "request_id": request_id}


def json_response(result: Any, status: int = 200) -> Response:
    text = result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)
    return Response(text, status_code=status, media_type="application/json")


def query_lists(request: Request) -> dict[str, list[str]]:
    return {key: request.query_params.getlist(key) for key in request.query_params}


def json_body(method: str, raw: bytes) -> dict[str, Any]:
    """The body of a write; other methods' bodies are ignored, as in Notion."""
    if method not in WRITE_METHODS:
        return {}
    if len(raw) > MAX_BODY_BYTES:
        raise validation(f"Request body too large: {len(raw)} bytes, the limit is {MAX_BODY_BYTES}.")
    body = parse_json_body(raw)
    if not isinstance(body, dict):
        raise validation(f"body failed validation: body should be an object, instead was `{json.dumps(body)[:40]}`.")
    return body
