"""Connecting to PostgreSQL: the external server from the settings, or the embedded one.

Two logins: the tables' owner migrates the schema and registers tenants; the application's login
role, which can neither bypass row-level security nor become a role that can, runs every
tenant-scoped transaction. Each such transaction sets the tenant for the row-level security
policies, so even a query that forgets its WHERE clause sees only its own tenant's rows.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Self

from sqlalchemy import URL, create_engine, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from crm_pipeline.models import Actor
from crm_pipeline.settings import Settings, get_settings
from crm_pipeline.store.embedded import start_embedded_server
from crm_pipeline.store.errors import DatabaseRoleError, DatabaseUnavailableError, MigrationError, UnknownTenantError
from crm_pipeline.store.migrate import upgrade_to_head
from crm_pipeline.store.schema import ACTOR_SETTING, APP_ROLE, EMBEDDED_APP_LOGIN, TENANT_SETTING
from crm_pipeline.store.urls import parse_database_url, raise_unchained, redact, url_secrets

_DRIVER = "postgresql+psycopg"
CREATE_APP_LOGIN = f"CREATE ROLE crm_app LOGIN PASSWORD '...'; GRANT {APP_ROLE} TO crm_app"
"""What an administrator runs for the application's login role on an external server."""
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
    """The owner's URL: the configured one, else the embedded server's (started if needed)."""
    if settings.database_url is not None:
        return with_driver(parse_database_url(settings.database_url.get_secret_value()))
    admin_url = start_embedded_server(settings.data_dir)
    create_database_if_missing(admin_url, settings.database_name)
    return admin_url.set(database=settings.database_name)


def resolve_app_url(settings: Settings, owner_url: URL) -> URL:
    """The application's URL: the configured one for an external server, else the embedded
    server's application login role on the owner's database."""
    if settings.database_url is None:
        return owner_url.set(username=EMBEDDED_APP_LOGIN, password=None)
    assert settings.app_database_url is not None, "check_login_settings comes first"
    return with_driver(parse_database_url(settings.app_database_url.get_secret_value()))


def check_login_settings(settings: Settings) -> None:
    """Refuse, before connecting anywhere, a configuration that would run as the tables' owner."""
    if settings.database_url is None and settings.app_database_url is not None:
        raise DatabaseRoleError(
            "CRM_PIPELINE_APP_DATABASE_URL is set without CRM_PIPELINE_DATABASE_URL: set both for an "
            "external PostgreSQL, or neither for the embedded one"
        )
    if settings.database_url is not None and settings.app_database_url is None:
        owner = describe(with_driver(parse_database_url(settings.database_url.get_secret_value())))
        raise DatabaseRoleError(
            f"CRM_PIPELINE_APP_DATABASE_URL is not set, and the application never runs as the tables' owner "
            f"(CRM_PIPELINE_DATABASE_URL, {owner}): an owner can switch row-level security and change capture "
            f"off. As a superuser, create the application's login role once: {CREATE_APP_LOGIN}; then set "
            "CRM_PIPELINE_APP_DATABASE_URL to that role's URL for the same database"
        )


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
        if not _lost_the_server(exc):
            raise  # a statement's own failure (a timeout, a lock, a serialization failure)
        reason = redact(str(exc.orig or exc).strip().splitlines()[0], url_secrets(url))
    else:
        return
    raise_unchained(DatabaseUnavailableError(f"cannot connect to PostgreSQL at {describe(url)}: {reason}"))


_SERVER_GONE = frozenset({"53300", "57P01", "57P02", "57P03"})
"""too_many_connections, admin_shutdown, crash_shutdown, cannot_connect_now."""


def _lost_the_server(error: OperationalError) -> bool:
    """Whether the server could not be reached or dropped the connection: no SQLSTATE (the
    driver failed to connect), class 08 (connection exception), or the server refusing or ending
    sessions. psycopg also raises OperationalError for a statement's own failures, such as a
    statement timeout or a serialization failure; those are not an unavailable server."""
    sqlstate = getattr(error.orig, "sqlstate", None)
    return sqlstate is None or sqlstate.startswith("08") or sqlstate in _SERVER_GONE


@dataclass(frozen=True)
class _Reads:
    """The read-only transaction of ``Database.tenant_reads``, for the task that opened it."""

    tenant_id: str
    connection: AsyncConnection
    task: asyncio.Task[Any] | None

    def serves(self, tenant_id: str, actor: Actor | None) -> bool:
        return tenant_id == self.tenant_id and actor is None and asyncio.current_task() is self.task


_READS: ContextVar[_Reads | None] = ContextVar("crm_pipeline_tenant_reads", default=None)


class Database:
    """An open deal-store database: a migrated schema, the owner's pool and the application's."""

    def __init__(self, owner_engine: AsyncEngine, engine: AsyncEngine) -> None:
        self.owner_engine = owner_engine
        """Logged in as the tables' owner: tenant registration and administration only."""
        self.engine = engine
        """Logged in as the application's role, which row-level security binds."""

    @classmethod
    async def open(cls, settings: Settings | None = None) -> Self:
        """Resolve the server, migrate the schema to the newest revision, and open the pools.

        Refuses (DatabaseRoleError) an application login role that could get around row-level
        security: a superuser, BYPASSRLS, CREATEROLE, the tables' owner or a member of it, or a
        role that may write the change log.
        """
        settings = settings or get_settings()
        check_login_settings(settings)
        owner_url = await asyncio.to_thread(resolve_url, settings)
        embedded = settings.database_url is None
        await asyncio.to_thread(_migrate, owner_url, provision_app_login=embedded)
        database = cls(
            create_async_engine(owner_url, pool_size=1, max_overflow=4, pool_pre_ping=True),
            create_async_engine(resolve_app_url(settings, owner_url), pool_size=5, max_overflow=5, pool_pre_ping=True),
        )
        try:
            await database._check_app_role()
        except BaseException:
            await database.close()
            raise
        return database

    @property
    def url(self) -> URL:
        """The owner's URL (migrations, tenant registration, administration)."""
        return self.owner_engine.url

    @property
    def app_url(self) -> URL:
        """The application's URL (every tenant-scoped transaction)."""
        return self.engine.url

    async def close(self) -> None:
        await self.engine.dispose()
        await self.owner_engine.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @asynccontextmanager
    async def owner_transaction(self) -> AsyncIterator[AsyncConnection]:
        """A transaction as the tables' owner: only for registering tenants and administration."""
        with _connection_errors_named(self.url):
            async with self.owner_engine.begin() as connection:
                yield connection

    @asynccontextmanager
    async def registry_transaction(self) -> AsyncIterator[AsyncConnection]:
        """A transaction as the application's role for no tenant: it reads the tenant registry,
        and row-level security shows it no tenant's data."""
        with _connection_errors_named(self.app_url):
            async with self.engine.begin() as connection:
                yield connection

    @asynccontextmanager
    async def tenant_transaction(self, tenant_id: str, *, actor: Actor | None = None) -> AsyncIterator[AsyncConnection]:
        """A transaction that can see and write only `tenant_id`'s rows, enforced by PostgreSQL.

        `actor` is who the change log records for the transaction's writes (the database's
        default, `agent`, when None). Inside `tenant_reads` of the same tenant and task, the
        reads' transaction instead.
        """
        if not tenant_id:
            raise UnknownTenantError("no tenant given: every deal-store call is scoped to one tenant")
        reads = _READS.get()
        if reads is not None and reads.serves(tenant_id, actor):
            yield reads.connection
            return
        with _connection_errors_named(self.app_url):
            async with self.engine.begin() as connection:
                known = await self._scope(connection, tenant_id, actor)
                if not known:
                    raise UnknownTenantError(
                        f"unknown tenant {tenant_id!r}: register it first (DealRepository.register_tenant)"
                    )
                yield connection

    @asynccontextmanager
    async def tenant_reads(self, tenant_id: str) -> AsyncIterator[None]:
        """One read-only transaction for the tenant transactions this task opens in the block: a
        pass reads a dozen tables before it plans, and a transaction each (a connection checkout,
        BEGIN, the tenant's scope, COMMIT) cost more than the reads. A write in the block fails
        (the transaction is read-only); other tasks (gathered ones) get transactions of their own."""
        current = _READS.get()
        if current is not None and current.serves(tenant_id, None):
            yield  # already reading in one transaction
            return
        async with self.tenant_transaction(tenant_id) as connection:
            await connection.execute(text("SET TRANSACTION READ ONLY"))
            token = _READS.set(_Reads(tenant_id, connection, asyncio.current_task()))
            try:
                yield
            finally:
                _READS.reset(token)

    @staticmethod
    async def _scope(connection: AsyncConnection, tenant_id: str, actor: Actor | None) -> bool:
        """Set the tenant and actor for this transaction; say whether the tenant is registered."""
        row = (
            await connection.execute(
                text(
                    "SELECT set_config(:tenant_setting, :tenant, true), set_config(:actor_setting, :actor, true),"
                    " EXISTS (SELECT 1 FROM crm.tenants WHERE id = :tenant)"
                ),
                {
                    "tenant_setting": TENANT_SETTING,
                    "tenant": tenant_id,
                    "actor_setting": ACTOR_SETTING,
                    "actor": "" if actor is None else actor.value,
                },
            )
        ).one()
        return bool(row[2])

    async def _check_app_role(self) -> None:
        """Refuse an application login role that row-level security would not bind for sure."""
        with _connection_errors_named(self.app_url):
            async with self.engine.connect() as connection:
                found = (await connection.execute(_APP_ROLE_FACTS)).one()
        role = found.role
        if found.owner is None:
            raise DatabaseRoleError(
                f"the application's database ({describe(self.app_url)}, as {role}) has no deal store: "
                f"CRM_PIPELINE_APP_DATABASE_URL must name the same database as CRM_PIPELINE_DATABASE_URL"
            )
        problems = [
            problem
            for problem, present in (
                ("is a superuser or may become one", found.superuser),
                ("bypasses row-level security (BYPASSRLS), or may become a role that does", found.bypasses_rls),
                ("may create roles (CREATEROLE), and so grant itself more", found.creates_roles),
                (f"owns the tables or may act as their owner {found.owner}", found.acts_as_owner),
                ("may write the change log directly", found.writes_change_log),
                (f"does not have the privileges of {APP_ROLE} (a member of it, with INHERIT)", not found.app_member),
            )
            if present
        ]
        if problems:
            raise DatabaseRoleError(
                f"the application's login role {role} at {describe(self.app_url)} "
                + "; ".join(problems)
                + f". Log in as a plain role instead; as a superuser, once: {CREATE_APP_LOGIN}"
            )


_APP_ROLE_FACTS = text(
    f"""
    SELECT current_user AS role,
           pg_get_userbyid(tables.relowner) AS owner,
           bool_or(reachable.rolsuper) AS superuser,
           bool_or(reachable.rolbypassrls) AS bypasses_rls,
           bool_or(reachable.rolcreaterole) AS creates_roles,
           pg_has_role(current_user, tables.relowner, 'MEMBER') AS acts_as_owner,
           has_table_privilege(to_regclass('crm.change_log'), 'INSERT, UPDATE, DELETE, TRUNCATE')
               AS writes_change_log,
           pg_has_role(current_user, '{APP_ROLE}', 'USAGE') AS app_member
    FROM pg_roles AS reachable
    LEFT JOIN pg_class AS tables ON tables.oid = to_regclass('crm.opportunities')
    WHERE pg_has_role(current_user, reachable.oid, 'MEMBER')
    GROUP BY tables.relowner
    """
)
"""What the application's login role can do: itself and every role it can SET ROLE to."""


def _migrate(url: URL, *, provision_app_login: bool) -> None:
    """Migrate as the owner; on the embedded server, also make sure its application login exists."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with _connection_errors_named(url), engine.begin() as connection:
            upgrade_to_head(connection)
            if provision_app_login:
                connection.execute(text(_PROVISION_EMBEDDED_APP_LOGIN))
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


# Roles are cluster-wide: a migration of another database on the same server may create or grant
# it at the same moment, hence the duplicate-tolerant blocks.
_PROVISION_EMBEDDED_APP_LOGIN = f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{EMBEDDED_APP_LOGIN}') THEN
        CREATE ROLE {EMBEDDED_APP_LOGIN} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB INHERIT;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;
DO $$
BEGIN
    IF NOT pg_has_role('{EMBEDDED_APP_LOGIN}', '{APP_ROLE}', 'MEMBER') THEN
        GRANT {APP_ROLE} TO {EMBEDDED_APP_LOGIN};
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;
"""
