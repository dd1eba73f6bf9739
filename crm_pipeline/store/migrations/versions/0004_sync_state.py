"""The sync engine's state, beside the data it covers: links, bases, watermarks, errors, audit.

- sync_links: a deal ⇄ its record in one external connector, unique both ways per tenant and
  connector (a deal has one page, a page mirrors one deal); `archived` once both sides hold the
  pair archived (deal) and trashed (page); `vanished_at` while the external record cannot be
  found (the pending-delete queue: nothing is deleted for it).
- sync_base: per linked deal and field, the value both sides held after the last successful sync
  (JSON, as the change log stores values). Gone with its link.
- sync_watermarks: per tenant, connector and direction, how far the sync has read: the change
  feed's cursor outbound, an edit-time watermark inbound, one for the external trash, and how far
  the rolling reconciliation has come (text, read by the engine).
- sync_errors: the error ledger, one row per failing record and field (field '' for the whole
  record); retried every pass, removed once the record syncs.
- sync_activities: the activities to append to the external record, once each: queued when the
  change feed shows them, `attempted` before each send (after a crash the external side is
  searched before sending again), `external_id` once landed.
- sync_audit: append-only, what the sync decided and wrote: field, old, new, side written, rule.

Every table is tenant-scoped by row-level security like the deal tables; the application role may
read and write all but the audit, which it may only append to.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TABLES = ("sync_links", "sync_base", "sync_watermarks", "sync_errors", "sync_audit", "sync_activities")

UPGRADE = """
CREATE TABLE crm.sync_links (
    tenant_id    text NOT NULL REFERENCES crm.tenants(id),
    connector    text NOT NULL,
    record_id    uuid NOT NULL,
    external_id  text NOT NULL,
    archived     boolean NOT NULL DEFAULT false,
    vanished_at  timestamptz,
    linked_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, connector, record_id),
    UNIQUE (tenant_id, connector, external_id),
    FOREIGN KEY (tenant_id, record_id) REFERENCES crm.opportunities (tenant_id, id)
);

CREATE TABLE crm.sync_base (
    tenant_id  text NOT NULL,
    connector  text NOT NULL,
    record_id  uuid NOT NULL,
    field      text NOT NULL,
    value      jsonb,
    synced_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, connector, record_id, field),
    FOREIGN KEY (tenant_id, connector, record_id)
        REFERENCES crm.sync_links (tenant_id, connector, record_id) ON DELETE CASCADE
);

CREATE TABLE crm.sync_watermarks (
    tenant_id   text NOT NULL REFERENCES crm.tenants(id),
    connector   text NOT NULL,
    direction   text NOT NULL CHECK (direction IN ('outbound', 'inbound', 'trash', 'reconcile')),
    position    text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, connector, direction)
);

CREATE TABLE crm.sync_errors (
    tenant_id      text NOT NULL REFERENCES crm.tenants(id),
    connector      text NOT NULL,
    record_id      text NOT NULL,
    field          text NOT NULL DEFAULT '',
    side           text NOT NULL CHECK (side IN ('primary', 'external')),
    value          jsonb,
    reason         text NOT NULL,
    attempts       integer NOT NULL DEFAULT 1,
    first_seen_at  timestamptz NOT NULL DEFAULT now(),
    last_seen_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, connector, record_id, field)
);

CREATE TABLE crm.sync_audit (
    sequence     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    text NOT NULL REFERENCES crm.tenants(id),
    connector    text NOT NULL,
    record_id    uuid NOT NULL,
    external_id  text,
    field        text NOT NULL,
    old          jsonb,
    new          jsonb,
    side         text NOT NULL CHECK (side IN ('primary', 'external')),
    outcome      text NOT NULL,
    rule         text NOT NULL,
    at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sync_audit_tenant_record ON crm.sync_audit (tenant_id, record_id, sequence);

CREATE TABLE crm.sync_activities (
    tenant_id       text NOT NULL REFERENCES crm.tenants(id),
    connector       text NOT NULL,
    activity_id     uuid NOT NULL,
    opportunity_id  uuid NOT NULL,
    occurred_at     timestamptz NOT NULL,
    attempted       boolean NOT NULL DEFAULT false,
    external_id     text,
    PRIMARY KEY (tenant_id, connector, activity_id)
);
CREATE INDEX sync_activities_pending ON crm.sync_activities (tenant_id, connector, occurred_at)
    WHERE external_id IS NULL;

GRANT SELECT, INSERT, UPDATE, DELETE
    ON crm.sync_links, crm.sync_base, crm.sync_watermarks, crm.sync_errors, crm.sync_activities
    TO crm_pipeline_app;
GRANT SELECT, INSERT ON crm.sync_audit TO crm_pipeline_app;
"""

POLICY = """
ALTER TABLE crm.{table} ENABLE ROW LEVEL SECURITY;
ALTER TABLE crm.{table} FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON crm.{table}
    USING (tenant_id = current_setting('crm.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('crm.tenant_id', true));
"""


def upgrade() -> None:
    op.execute(UPGRADE)
    for table in TABLES:
        op.execute(POLICY.format(table=table))


def downgrade() -> None:
    for table in reversed(TABLES):
        op.execute(f"DROP TABLE crm.{table}")
