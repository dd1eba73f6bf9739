"""Connecting to PostgreSQL: the external server from the settings, or the embedded one.

Every tenant-scoped transaction switches to the unprivileged application role and sets the tenant
for PostgreSQL's row-level security policies, so even a query that forgets its WHERE clause sees
only its own tenant's rows.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Self

from sqlalchemy import URL, create_engine, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from crm_pipeline.settings import Settings, get_settings
from crm_pipeline.store.embedded import start_embedded_server
from crm_pipeline.store.errors import DatabaseUnavailableError, MigrationError, UnknownTenantError
from crm_pipeline.store.migrate import upgrade_to_head
from crm_pipeline.store.schema import APP_ROLE, TENANT_SETTING
from crm_pipeline.store.urls import parse_database_url, raise_unchained, redact, url_secrets

_DRIVER = "postgresql+psycopg"
_ALREADY_EXISTS = frozenset({"42P04", "23505"})


def describe(url: URL) -> str:
    """Where a URL points (host or socket directory, port, database), never any part of its
    password, even one the URL's parts happen to share."""
    host = url.host or url.query.get("host") or "localhost"
    port = f":{url.port}" if url.port else ""
    return redact(f"{host}{port}/{url.database}", [url.password] if url.password else [])


def with_driver(url: URL) -> URL:
    """The same server and database, spoken to with psycopg 3 (sync and async alike)."""
    return url.set(drivername=_DRIVER)


def resolve_url(settings: Settings) -> URL:
    """The deal-store URL: the configured one, else the embedded server (started if needed)."""
    if settings.database_url is not None:
        return with_driver(parse_database_url(settings.database_url.get_secret_value()))
    admin_url = start_embedded_server(settings.data_dir)
    create_database_if_missing(admin_url, settings.database_name)
    return admin_url.set(database=settings.database_name)


def create_database_if_missing(admin_url: URL, name: str) -> None:
    engine = create_engine(admin_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with _connection_errors_named(admin_url), engine.connect() as connection:
            exists = connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}).first()
            if not exists:
                try:
                    connection.execute(text(f'CREATE DATABASE "{name}"'))
                except DBAPIError as exc:
                    # Another process created it between the check and here: PostgreSQL reports
                    # duplicate_database, or a unique violation when both inserts race.
                    if getattr(exc.orig, "sqlstate", None) not in _ALREADY_EXISTS:
                        raise
    finally:
        engine.dispose()


@contextmanager
def _connection_errors_named(url: URL) -> Iterator[None]:
    """Turn "could not connect" into one error naming host and database. The driver's message is
    scrubbed of the user name and password, and the driver's error is not chained: it may echo
    the host, and in a mistyped URL the "host" can be the tail of the password."""
    try:
        yield
    except OperationalError as exc:
        reason = redact(str(exc.orig or exc).strip().splitlines()[0], url_secrets(url))
    else:
        return
    raise_unchained(DatabaseUnavailableError(f"cannot connect to PostgreSQL at {describe(url)}: {reason}"))


class Database:
    """An open deal-store database: a migrated schema and an async connection pool."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @classmethod
    async def open(cls, settings: Settings | None = None) -> Self:
        """Resolve the server, migrate the schema to the newest revision, and open the pool."""
        settings = settings or get_settings()
        url = await asyncio.to_thread(resolve_url, settings)
        await asyncio.to_thread(_migrate, url)
        return cls(create_async_engine(url, pool_size=5, max_overflow=5, pool_pre_ping=True))

    @property
    def url(self) -> URL:
        return self.engine.url

    async def close(self) -> None:
        await self.engine.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @asynccontextmanager
    async def owner_transaction(self) -> AsyncIterator[AsyncConnection]:
        """A transaction as the login user: only for registering tenants and administration."""
        with _connection_errors_named(self.url):
            async with self.engine.begin() as connection:
                yield connection

    @asynccontextmanager
    async def tenant_transaction(self, tenant_id: str) -> AsyncIterator[AsyncConnection]:
        """A transaction that can see and write only `tenant_id`'s rows, enforced by PostgreSQL."""
        if not tenant_id:
            raise UnknownTenantError("no tenant given: every deal-store call is scoped to one tenant")
        with _connection_errors_named(self.url):
            async with self.engine.begin() as connection:
                known = await self._scope(connection, tenant_id)
                if not known:
                    raise UnknownTenantError(
                        f"unknown tenant {tenant_id!r}: register it first (DealRepository.register_tenant)"
                    )
                yield connection

    @staticmethod
    async def _scope(connection: AsyncConnection, tenant_id: str) -> bool:
        """Switch to the application role and tenant; say whether the tenant is registered."""
        row = (
            await connection.execute(
                text(
                    "SELECT set_config('role', :role, true), set_config(:setting, :tenant, true),"
                    " EXISTS (SELECT 1 FROM crm.tenants WHERE id = :tenant)"
                ),
                {"role": APP_ROLE, "setting": TENANT_SETTING, "tenant": tenant_id},
            )
        ).one()
        return bool(row[2])


def _migrate(url: URL) -> None:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with _connection_errors_named(url), engine.begin() as connection:
            upgrade_to_head(connection)
    except DBAPIError as exc:
        # Not the statement (a whole migration script): PostgreSQL's own reason and hint.
        diagnostic = getattr(exc.orig, "diag", None)
        reason = getattr(diagnostic, "message_primary", None) or str(exc.orig).splitlines()[0]
        hint = getattr(diagnostic, "message_hint", None)
        raise MigrationError(
            f"migrating the deal store at {describe(url)} failed: {reason}" + (f". {hint}" if hint else "")
        ) from None
    finally:
        engine.dispose()
