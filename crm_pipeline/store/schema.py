"""Table definitions of the deal store (SQLAlchemy Core), in their own PostgreSQL schema.

The tables live in schema `crm` so that Dagster's own storage (which also uses Alembic and its own
`alembic_version`) can share the database without clashing. Migrations create them; these objects
only describe them to the queries.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    Date,
    ForeignKey,
    Identity,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    Table,
    Text,
    any_,
    bindparam,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TIMESTAMP, UUID
from sqlalchemy.types import UserDefinedType

SCHEMA = "crm"
T = TypeVar("T")
APP_ROLE = "crm_pipeline_app"
"""The role holding the application's privileges: not a superuser, not the tables' owner, so
PostgreSQL's row-level security binds it. The application logs in as a member of it."""
EMBEDDED_APP_LOGIN = "crm_pipeline_app_login"
"""The application's login role on the embedded server, created with the schema (local socket
connections to the embedded server need no password)."""
TENANT_SETTING = "crm.tenant_id"
"""The per-transaction setting that the row-level security policies compare `tenant_id` with."""
ACTOR_SETTING = "crm.actor"
"""The per-transaction setting the change-capture triggers record as the actor (`agent` if unset)."""


class XID8(UserDefinedType[str]):
    """PostgreSQL's 64-bit transaction id (read as text): orders the change feed."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "xid8"


def any_of(column: Column[T], values: Iterable[T]) -> ColumnElement[bool]:
    """``column = ANY(values)``, the values bound as one array parameter: ``IN`` binds one
    parameter per value, and PostgreSQL refuses a statement with more than 65,535 of them."""
    return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))


metadata = MetaData(schema=SCHEMA)

_now = text("now()")


def _timestamp(name: str, *, nullable: bool = False) -> Column[Any]:
    return Column(name, TIMESTAMP(timezone=True), nullable=nullable, server_default=None if nullable else _now)


tenants = Table(
    "tenants",
    metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    _timestamp("created_at"),
)

tenant_connections = Table(
    "tenant_connections",
    metadata,
    Column("tenant_id", Text, ForeignKey("tenants.id"), primary_key=True),
    Column("connector", Text, nullable=False),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    Column("base_url", Text),
    Column("settings", JSONB, nullable=False, server_default=text("'{}'")),
    Column("token_env", Text),
    Column("token_file", Text),
    Column("token_encrypted", Text),
    _timestamp("created_at"),
    _timestamp("updated_at"),
)
"""The tenant registry (migration 0006): readable by the application, changed by the owner only."""

opportunities = Table(
    "opportunities",
    metadata,
    Column("id", UUID(as_uuid=True), nullable=False),
    Column("tenant_id", Text, ForeignKey("tenants.id"), nullable=False),
    Column("name", Text, nullable=False),
    Column("deal_stage", Text, nullable=False),
    Column("estimated_value", Numeric(18, 2)),
    Column("close_date", Date),
    Column("product_line", Text),
    Column("probability", Numeric(7, 6)),
    Column("source", Text),
    Column("contact_name", Text),
    Column("contact_email", Text),
    Column("qualification_snapshot", JSONB(none_as_null=True)),
    Column("detection_confidence", Numeric(7, 6)),
    Column("qualification_tracking", JSONB(none_as_null=True)),
    Column("stakeholder_map", JSONB(none_as_null=True)),
    Column("score_evidence", JSONB(none_as_null=True)),
    Column("custom_notes", Text),
    Column("manual_tags", JSONB(none_as_null=True)),
    Column("override_stage", Text),
    _timestamp("created_at"),
    _timestamp("updated_at"),
    _timestamp("archived_at", nullable=True),
    PrimaryKeyConstraint("tenant_id", "id"),  # keys per tenant: another tenant's ids tell nothing
)

contacts = Table(
    "contacts",
    metadata,
    Column("id", UUID(as_uuid=True), nullable=False),
    Column("tenant_id", Text, ForeignKey("tenants.id"), nullable=False),
    Column("name", Text, nullable=False),
    Column("email", Text),
    Column("phone", Text),
    Column("title", Text),
    Column("company", Text),
    Column("opportunity_id", UUID(as_uuid=True)),  # with tenant_id, a key of opportunities
    _timestamp("created_at"),
    _timestamp("updated_at"),
    PrimaryKeyConstraint("tenant_id", "id"),
)

activities = Table(
    "activities",
    metadata,
    Column("id", UUID(as_uuid=True), nullable=False),
    Column("tenant_id", Text, ForeignKey("tenants.id"), nullable=False),
    Column("opportunity_id", UUID(as_uuid=True), nullable=False),  # with tenant_id, a key of opportunities
    Column("kind", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("occurred_at", TIMESTAMP(timezone=True), nullable=False),
    _timestamp("created_at"),
    PrimaryKeyConstraint("tenant_id", "id"),
)

change_log = Table(
    "change_log",
    metadata,
    Column("sequence", BigInteger, Identity(always=True), primary_key=True),
    Column("tenant_id", Text, ForeignKey("tenants.id"), nullable=False),
    Column("record_type", Text, nullable=False),
    Column("record_id", UUID(as_uuid=True), nullable=False),
    Column("actor", Text, nullable=False),
    Column("changes", JSONB, nullable=False),
    _timestamp("changed_at"),
    Column("txid", XID8(), nullable=False, server_default=text("pg_current_xact_id()")),
)

TENANT_SCOPED_TABLES: tuple[Table, ...] = (opportunities, contacts, activities, change_log)

# --- the sync engine's state (migration 0004) ------------------------------------------------------

sync_links = Table(
    "sync_links",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("connector", Text, nullable=False),
    Column("record_id", UUID(as_uuid=True), nullable=False),
    Column("external_id", Text, nullable=False),
    Column("archived", Boolean, nullable=False),
    _timestamp("vanished_at", nullable=True),
    _timestamp("linked_at"),
    PrimaryKeyConstraint("tenant_id", "connector", "record_id"),
)

sync_base = Table(
    "sync_base",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("connector", Text, nullable=False),
    Column("record_id", UUID(as_uuid=True), nullable=False),
    Column("field", Text, nullable=False),
    Column("value", JSONB(none_as_null=True)),
    _timestamp("synced_at"),
    PrimaryKeyConstraint("tenant_id", "connector", "record_id", "field"),
)

sync_watermarks = Table(
    "sync_watermarks",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("connector", Text, nullable=False),
    Column("direction", Text, nullable=False),
    Column("position", Text, nullable=False),
    _timestamp("updated_at"),
    PrimaryKeyConstraint("tenant_id", "connector", "direction"),
)

sync_connections = Table(
    "sync_connections",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("connector", Text, nullable=False),
    Column("discovery", JSONB, nullable=False),
    _timestamp("checked_at"),
    _timestamp("updated_at"),
    PrimaryKeyConstraint("tenant_id", "connector"),
)

sync_errors = Table(
    "sync_errors",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("connector", Text, nullable=False),
    Column("record_id", Text, nullable=False),
    Column("field", Text, nullable=False),
    Column("side", Text, nullable=False),
    Column("value", JSONB(none_as_null=True)),
    Column("reason", Text, nullable=False),
    Column("attempts", BigInteger, nullable=False),
    _timestamp("first_seen_at"),
    _timestamp("last_seen_at"),
    PrimaryKeyConstraint("tenant_id", "connector", "record_id", "field"),
)

sync_audit = Table(
    "sync_audit",
    metadata,
    Column("sequence", BigInteger, Identity(always=True), primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("connector", Text, nullable=False),
    Column("record_id", UUID(as_uuid=True), nullable=False),
    Column("external_id", Text),
    Column("field", Text, nullable=False),
    Column("old", JSONB(none_as_null=True)),
    Column("new", JSONB(none_as_null=True)),
    Column("side", Text, nullable=False),
    Column("outcome", Text, nullable=False),
    Column("rule", Text, nullable=False),
    _timestamp("at"),
)

sync_activities = Table(
    "sync_activities",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("connector", Text, nullable=False),
    Column("activity_id", UUID(as_uuid=True), nullable=False),
    Column("opportunity_id", UUID(as_uuid=True), nullable=False),
    Column("occurred_at", TIMESTAMP(timezone=True), nullable=False),
    Column("attempted", Boolean, nullable=False),
    Column("external_id", Text),
    PrimaryKeyConstraint("tenant_id", "connector", "activity_id"),
)

SYNC_STATE_TABLES: tuple[Table, ...] = (
    sync_links,
    sync_base,
    sync_watermarks,
    sync_errors,
    sync_audit,
    sync_activities,
    sync_connections,
)
