"""`crm-pipeline salesforce-sandbox`: run the local Salesforce REST API."""

from __future__ import annotations

import argparse
from typing import Any

from crm_pipeline.emulation.cli import add_emulator_arguments, emulator_settings, serve

from .config import DEFAULT_TOKEN, DEVELOPER_EDITION_DAILY, SalesforceSandboxConfig


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "salesforce-sandbox",
        help="Run a local, stateful Salesforce REST API (Opportunity, Task, SOQL) for trying and testing the sync.",
        description=(
            "Serve a local Salesforce over plain HTTP. simple-salesforce always speaks https: give it "
            "instance_url=http://HOST:PORT with session=crm_pipeline.salesforce_sandbox.sandbox_session(...)."
        ),
    )
    add_emulator_arguments(
        parser,
        port=8767,
        token_kind="access token",
        default_token=DEFAULT_TOKEN,
        state="the org is loaded from and saved to after every change",
    )
    parser.add_argument(
        "--daily-api-max", type=int, default=DEVELOPER_EDITION_DAILY, help="API requests per rolling 24 hours"
    )
    parser.add_argument("--query-page-cap", type=int, default=0, help="at most this many records a query page; 0 = off")
    parser.set_defaults(handler=run_salesforce_sandbox)


def run_salesforce_sandbox(args: argparse.Namespace) -> int:
    from .app import create_app

    config = SalesforceSandboxConfig(
        **emulator_settings(args),
        daily_api_max=args.daily_api_max,
        query_page_cap=args.query_page_cap,
    )
    return serve("Local Salesforce", args, config.tokens, lambda: create_app(config))
