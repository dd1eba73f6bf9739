"""`crm-pipeline dagster-home`: a Dagster instance for Dagster's own commands (`dagster asset
materialize`, `dg launch`, `dg dev`), holding every tenant's partition.

The sync assets are partitioned by tenant, and dynamic partitions live in the instance: a command
run with DAGSTER_HOME unset gets a temporary instance holding none, so it refuses any partition.
This prepares `$DAGSTER_HOME`, or `<data dir>/dagster-cli` when it is unset (created, with the
checkout's dagster.yaml when it has none; SQLite storage), adds the partition of each active
configured tenant (what `tenant_partitions_sensor` does in a running `dagster dev`), and prints the
directory: `export DAGSTER_HOME=$(crm-pipeline dagster-home)`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from crm_pipeline.defs.partitions import TENANT_PARTITIONS, missing_tenant_partitions
from crm_pipeline.settings import Settings, get_settings, project_file
from crm_pipeline.tenants.source import active_tenants

if TYPE_CHECKING:
    import dagster as dg


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "dagster-home",
        help="prepare a Dagster instance holding every tenant's partition and print its directory",
        description="Prepare $DAGSTER_HOME (default: <data dir>/dagster-cli) for Dagster's own commands: "
        "add each active tenant's partition, then print the directory "
        "(export DAGSTER_HOME=$(crm-pipeline dagster-home)).",
    )
    parser.set_defaults(handler=run)


def dagster_home(settings: Settings) -> Path:
    """``$DAGSTER_HOME`` when set, else the data directory's instance for Dagster's commands."""
    configured = os.environ.get("DAGSTER_HOME")
    return Path(configured) if configured else settings.data_dir / "dagster-cli"


@contextmanager
def open_instance(home: Path) -> Iterator[dg.DagsterInstance]:
    """The instance in ``home``, created with the checkout's dagster.yaml if it has no settings."""
    import dagster as dg

    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        shutil.copyfile(project_file("dagster.yaml"), home / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield instance


def add_tenant_partitions(settings: Settings, home: Path) -> list[str]:
    """Add the partitions the instance lacks of the active configured tenants; the ones added."""
    with open_instance(home) as instance:
        known = instance.get_dynamic_partitions(TENANT_PARTITIONS)
        new = missing_tenant_partitions(known, asyncio.run(active_tenants(settings)))
        if new:
            instance.add_dynamic_partitions(TENANT_PARTITIONS, new)
    return new


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    home = dagster_home(settings).absolute()  # Dagster refuses a relative DAGSTER_HOME
    added = add_tenant_partitions(settings, home)
    print(f"partitions added to the Dagster instance in {home}: {', '.join(added) or 'none'}", file=sys.stderr)
    print(home)
    return 0
