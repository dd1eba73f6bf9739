"""What every emulator's command-line entry shares: where it listens, which tokens it accepts and
how it is served. The server (uvicorn) is imported only when one is run."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.applications import Starlette


def add_listen_arguments(parser: argparse.ArgumentParser, *, port: int, token_kind: str, default_token: str) -> None:
    """``--host``, ``--port`` and ``--token`` (repeatable)."""
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=port, help=f"default {port}; 0: a free port, which it prints")
    parser.add_argument(
        "--token", action="append", help=f"accepted {token_kind}; repeat for several (default: {default_token})"
    )


def serve(name: str, args: argparse.Namespace, tokens: Sequence[str], create_app: Callable[[], Starlette]) -> int:
    """Say where ``name`` answers and with which tokens, then serve the app until interrupted."""
    from crm_pipeline.emulation.server import listening_socket, serve_forever

    with listening_socket(args.host, args.port) as sock:
        port = sock.getsockname()[1]  # the one the system chose, with --port 0
        print(f"{name} on http://{args.host}:{port} (tokens: {', '.join(tokens)})", flush=True)
        serve_forever(create_app(), sock)
    return 0
