"""The deal store: tenants, opportunities, contacts, activities, change log, row-level security.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TENANT_SCOPED = ("opportunities", "contacts", "activities", "change_log")

UPGRADE = """
CREATE TABLE crm.tenants (
    id          text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE crm.opportunities (
    id                      uuid PRIMARY KEY,
    tenant_id               text NOT NULL REFERENCES crm.tenants(id),
    name                    text NOT NULL,
    deal_stage              text NOT NULL,
    estimated_value         numeric(18, 2) CHECK (estimated_value >= 0),
    close_date              date,
    product_line            text,
    probability             numeric(7, 6) CHECK (probability BETWEEN 0 AND 1),
    source                  text,
    contact_name            text,
    contact_email           text,
    qualification_snapshot  jsonb,
    detection_confidence    numeric(7, 6) CHECK (detection_confidence BETWEEN 0 AND 1),
    qualification_tracking  jsonb,
    stakeholder_map         jsonb,
    score_evidence          jsonb,
    custom_notes            text,
    manual_tags             jsonb,
    override_stage          text,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    archived_at             timestamptz
);
CREATE INDEX opportunities_tenant_updated ON crm.opportunities (tenant_id, updated_at, id);
CREATE INDEX opportunities_tenant_stage ON crm.opportunities (tenant_id, deal_stage);

CREATE TABLE crm.contacts (
    id              uuid PRIMARY KEY,
    tenant_id       text NOT NULL REFERENCES crm.tenants(id),
    name            text NOT NULL,
    email           text,
    phone           text,
    title           text,
    company         text,
    opportunity_id  uuid REFERENCES crm.opportunities(id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX contacts_tenant_updated ON crm.contacts (tenant_id, updated_at, id);

CREATE TABLE crm.activities (
    id              uuid PRIMARY KEY,
    tenant_id       text NOT NULL REFERENCES crm.tenants(id),
    opportunity_id  uuid NOT NULL REFERENCES crm.opportunities(id),
    kind            text NOT NULL,
    subject         text NOT NULL,
    body            text NOT NULL,
    occurred_at     timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX activities_tenant_opportunity ON crm.activities (tenant_id, opportunity_id, occurred_at);

CREATE TABLE crm.change_log (
    sequence     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    text NOT NULL REFERENCES crm.tenants(id),
    record_type  text NOT NULL CHECK (record_type IN ('opportunity', 'contact', 'activity')),
    record_id    uuid NOT NULL,
    actor        text NOT NULL CHECK (actor IN ('agent', 'human', 'sync')),
    changes      jsonb NOT NULL,
    changed_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX change_log_tenant_time ON crm.change_log (tenant_id, changed_at, sequence);
CREATE INDEX change_log_tenant_record ON crm.change_log (tenant_id, record_id, sequence);

-- The application role: it owns nothing and is not a superuser, so row-level security binds it.
-- Roles are cluster-wide, so another database on the same server may have created it already.
-- The application's login role is a member of it (granted by an administrator; automatically on
-- the embedded server).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'crm_pipeline_app') THEN
        CREATE ROLE crm_pipeline_app NOLOGIN;
    END IF;
EXCEPTION
    WHEN duplicate_object OR unique_violation THEN
        NULL;  -- created concurrently by a migration of another database
    WHEN insufficient_privilege THEN
        RAISE EXCEPTION 'the login role % may not create roles, and role crm_pipeline_app does not exist yet', current_user
            USING HINT = 'As a superuser, run: CREATE ROLE crm_pipeline_app NOLOGIN';
END
$$;
GRANT USAGE ON SCHEMA crm TO crm_pipeline_app;
GRANT SELECT ON crm.tenants TO crm_pipeline_app;
GRANT SELECT, INSERT, UPDATE ON crm.opportunities, crm.contacts TO crm_pipeline_app;
GRANT SELECT, INSERT ON crm.activities, crm.change_log TO crm_pipeline_app;
"""

POLICY = """
ALTER TABLE crm.{table} ENABLE ROW LEVEL SECURITY;
ALTER TABLE crm.{table} FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON crm.{table}
    USING (tenant_id = current_setting('crm.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('crm.tenant_id', true));
"""

TENANT_POLICY = """
ALTER TABLE crm.tenants ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON crm.tenants
    USING (id = current_setting('crm.tenant_id', true));
"""


def upgrade() -> None:
    op.execute(UPGRADE)
    for table in TENANT_SCOPED:
        op.execute(POLICY.format(table=table))
    op.execute(TENANT_POLICY)


def downgrade() -> None:
    for table in ("change_log", "activities", "contacts", "opportunities", "tenants"):
        op.execute(f"DROP TABLE crm.{table}")
