"""What the emulators' request pipelines share: the bearer token, simulated delay that notices a
client hanging up, error bodies, and (for the emulators whose whole state is one JSON document,
HubSpot and Salesforce) serving a request, API or control: count it, answer a refusal in the
API's shape, save."""

from __future__ import annotations

import asyncio
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from .bodies import parse_json_body
from .clock import Clock
from .control import CLIENT_CLOSED, GATEWAY_HTML, Fault, FaultScript, Latency, Stats
from .errors import BadRequest
from .files import write_atomically
from .routes import WRITE_METHODS, ControlCall, emulator_of

logger = logging.getLogger(__name__)
H = TypeVar("H")
Sleep = Callable[[float], Awaitable[None]]


class ApiError(Protocol):
    """An API's error as each emulator raises it below the routes."""

    status: int
    headers: dict[str, str]

    def body(self) -> Any: ...


class SavedState(Protocol):
    """What a saved emulator keeps: a revision that moves on with every change, and the JSON
    document its state file holds."""

    revision: int

    def snapshot(self) -> Any: ...

    def load(self, document: Any) -> None: ...


class ClientGone(Exception):
    """The client hung up (typically its timeout fired) while the emulator was simulating delay."""


def bearer_token(request: Request) -> str:
    return request.headers.get("authorization", "").removeprefix("Bearer ").strip()


async def simulate_delay(request: Request, seconds: float, sleep: Sleep) -> None:
    """Server time not spent working (latency, a hang fault). A client that hung up meanwhile gets
    nothing more: ClientGone, so the request is not carried out. Call it after reading the body:
    then a disconnect is the only message left, and the check never waits."""
    if seconds <= 0:
        return
    await sleep(seconds)
    if await request.is_disconnected():
        raise ClientGone


def error_response(error: ApiError) -> Response:
    return Response(
        json.dumps(error.body(), ensure_ascii=False),
        status_code=error.status,
        media_type="application/json",
        headers=error.headers or None,
    )


def _result_response(result: Any, headers: dict[str, str] | None = None) -> Response:
    """A handler's result, a JSON-ready body or ``(status, body)``, as the response (204: empty)."""
    status, payload = result if isinstance(result, tuple) else (200, result)
    if status == 204:
        return Response(status_code=204, headers=headers)
    return Response(json.dumps(payload), status_code=status, media_type="application/json", headers=headers)


class SavedEmulator(ABC, Generic[H]):
    """An emulator whose whole state is one JSON document, saved to its state file (if any) after
    every request that changed it. Which checks a request goes through and how a refusal reads are
    the API's (``pipeline``, ``api_error``); ``H`` is its handlers' type."""

    log_name: ClassVar[str]
    """How log lines name the emulator ("the local HubSpot")."""
    hang_kind: ClassVar[str]
    """The fault kind a hang ends in, when the client is still there."""
    latency: Latency
    """Each request's simulated latency; set by the emulator's ``reset``."""
    _state: SavedState
    """What the state file keeps; given to ``load_state`` once the emulator has made it."""

    def __init__(self, state_file: Path | None) -> None:
        self.state_file = state_file
        self.clock = Clock()
        self.faults = FaultScript()
        self.stats = Stats()
        self.sleep: Sleep = asyncio.sleep  # simulated delays; tests may swap it
        self._saved_revision = -1

    def reset(self) -> None:
        """Real time, no faults, fresh statistics; each emulator resets its state and settings too."""
        self.clock.use_real_time()
        self.faults.faults.clear()
        self.stats.clear()

    @abstractmethod
    async def pipeline(self, request: Request, route: str, handler: H, raw: bytes) -> Response:
        """The API's checks on a request whose body is ``raw``, then its ``answer``."""

    @abstractmethod
    def api_error(self, error: Exception) -> ApiError | None:
        """A refusal raised below the routes (the API's own error, or ``BadRequest`` from the
        shared machinery) in the API's shape; None for anything else: a bug."""

    @abstractmethod
    def internal_error(self) -> ApiError:
        """What the API answers when the emulator itself fails."""

    @abstractmethod
    def bad_control_request(self, message: str) -> ApiError:
        """A control request the emulator cannot carry out, in the API's shape."""

    @abstractmethod
    def fault_error(self, kind: str) -> Response:
        """The answer to a scripted fault of ``kind`` other than 502 and hang."""

    def load_state(self, state: SavedState) -> None:
        """Keep ``state`` in the state file: load it from there if the file exists; from here on,
        its changes are saved."""
        self._state = state
        if self.state_file is not None and self.state_file.exists():
            state.load(json.loads(self.state_file.read_text(encoding="utf-8")))
        self._saved_revision = state.revision

    def save_if_changed(self) -> None:
        """Write the state file (if any) when the state changed since the last save. A failed write
        is logged and tried again after the next request."""
        if self.state_file is None or self._state.revision == self._saved_revision:
            return
        revision = self._state.revision
        try:
            write_atomically(self.state_file, json.dumps(self._state.snapshot()).encode("utf-8"))
        except OSError:
            logger.exception("saving %s to %s failed; the changes stay unsaved", self.log_name, self.state_file)
            return
        self._saved_revision = revision

    async def delay(self, request: Request, seconds: float) -> None:
        await simulate_delay(request, seconds, self.sleep)

    async def answer(
        self, request: Request, raw: bytes, run: Callable[[Any], Any], headers: dict[str, str] | None = None
    ) -> Response:
        """The handler's answer (``run`` given the parsed body) with ``headers``, or the fault
        scripted for the request instead of it (an "applied" fault: after it, so the change is made
        and its answer lost)."""
        fault = self.faults.take(request.method, request.url.path)
        if fault is not None and not fault.applied:
            return await self._fault(request, fault)
        body = parse_json_body(raw) if request.method in WRITE_METHODS else {}
        response = _result_response(run(body), headers)
        if fault is not None:
            return await self._fault(request, fault)
        return response

    async def _fault(self, request: Request, fault: Fault) -> Response:
        if fault.kind == "502":
            return Response(GATEWAY_HTML, status_code=502, media_type="text/html")
        if fault.kind == "hang":
            await self.delay(request, fault.hang_seconds)
            return self.fault_error(self.hang_kind)
        return self.fault_error(fault.kind)

    async def serve(self, request: Request, route: str, handler: H) -> Response:
        """Answer one API request and count it under ``route``; the state is saved whatever happened."""
        epoch = self.stats.epoch  # a request that outlives a stats reset is not counted in the new epoch
        try:
            raw = await request.body()  # read first: after it, a disconnect is the only message left
            await self.delay(request, self.latency.sample_seconds())
            response = await self.pipeline(request, route, handler, raw)
        except (ClientGone, ClientDisconnect):
            self.stats.record(route, CLIENT_CLOSED, epoch)
            return Response(status_code=CLIENT_CLOSED)  # nobody reads it
        except Exception as error:
            refusal = self.api_error(error)
            if refusal is None:
                logger.exception("unexpected error serving %s", route)
                refusal = self.internal_error()
            response = error_response(refusal)
        finally:
            self.save_if_changed()
        self.stats.record(route, response.status_code, epoch)
        return response


async def serve_control(handler: Callable[[ControlCall[Any]], Any], request: Request) -> Response:
    """A control answer of a ``SavedEmulator``, or the error in its API's shape; the state file is
    saved after either."""
    emulator: SavedEmulator[Any] = emulator_of(request)
    try:
        return Response(json.dumps(handler(await ControlCall.read(request))), media_type="application/json")
    except (BadRequest, TypeError, ValueError, KeyError) as error:
        return error_response(emulator.bad_control_request(f"Bad control request: {error}"))
    except Exception as error:
        refusal = emulator.api_error(error)
        if refusal is None:
            raise
        return error_response(refusal)
    finally:
        emulator.save_if_changed()
