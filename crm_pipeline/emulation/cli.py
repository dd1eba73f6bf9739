"""What every emulator's command-line entry shares: where it listens, which tokens it accepts, its
latency and state file, and how it is served. The server (uvicorn) is imported only when one is run."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

if TYPE_CHECKING:
    from starlette.applications import Starlette


class EmulatorSettings(TypedDict):
    """The settings every emulator's config takes from the shared flags."""

    tokens: tuple[str, ...]
    latency_ms: float
    state_file: Path | None


def add_emulator_arguments(
    parser: argparse.ArgumentParser, *, port: int, token_kind: str, default_token: str, state: str
) -> None:
    """``--host``, ``--port``, ``--token`` (repeatable), ``--latency-ms`` and ``--state-file``;
    ``state`` says what the file holds and when it is written."""
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=port, help=f"default {port}; 0: a free port, which it prints")
    parser.add_argument(
        "--token", action="append", help=f"accepted {token_kind}; repeat for several (default: {default_token})"
    )
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--state-file", type=Path, help=f"JSON file {state}")
    parser.set_defaults(default_token=default_token)


def emulator_settings(args: argparse.Namespace) -> EmulatorSettings:
    """The shared flags' values, as the emulators' configs name them."""
    return EmulatorSettings(
        tokens=tuple(args.token or [args.default_token]), latency_ms=args.latency_ms, state_file=args.state_file
    )


def serve(name: str, args: argparse.Namespace, tokens: Sequence[str], create_app: Callable[[], Starlette]) -> int:
    """Say where ``name`` answers and with which tokens, then serve the app until interrupted."""
    from crm_pipeline.emulation.server import listening_socket, serve_forever

    with listening_socket(args.host, args.port) as sock:
        port = sock.getsockname()[1]  # the one the system chose, with --port 0
        print(f"{name} on http://{args.host}:{port} (tokens: {', '.join(tokens)})", flush=True)
        serve_forever(create_app(), sock)
    return 0
