"""Schema migrations (Alembic), applied automatically on first connect."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from crm_pipeline.store.errors import SchemaTooNewError
from crm_pipeline.store.schema import SCHEMA

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Any constant works; it only has to be the same for every process migrating this database.
_MIGRATION_LOCK_KEY = 0x63726D5F6D6967  # "crm_mig"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the migrations folder has no revisions"
    return head


def current_revision(connection: Connection) -> str | None:
    context = MigrationContext.configure(connection, opts={"version_table_schema": SCHEMA})
    return context.get_current_revision()


def upgrade_to_head(connection: Connection) -> None:
    """Bring the schema to the newest revision, or refuse when the database is newer than the code.

    Runs in the caller's transaction under an advisory lock, so processes that connect at the same
    time migrate once, one after the other.
    """
    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
    connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
    config = alembic_config()
    current = current_revision(connection)
    known = {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}
    if current is not None and current not in known:
        raise SchemaTooNewError(
            f"the database schema is at revision {current!r}, which this version of crm_pipeline "
            f"does not know (its newest is {head_revision()!r}): it was migrated by a newer release; "
            "upgrade crm_pipeline instead of running an older one against it"
        )
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
