"""What the sync found out about each tenant's connection, so a new process need not ask again.

- sync_connections: per tenant and connector, the adapter's discovery (JSON: for Notion the data
  source, the properties bound to ids with their types, the bot user; for HubSpot the pipeline's
  stage ids and tag options) and when it was last asked in full (`checked_at`). Never a token or
  any other secret: the discovery holds only what the CRM answered about its schema.

Tenant-scoped by row-level security like the sync state of 0004: the application role reads and
writes its tenant's rows only, and deletes none (a tenant's connection state is replaced, never
removed by a pass).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE crm.sync_connections (
    tenant_id   text NOT NULL REFERENCES crm.tenants(id),
    connector   text NOT NULL,
    discovery   jsonb NOT NULL,
    checked_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, connector)
);

GRANT SELECT, INSERT, UPDATE ON crm.sync_connections TO crm_pipeline_app;

ALTER TABLE crm.sync_connections ENABLE ROW LEVEL SECURITY;
ALTER TABLE crm.sync_connections FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON crm.sync_connections
    USING (tenant_id = current_setting('crm.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('crm.tenant_id', true));
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute("DROP TABLE crm.sync_connections")
