"""The `crm-pipeline` command. Each subcommand lives beside the code it drives and registers here."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Modules that define `register(subparsers)`; imported lazily so `--help` stays fast.
COMMAND_MODULES: tuple[str, ...] = (
    "crm_pipeline.dev",
    "crm_pipeline.sandbox.cli",
    "crm_pipeline.hubspot_sandbox.cli",
    "crm_pipeline.sync.cli",
    "crm_pipeline.sync.deals_cli",
    "crm_pipeline.sync.notion_init",
    "crm_pipeline.defs.tenants_cli",
    "crm_pipeline.defs.dagster_home",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crm-pipeline", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
