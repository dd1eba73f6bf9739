"""`crm-pipeline sandbox`: run the local Notion API."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .config import DEFAULT_TOKEN, SandboxConfig


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "sandbox",
        help="Run a local, stateful Notion API (2025-09-03) for trying and testing the sync.",
        description="Serve a local Notion API. Point notion_client at it with base_url=http://HOST:PORT.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--token",
        action="append",
        help=f"accepted integration token; repeat for several (default: {DEFAULT_TOKEN})",
    )
    parser.add_argument("--rate-limit", type=float, default=3.0, help="average requests/s per token; 0 = off")
    parser.add_argument("--burst", type=int, default=10, help="requests a token may make at once")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    parser.add_argument("--state-file", type=Path, help="JSON file the workspace is loaded from and saved to")
    parser.add_argument("--seed", type=Path, help="JSON seed file applied when there is no saved state")
    parser.add_argument("--result-cap", type=int, default=10_000, help="rows a single query may return")
    parser.set_defaults(handler=run_sandbox)


def run_sandbox(args: argparse.Namespace) -> int:
    from .server import run

    config = SandboxConfig(
        tokens=tuple(args.token or [DEFAULT_TOKEN]),
        rate_limit=args.rate_limit,
        burst=args.burst,
        latency_ms=args.latency_ms,
        jitter_ms=args.jitter_ms,
        result_cap=args.result_cap,
        state_file=args.state_file,
        seed_file=args.seed,
    )
    print(f"Notion sandbox on http://{args.host}:{args.port} (tokens: {', '.join(config.tokens)})", flush=True)
    run(config, args.host, args.port)
    return 0
