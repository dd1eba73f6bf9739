"""`crm-pipeline sandbox`: run the local Notion API."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from crm_pipeline.emulation.cli import add_emulator_arguments, emulator_settings, serve

from .config import DEFAULT_TOKEN, SandboxConfig


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "sandbox",
        help="Run a local, stateful Notion API (2025-09-03) for trying and testing the sync.",
        description="Serve a local Notion API. Point notion_client at it with base_url=http://HOST:PORT.",
    )
    add_emulator_arguments(
        parser,
        port=8765,
        token_kind="integration token",
        default_token=DEFAULT_TOKEN,
        state="the workspace is loaded from and saved to",
    )
    parser.add_argument("--rate-limit", type=float, default=3.0, help="average requests/s per token; 0 = off")
    parser.add_argument("--burst", type=int, default=10, help="requests a token may make at once")
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    parser.add_argument("--seed", type=Path, help="JSON seed file applied when there is no saved state")
    parser.add_argument("--result-cap", type=int, default=10_000, help="rows a single query may return")
    parser.set_defaults(handler=run_sandbox)


def run_sandbox(args: argparse.Namespace) -> int:
    from .app import create_app

    config = SandboxConfig(
        **emulator_settings(args),
        rate_limit=args.rate_limit,
        burst=args.burst,
        jitter_ms=args.jitter_ms,
        result_cap=args.result_cap,
        seed_file=args.seed,
    )
    return serve("Notion sandbox", args, config.tokens, lambda: create_app(config))
