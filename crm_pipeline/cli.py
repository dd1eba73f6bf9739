"""The `crm-pipeline` command. Each subcommand lives beside the code it drives and registers here."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMANDS: dict[str, str] = {
    "dev": "crm_pipeline.dev",
    "sandbox": "crm_pipeline.sandbox.cli",
    "hubspot-sandbox": "crm_pipeline.hubspot_sandbox.cli",
    "salesforce-sandbox": "crm_pipeline.salesforce_sandbox.cli",
    "sync": "crm_pipeline.sync.cli",
    "deals": "crm_pipeline.sync.deals_cli",
    "notion-init": "crm_pipeline.sync.notion_init",
    "salesforce-init": "crm_pipeline.sync.salesforce_init",
    "tenants": "crm_pipeline.defs.tenants_cli",
    "dagster-home": "crm_pipeline.defs.dagster_home",
    "worker": "crm_pipeline.workers",
}
"""Each subcommand and the module whose `register(subparsers)` defines it. A command imports only
its own module (Dagster, the connectors and the store take a second or two to import); the
overview (`crm-pipeline --help`, or no known command) imports them all."""


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of ``command`` alone, or of every command."""
    parser = argparse.ArgumentParser(prog="crm-pipeline", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    modules = [COMMANDS[command]] if command in COMMANDS else list(COMMANDS.values())
    for module_name in modules:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    command = arguments[0] if arguments and not arguments[0].startswith("-") else None
    args = build_parser(command).parse_args(arguments)
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
