"""`crm-pipeline tenants`: the tenant registry in the deal store, changed only by these commands
(they run as the tables' owner; the application role may only read the registry).

``add`` registers the tenant in the deal store with its connection and, when DAGSTER_HOME names
an instance, adds its ``tenant`` partition there at once (the partitions sensor would within half
a minute). ``pause``/``resume`` take a tenant out of the schedule and back. ``remove`` detaches the
tenant from its CRM: its deals, change log and sync state stay in the deal store (nothing an agent
wrote is deleted by an operator's command), its Dagster partition keeps its history, and adding
it again resumes where the sync left off. ``import``/``export`` read and write the tenants TOML
format. ``rotate-key`` re-encrypts every stored token with the newest key of
``CRM_PIPELINE_SECRET_KEYS``.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

from pydantic import SecretStr, ValidationError

from crm_pipeline.settings import Settings, get_settings
from crm_pipeline.store import Database
from crm_pipeline.tenants import TOKEN_ENV_DEFAULTS, TenantConnection, TenantRegistry, TokenUnavailableError
from crm_pipeline.tenants.secrets import SecretKeyError, encrypt_token, generate_key, secret_keys
from crm_pipeline.tenants.tenants_file import parse_tenants, tenants_toml

CANNOT = 2
T = TypeVar("T")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("tenants", help="the tenant registry: the tenants the Dagster schedule syncs")
    commands = parser.add_subparsers(dest="tenants_command", required=True)
    commands.add_parser("list", help="the registered tenant connections").set_defaults(handler=run_list)
    _add_command(commands)
    for name, active, what in (
        ("pause", False, "leave a tenant out of the schedule"),
        ("resume", True, "put a paused tenant back in the schedule"),
    ):
        command = commands.add_parser(name, help=what)
        command.add_argument("tenant_id")
        command.set_defaults(handler=run_set_active, active=active)
    remove = commands.add_parser("remove", help="detach a tenant from its CRM; its deals and sync state stay")
    remove.add_argument("tenant_id")
    remove.set_defaults(handler=run_remove)
    rediscover = commands.add_parser(
        "rediscover", help="drop what the sync kept of a tenant's CRM connection: its next pass asks for all of it"
    )
    rediscover.add_argument("tenant_id")
    rediscover.set_defaults(handler=run_rediscover)
    imported = commands.add_parser("import", help="add (or replace) the tenants of a tenants TOML file")
    imported.add_argument("file", type=Path)
    imported.set_defaults(handler=run_import)
    exported = commands.add_parser("export", help="write the registry as a tenants TOML file (default: stdout)")
    exported.add_argument("file", type=Path, nargs="?")
    exported.set_defaults(handler=run_export)
    rotate = commands.add_parser("rotate-key", help="re-encrypt every stored token with the newest key")
    rotate.set_defaults(handler=run_rotate_key)
    commands.add_parser("generate-key", help="print a new key for CRM_PIPELINE_SECRET_KEYS").set_defaults(
        handler=run_generate_key
    )


def _add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``tenants add``: a tenant's connection; its token named by an environment variable or a file,
    or read from standard input, never given on the command line."""
    add = commands.add_parser("add", help="add (or replace) a tenant connection")
    add.add_argument("tenant_id", help="lowercase slug, e.g. acme")
    add.add_argument("--name", help="display name in the deal store (default: the id)")
    add.add_argument(
        "--connector", choices=sorted(TOKEN_ENV_DEFAULTS), default="notion", help="its CRM (default notion)"
    )
    add.add_argument("--database-id", help="Notion: the database of its deals (default: the sandbox's Deals)")
    add.add_argument("--data-source-id", help="Notion: which data source of the database, when it has several")
    add.add_argument("--pipeline", help="HubSpot: the deal pipeline's id (default: the account's default pipeline)")
    add.add_argument(
        "--integration-username",
        help="Salesforce: the user the token acts as, whose edits are the sync's own (default: the token's identity)",
    )
    token = add.add_mutually_exclusive_group()
    defaults = ", ".join(f"{name}: {env}" for name, env in sorted(TOKEN_ENV_DEFAULTS.items()))
    token.add_argument(
        "--token-env", help=f"the environment variable holding its token (default {defaults}); never the token"
    )
    token.add_argument(
        "--token-file", help="a file holding its token (a mounted secret), read at each use (made absolute)"
    )
    token.add_argument(
        "--token-stdin",
        action="store_true",
        help="read the token from standard input and store it encrypted (CRM_PIPELINE_SECRET_KEYS)",
    )
    add.add_argument(
        "--base-url",
        help=(
            "the API's base URL (default: the connector's public API; without a token: the sandbox Notion, "
            "the local HubSpot or the local Salesforce); Salesforce: the org's instance URL, which a token needs"
        ),
    )
    add.add_argument("--inactive", action="store_true", help="register it but leave it out of the schedule")
    add.set_defaults(handler=run_add)


def _with_registry(settings: Settings, work: Callable[[TenantRegistry], Awaitable[T]]) -> T:
    if settings.tenants_file is not None:
        print(
            f"crm-pipeline tenants: CRM_PIPELINE_TENANTS_FILE is set, so the code location reads "
            f"{settings.tenants_file}, not the registry these commands use; unset it once the file is imported",
            file=sys.stderr,
        )

    async def run() -> T:
        async with await Database.open(settings) as database:
            return await work(TenantRegistry(database))

    return asyncio.run(run())


def _fail(message: str) -> int:
    print(f"crm-pipeline tenants: {message}", file=sys.stderr)
    return CANNOT


def run_list(args: argparse.Namespace) -> int:
    settings = get_settings()

    async def read(registry: TenantRegistry) -> list[TenantConnection]:
        return await registry.connections()

    tenants = _with_registry(settings, read)
    if not tenants:
        print(f"# no tenant registered: the settings' tenant {settings.tenant_id!r} is synced")
    for tenant in tenants:
        state = "active" if tenant.active else "paused"
        print(f"{tenant.tenant_id}\t{state}\t{tenant.connector}\t{tenant.where()}\t{tenant.token}")
    return 0


def run_add(args: argparse.Namespace) -> int:
    settings = get_settings()
    try:
        token_encrypted = _stored_token(settings) if args.token_stdin else None
        tenant = TenantConnection(
            tenant_id=args.tenant_id,
            connector=args.connector,
            database_id=args.database_id,
            data_source_id=args.data_source_id,
            pipeline=args.pipeline,
            integration_username=args.integration_username,
            token_env=args.token_env,
            token_file=None if args.token_file is None else os.path.abspath(args.token_file),
            token_encrypted=token_encrypted,
            base_url=args.base_url,
            active=not args.inactive,
        )
    except (ValidationError, SecretKeyError, ValueError) as error:
        return _fail(f"add: {error}")

    async def save(registry: TenantRegistry) -> bool:
        was_empty = await registry.is_empty()
        await registry.save(tenant, name=args.name)
        return was_empty

    if _with_registry(settings, save) and tenant.tenant_id != settings.tenant_id:
        print(
            f"the registry now lists the tenants the schedule syncs: the settings' tenant {settings.tenant_id!r} "
            f"is synced no more (add it with `crm-pipeline tenants add {settings.tenant_id}`)"
        )
    print(f"tenant {tenant.tenant_id} registered ({tenant.connector}, token {tenant.token})")
    _add_partitions(settings, [tenant.tenant_id])
    return 0


def _stored_token(settings: Settings) -> str:
    """The token on standard input, encrypted with the newest key (nothing of it echoed: at a
    terminal it is asked for without echo)."""
    keys = secret_keys(settings.secret_keys)
    token = (getpass.getpass("token: ") if sys.stdin.isatty() else sys.stdin.readline()).strip()
    if not token:
        raise ValueError("no token on standard input")
    return encrypt_token(SecretStr(token), keys)


def _add_partitions(settings: Settings, tenant_ids: Sequence[str]) -> None:
    if os.environ.get("DAGSTER_HOME") and tenant_ids:
        # Here, not at the top: Dagster takes a second to import, and only this needs it.
        from crm_pipeline.defs.dagster_home import dagster_home, open_instance
        from crm_pipeline.defs.partitions import TENANT_PARTITIONS

        with open_instance(dagster_home(settings)) as instance:
            instance.add_dynamic_partitions(TENANT_PARTITIONS, list(tenant_ids))
        print(f"partitions {', '.join(tenant_ids)} added to the Dagster instance in $DAGSTER_HOME")


def run_set_active(args: argparse.Namespace) -> int:
    async def change(registry: TenantRegistry) -> bool:
        return await registry.set_active(args.tenant_id, args.active)

    if not _with_registry(get_settings(), change):
        return _fail(f"{args.tenants_command}: tenant {args.tenant_id!r} is not registered")
    print(f"tenant {args.tenant_id} {'resumed' if args.active else 'paused'}")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    async def remove(registry: TenantRegistry) -> bool:
        return await registry.remove(args.tenant_id)

    if not _with_registry(get_settings(), remove):
        return _fail(f"remove: tenant {args.tenant_id!r} is not registered")
    print(
        f"tenant {args.tenant_id} detached from its CRM: no longer synced; its deals and sync state stay in the "
        "deal store (adding it again resumes from them)"
    )
    return 0


def run_rediscover(args: argparse.Namespace) -> int:
    async def forget(registry: TenantRegistry) -> int:
        return await registry.forget_discovery(args.tenant_id)

    dropped = _with_registry(get_settings(), forget)
    print(
        f"tenant {args.tenant_id}: {dropped} kept connection(s) dropped; its next pass asks the CRM for its "
        "data source and properties again and binds them by name"
    )
    return 0


def run_import(args: argparse.Namespace) -> int:
    try:
        tenants = parse_tenants(args.file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        return _fail(f"import: {args.file}: {error}")

    async def save(registry: TenantRegistry) -> None:
        await registry.save_all(tenants)

    settings = get_settings()
    _with_registry(settings, save)
    print(f"{len(tenants)} tenants imported from {args.file}")
    _add_partitions(settings, [tenant.tenant_id for tenant in tenants if tenant.active])
    return 0


def run_export(args: argparse.Namespace) -> int:
    async def read(registry: TenantRegistry) -> list[TenantConnection]:
        return await registry.connections()

    document = tenants_toml(_with_registry(get_settings(), read))
    if args.file is None:
        print(document, end="")
    else:
        args.file.write_text(document, encoding="utf-8")
        print(f"tenants written to {args.file}", file=sys.stderr)
    return 0


def run_rotate_key(args: argparse.Namespace) -> int:
    settings = get_settings()
    try:
        keys = secret_keys(settings.secret_keys)

        async def rotate(registry: TenantRegistry) -> int:
            return await registry.rotate_keys(keys)

        count = _with_registry(settings, rotate)
    except (SecretKeyError, TokenUnavailableError) as error:
        return _fail(f"rotate-key: {error}")
    print(f"{count} stored tokens re-encrypted with the newest key: the older keys may now be dropped")
    return 0


def run_generate_key(args: argparse.Namespace) -> int:
    print(generate_key())
    return 0
