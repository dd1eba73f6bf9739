"""`crm-pipeline hubspot-sandbox`: run the local HubSpot CRM API."""

from __future__ import annotations

import argparse
from typing import Any

from .config import DEFAULT_TOKEN, HubSpotSandboxConfig


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "hubspot-sandbox",
        help="Run a local, stateful HubSpot CRM API (v3 objects, v4 associations) for trying and testing the sync.",
        description="Serve a local HubSpot. Point hubspot-api-client at it with HubSpot(host=http://HOST:PORT).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument(
        "--token", action="append", help=f"accepted private app token; repeat for several (default: {DEFAULT_TOKEN})"
    )
    parser.add_argument("--ten-secondly-limit", type=int, default=100, help="requests per app per 10 s; 0 = off")
    parser.add_argument("--daily-limit", type=int, default=250_000, help="requests per day; 0 = off")
    parser.add_argument("--search-per-second", type=int, default=5, help="searches per second; 0 = off")
    parser.add_argument("--search-lag-ms", type=int, default=0, help="how far the search index lags writes")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.set_defaults(handler=run_hubspot_sandbox)


def run_hubspot_sandbox(args: argparse.Namespace) -> int:
    import uvicorn

    from .app import create_app

    config = HubSpotSandboxConfig(
        tokens=tuple(args.token or [DEFAULT_TOKEN]),
        ten_secondly_limit=args.ten_secondly_limit,
        daily_limit=args.daily_limit,
        search_per_second=args.search_per_second,
        search_lag_ms=args.search_lag_ms,
        latency_ms=args.latency_ms,
    )
    print(f"Local HubSpot on http://{args.host}:{args.port} (tokens: {', '.join(config.tokens)})", flush=True)
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0
