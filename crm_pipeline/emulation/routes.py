"""How an emulator's handlers become routes: plain functions named in a table, each reaching the
emulator through the request (the app keeps it in its state), never through a closure."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Collection, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .bodies import parse_json_body

S = TypeVar("S")
H = TypeVar("H")
WRITE_METHODS = ("POST", "PATCH", "PUT")
"""The methods whose body is read; the others' is ignored, as the APIs do."""
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
"""The methods a catch-all route answers, so an unknown path gets the API's own error."""


def emulator_of(request: Request) -> Any:
    """The emulator behind the app serving ``request`` (each ``create_app`` keeps it in the app's
    state as ``sandbox``)."""
    return request.app.state.sandbox


def emulator_app(
    sandbox: object,
    routes: list[Route],
    unknown_path: Callable[[Request], Awaitable[Response]],
    lifespan: Callable[[Starlette], AbstractAsyncContextManager[None]] | None = None,
) -> Starlette:
    """The app of an emulator: ``routes``, then ``unknown_path`` for any other path and method;
    ``sandbox`` kept in its state, where ``emulator_of`` finds it."""
    app = Starlette(routes=[*routes, Route("/{rest:path}", unknown_path, methods=ALL_METHODS)], lifespan=lifespan)
    app.state.sandbox = sandbox
    return app


def table_routes(
    prefix: str, table: Sequence[tuple[str, list[str], H]], serve: Callable[[H, Request], Awaitable[Response]]
) -> list[Route]:
    """A route for each ``(path, methods, handler)`` of ``table``, under ``prefix``, answered by
    ``serve(handler, request)``."""
    return [
        Route(prefix + path, functools.partial(serve, handler), methods=methods) for path, methods, handler in table
    ]


@dataclass(frozen=True)
class ControlCall(Generic[S]):
    """One request to a control surface as its handler sees it."""

    sandbox: S
    """The emulator the request reads or changes."""
    method: str
    params: dict[str, str]
    """The path's parameters."""
    body: Any
    """The parsed JSON body of a write; ``{}`` otherwise."""

    @staticmethod
    async def read(request: Request) -> ControlCall[Any]:
        """The call a request makes; a body that is not strict JSON raises ``BadRequest``."""
        body = parse_json_body(await request.body()) if request.method in WRITE_METHODS else {}
        return ControlCall(emulator_of(request), request.method, dict(request.path_params), body)


ControlTable = list[tuple[str, list[str], Callable[[ControlCall[Any]], Any]]]
"""A control surface's paths, each with its methods and handler."""


def shared_control_routes(fault_kinds: Collection[str], api_paths: str) -> ControlTable:
    """The control routes every emulator has, over its ``reset()``, ``faults``, ``clock`` and
    ``stats``: ``fault_kinds`` are the faults it can fake, ``api_paths`` the pattern a fault
    matches unless told."""
    return [
        ("/reset", ["POST"], _reset),
        ("/faults", ["GET", "POST", "DELETE"], functools.partial(_faults, fault_kinds, api_paths)),
        ("/clock", ["GET", "POST"], _clock),
        ("/stats", ["GET", "DELETE"], _stats),
    ]


def _reset(call: ControlCall[Any]) -> Any:
    call.sandbox.reset()
    return {"ok": True}


def _faults(kinds: Collection[str], api_paths: str, call: ControlCall[Any]) -> Any:
    return call.sandbox.faults.control(call.method, call.body, kinds, api_paths)


def _clock(call: ControlCall[Any]) -> Any:
    return call.sandbox.clock.control(call.method, call.body)


def _stats(call: ControlCall[Any]) -> Any:
    return call.sandbox.stats.control(call.method)
