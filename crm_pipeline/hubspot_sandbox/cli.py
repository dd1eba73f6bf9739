"""`crm-pipeline hubspot-sandbox`: run the local HubSpot CRM API."""

from __future__ import annotations

import argparse
from typing import Any

from crm_pipeline.emulation.cli import add_emulator_arguments, emulator_settings, serve

from .config import DEFAULT_TOKEN, HubSpotSandboxConfig


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "hubspot-sandbox",
        help="Run a local, stateful HubSpot CRM API (v3 objects, v4 associations) for trying and testing the sync.",
        description="Serve a local HubSpot. Point hubspot-api-client at it with HubSpot(host=http://HOST:PORT).",
    )
    add_emulator_arguments(
        parser,
        port=8766,
        token_kind="private app token",
        default_token=DEFAULT_TOKEN,
        state="the portal is loaded from and saved to after every change",
    )
    parser.add_argument("--ten-secondly-limit", type=int, default=100, help="requests per app per 10 s; 0 = off")
    parser.add_argument("--daily-limit", type=int, default=250_000, help="requests per day; 0 = off")
    parser.add_argument("--search-per-second", type=int, default=5, help="searches per second; 0 = off")
    parser.add_argument("--search-lag-ms", type=int, default=0, help="how far the search index lags writes")
    parser.set_defaults(handler=run_hubspot_sandbox)


def run_hubspot_sandbox(args: argparse.Namespace) -> int:
    from .app import create_app

    config = HubSpotSandboxConfig(
        **emulator_settings(args),
        ten_secondly_limit=args.ten_secondly_limit,
        daily_limit=args.daily_limit,
        search_per_second=args.search_per_second,
        search_lag_ms=args.search_lag_ms,
    )
    return serve("Local HubSpot", args, config.tokens, lambda: create_app(config))
