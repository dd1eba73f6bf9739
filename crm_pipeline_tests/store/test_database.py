"""Connecting, migrating and starting the embedded server, including when things go wrong."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from uuid import uuid4

import pytest
from sqlalchemy import URL, create_engine, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.pool import NullPool

from crm_pipeline.models import OpportunityCreate
from crm_pipeline.settings import Settings
from crm_pipeline.store import (
    Database,
    DatabaseRoleError,
    DatabaseUnavailableError,
    DealRepository,
    EmbeddedServerError,
    SchemaTooNewError,
)
from crm_pipeline.store.migrate import head_revision

embedded_only = pytest.mark.skipif(
    Settings().database_url is not None, reason="creates scratch databases on the embedded server"
)


async def test_unreachable_server_names_host_and_database_but_not_the_password(tmp_path: Path) -> None:
    settings = Settings(
        database_url="postgresql://crm:hunter2@127.0.0.1:1/deals",
        app_database_url="postgresql://crm_app:hunter2@127.0.0.1:1/deals",
        data_dir=tmp_path,
    )
    with pytest.raises(DatabaseUnavailableError) as caught:
        await Database.open(settings)
    message = str(caught.value)
    assert "127.0.0.1:1/deals" in message
    assert "hunter2" not in message and "hunter2" not in repr(caught.value)


async def test_embedded_server_that_cannot_start_points_at_its_log(tmp_path: Path) -> None:
    (tmp_path / "postgres").write_text("a file where the data directory should be")
    # Both URLs None: the embedded server, whatever the environment says.
    with pytest.raises(EmbeddedServerError, match=str(tmp_path / "postgres" / "log")):
        await Database.open(Settings(database_url=None, app_database_url=None, data_dir=tmp_path))


@embedded_only
async def test_a_database_migrated_by_newer_code_is_refused(database: Database) -> None:
    name = f"crm_newer_{uuid4().hex[:8]}"
    admin = create_engine(database.url.set(database="postgres"), poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        settings = Settings(database_name=name)
        opened = await Database.open(settings)  # migrates to head
        await opened.close()
        scratch = create_engine(database.url.set(database=name), poolclass=NullPool)
        with scratch.begin() as connection:
            assert connection.scalar(text("SELECT version_num FROM crm.alembic_version")) == head_revision()
            connection.execute(text("UPDATE crm.alembic_version SET version_num = '9999_from_the_future'"))
        scratch.dispose()
        with pytest.raises(SchemaTooNewError, match="9999_from_the_future"):
            await Database.open(settings)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


OPEN_AND_COUNT = """
import asyncio, sys
from pathlib import Path
from sqlalchemy import text
from crm_pipeline.settings import Settings
from crm_pipeline.store import Database

async def main():
    database = await Database.open(Settings(data_dir=Path(sys.argv[1]), database_name="crm_race"))
    async with database.owner_transaction() as connection:
        print(await connection.scalar(text("SELECT count(*) FROM crm.alembic_version")))
    await database.close()

asyncio.run(main())
"""


@embedded_only
def test_two_processes_starting_at_once_share_one_server_and_migrate_once(tmp_path: Path) -> None:
    processes = [
        subprocess.Popen([sys.executable, "-c", OPEN_AND_COUNT, str(tmp_path)], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=120)[0].strip() for process in processes]
    assert [process.returncode for process in processes] == [0, 0]
    assert outputs == ["1", "1"]


@embedded_only
async def test_an_external_server_runs_the_application_as_a_plain_login_role(database: Database) -> None:
    """The usual external set-up: an owner that is no superuser migrates; the application logs in
    as a role an administrator created, and every role that could get around row-level security
    is refused."""
    suffix = uuid4().hex[:8]
    owner, app_login, name = f"crm_owner_{suffix}", f"crm_app_{suffix}", f"crm_external_{suffix}"
    admin = create_engine(database.url.set(database="postgres"), poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE ROLE {owner} LOGIN PASSWORD 'pw-{suffix}'"))
        connection.execute(text(f'CREATE DATABASE "{name}" OWNER {owner}'))
    owner_url = database.url.set(database=name, username=owner, password=f"pw-{suffix}")
    app_url = owner_url.set(username=app_login)

    def settings(app: URL | None) -> Settings:
        return Settings(
            database_url=owner_url.render_as_string(hide_password=False),
            app_database_url=None if app is None else app.render_as_string(hide_password=False),
        )

    try:
        with pytest.raises(DatabaseRoleError, match="APP_DATABASE_URL is not set.*GRANT crm_pipeline_app TO crm_app"):
            await Database.open(settings(None))
        with pytest.raises(DatabaseRoleError, match=f"role {owner} .* owns the tables"):
            await Database.open(settings(owner_url))
        with pytest.raises(DatabaseRoleError, match="is a superuser"):
            await Database.open(settings(database.url.set(database=name)))

        # What the README tells an administrator to run.
        with admin.connect() as connection:
            connection.execute(text(f"CREATE ROLE {app_login} LOGIN PASSWORD 'pw-{suffix}'"))
            connection.execute(text(f"GRANT crm_pipeline_app TO {app_login}"))
            connection.execute(text(f"ALTER ROLE {app_login} BYPASSRLS"))
        with pytest.raises(DatabaseRoleError, match="bypasses row-level security"):
            await Database.open(settings(app_url))
        with admin.connect() as connection:
            connection.execute(text(f"ALTER ROLE {app_login} NOBYPASSRLS"))

        opened = await Database.open(settings(app_url))
        try:
            repository = DealRepository(opened)
            await repository.register_tenant("ext-a")
            await repository.create_opportunity("ext-a", OpportunityCreate(name="External deal"))
            async with opened.owner_transaction() as connection:
                assert (await connection.execute(text(ROLE_FACTS))).one() == (owner, False)
            async with opened.tenant_transaction("ext-a") as connection:
                assert (await connection.execute(text(ROLE_FACTS))).one() == (app_login, False)
                await connection.execute(text("SELECT set_config('crm.tenant_id', 'someone-else', true)"))
                assert await connection.scalar(text("SELECT count(*) FROM crm.opportunities")) == 0
        finally:
            await opened.close()
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(text(f"DROP ROLE IF EXISTS {app_login}"))
            connection.execute(text(f"DROP ROLE IF EXISTS {owner}"))
        admin.dispose()


ROLE_FACTS = "SELECT current_user::text, rolsuper FROM pg_roles WHERE rolname = current_user"


async def test_an_application_url_without_an_owner_url_is_refused(tmp_path: Path) -> None:
    settings = Settings(database_url=None, app_database_url="postgresql://crm_app@127.0.0.1:1/deals", data_dir=tmp_path)
    with pytest.raises(DatabaseRoleError, match="set both for an external PostgreSQL, or neither"):
        await Database.open(settings)
    assert not (tmp_path / "postgres").exists()  # refused before starting anything


async def test_a_statement_that_fails_on_a_reachable_server_is_not_reported_as_unreachable(
    database: Database, tenant: str
) -> None:
    """psycopg raises OperationalError for a statement timeout too: that is the statement's
    failure, with PostgreSQL's own error, not "cannot connect"."""
    with pytest.raises(OperationalError, match="statement timeout") as caught:
        async with database.tenant_transaction(tenant) as connection:
            await connection.execute(text("SET LOCAL statement_timeout = '1ms'"))
            await connection.execute(text("SELECT pg_sleep(1)"))
    assert not isinstance(caught.value, DatabaseUnavailableError)


async def _transaction_started(database: Database, tenant: str) -> tuple[object, int]:
    """When the transaction this read runs in began, and its server process."""
    async with database.tenant_transaction(tenant) as connection:
        row = (await connection.execute(text("SELECT transaction_timestamp(), pg_backend_pid()"))).one()
    return row[0], row[1]


async def test_reads_in_a_tenant_reads_block_share_one_read_only_transaction(
    database: Database, repository: DealRepository, tenant: str
) -> None:
    """A pass reads a dozen tables before it plans: in one transaction, not one each."""
    apart = [await _transaction_started(database, tenant) for _ in range(2)]
    assert apart[0][0] != apart[1][0]
    async with database.tenant_reads(tenant):
        together = [await _transaction_started(database, tenant) for _ in range(2)]
        assert together[0] == together[1]
        async with database.tenant_reads(tenant):  # nested: the same transaction
            assert await _transaction_started(database, tenant) == together[0]
        with pytest.raises(DBAPIError, match="read-only transaction"):
            async with database.tenant_transaction(tenant) as connection:
                await connection.execute(text("UPDATE crm.opportunities SET name = name WHERE false"))


async def test_a_tenant_reads_block_leaves_other_tasks_tenants_and_attributed_writes_their_own_transactions(
    database: Database, repository: DealRepository, tenant: str
) -> None:
    other = f"other-{uuid4().hex[:8]}"
    await repository.register_tenant(other)
    async with database.tenant_reads(tenant):
        mine = await _transaction_started(database, tenant)
        gathered = await asyncio.gather(*(_transaction_started(database, tenant) for _ in range(2)))
        assert all(started != mine for started in gathered)  # tasks of their own may run at once
        assert await _transaction_started(database, other) != mine
        deal = await repository.create_opportunity(tenant, OpportunityCreate(name="Written inside the block"))
    assert [found.name for found in await repository.get_opportunities(tenant, [deal.id])] == [deal.name]
