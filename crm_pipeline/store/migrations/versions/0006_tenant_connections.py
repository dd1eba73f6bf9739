"""The tenant registry: each tenant's connection to its external CRM, beside the tenant.

- tenant_connections: one row per synced tenant: the connector, whether the schedule syncs it
  (`active`), the API's base URL, the connector's own settings (`settings`: a Notion database and
  data source, a HubSpot pipeline; JSON, so another connector needs no migration) and the token's
  reference, exactly one of: an environment variable's name (`token_env`), a file's path
  (`token_file`, a mounted secret) or the token encrypted with the deployment's key
  (`token_encrypted`, Fernet; never the token in clear). Another kind of reference (an OAuth token
  that refreshes) is another column under the same one-of check.

A table beside crm.tenants rather than columns of it, because the two are read differently:
- the schedule and the partitions sensor list every active tenant's connection in one query as the
  application role, while crm.tenants is scoped by row-level security to the one tenant of a
  transaction (the application sees no other tenant's row);
- a tenant is registered whether or not it is synced (the agent writes deals for it either way):
  removing its connection stops the syncing and keeps its deals and sync state, which reference
  crm.tenants, untouched.

Privileges: the registry is not tenant data but the deployment's configuration, so no row-level
security: the application role may only read it (SELECT), which is what a pass and the schedule
need; only the owner's commands (`crm-pipeline tenants ...`) add, change, pause, remove or re-encrypt.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE crm.tenant_connections (
    tenant_id        text PRIMARY KEY REFERENCES crm.tenants(id),
    connector        text NOT NULL CHECK (connector ~ '^[a-z][a-z0-9_]*$'),
    active           boolean NOT NULL DEFAULT true,
    base_url         text,
    settings         jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(settings) = 'object'),
    token_env        text CHECK (token_env ~ '^[A-Za-z_][A-Za-z0-9_]*$'),
    token_file       text CHECK (token_file <> ''),
    token_encrypted  text CHECK (token_encrypted <> ''),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (num_nonnulls(token_env, token_file, token_encrypted) = 1)
);
CREATE INDEX tenant_connections_active ON crm.tenant_connections (tenant_id) WHERE active;

GRANT SELECT ON crm.tenant_connections TO crm_pipeline_app;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute("DROP TABLE crm.tenant_connections")
