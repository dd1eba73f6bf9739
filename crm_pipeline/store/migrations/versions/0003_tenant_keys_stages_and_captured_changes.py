"""Record keys per tenant; only the pipeline's stages; the change log written by PostgreSQL itself.

- Opportunities, contacts and activities are keyed by (tenant_id, id): creating a record with an
  id another tenant already uses succeeds instead of failing, so it reveals nothing.
- deal_stage and override_stage take only the stages of the pipeline (the CRM's Stage options).
- Statement-level triggers write one change-log entry per changed row ({field: {old, new}}), for
  every writer: the repository, the agent's own SQL, an administrator's fix. The actor comes from
  the transaction setting `crm.actor` (the repository sets it), `agent` when unset. The trigger
  function runs as the tables' owner, so the application role needs, and gets, no write access to
  the change log: it can no longer make entries up. A row trigger moves `updated_at` when a row
  really changes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

STAGES = ("Lead", "Qualified", "Proposal", "Negotiation", "Closed Won", "Closed Lost")
"""The pipeline's stages when this revision was written (crm_pipeline.models.DEAL_STAGES)."""

TENANT_KEYS = """
ALTER TABLE crm.contacts DROP CONSTRAINT contacts_opportunity_fkey;
ALTER TABLE crm.activities DROP CONSTRAINT activities_opportunity_fkey;
ALTER TABLE crm.opportunities
    DROP CONSTRAINT opportunities_tenant_id_id_key,
    DROP CONSTRAINT opportunities_pkey,
    ADD CONSTRAINT opportunities_pkey PRIMARY KEY (tenant_id, id);
ALTER TABLE crm.contacts
    DROP CONSTRAINT contacts_pkey,
    ADD CONSTRAINT contacts_pkey PRIMARY KEY (tenant_id, id),
    ADD CONSTRAINT contacts_opportunity_fkey
        FOREIGN KEY (tenant_id, opportunity_id) REFERENCES crm.opportunities (tenant_id, id);
ALTER TABLE crm.activities
    DROP CONSTRAINT activities_pkey,
    ADD CONSTRAINT activities_pkey PRIMARY KEY (tenant_id, id),
    ADD CONSTRAINT activities_opportunity_fkey
        FOREIGN KEY (tenant_id, opportunity_id) REFERENCES crm.opportunities (tenant_id, id);
"""

STAGE_CHECKS = """
DO $$
BEGIN
    ALTER TABLE crm.opportunities
        ADD CONSTRAINT opportunities_deal_stage_check CHECK (deal_stage IN ({stages})),
        ADD CONSTRAINT opportunities_override_stage_check CHECK (override_stage IN ({stages}));
EXCEPTION WHEN check_violation THEN
    RAISE EXCEPTION 'some opportunities have a deal_stage or override_stage outside the pipeline''s stages'
        USING HINT = 'Set them to one of {stage_list} (per tenant: SET crm.tenant_id), then start again';
END
$$;
"""

CAPTURE = """
-- The fields that changed between two renderings of a row, as the change log stores them:
-- {field: {"old": json, "new": json}}, numbers as strings (exact decimals), timestamps in UTC,
-- keys and bookkeeping columns left out. Inlined into the trigger's query (plain SQL, no SET).
CREATE FUNCTION crm.field_changes(before_row jsonb, after_row jsonb, numeric_fields text[]) RETURNS SETOF jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_object_agg(
        field.key,
        jsonb_build_object(
            'old', CASE WHEN field.key = ANY (numeric_fields) AND jsonb_typeof(before_row -> field.key) = 'number'
                        THEN to_jsonb(before_row ->> field.key) ELSE coalesce(before_row -> field.key, 'null') END,
            'new', CASE WHEN field.key = ANY (numeric_fields) AND jsonb_typeof(field.value) = 'number'
                        THEN to_jsonb(field.value #>> '{}') ELSE field.value END))
    FROM jsonb_each(after_row) AS field
    WHERE field.key NOT IN ('id', 'tenant_id', 'created_at', 'updated_at')
      AND field.value IS DISTINCT FROM coalesce(before_row -> field.key, 'null')
    HAVING count(*) > 0
$$;

-- One change-log entry per inserted or changed row, in the order the statement wrote them.
CREATE FUNCTION crm.capture_changes() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET TimeZone = 'UTC'
AS $$
DECLARE
    entry_type constant text := TG_ARGV[0];
    entry_actor constant text := coalesce(nullif(current_setting('crm.actor', true), ''), 'agent');
    numeric_fields constant text[] := ARRAY(
        SELECT attname::text FROM pg_attribute
        WHERE attrelid = TG_RELID AND atttypid = 'numeric'::regtype AND attnum > 0 AND NOT attisdropped
    );
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO crm.change_log (tenant_id, record_type, record_id, actor, changes)
        SELECT written.tenant_id, entry_type, written.id, entry_actor, diff.changes
        FROM (SELECT after_row.tenant_id, after_row.id, to_jsonb(after_row) AS fields,
                     row_number() OVER () AS position
              FROM new_rows AS after_row) AS written
        CROSS JOIN LATERAL crm.field_changes('{}', written.fields, numeric_fields) AS diff(changes)
        ORDER BY written.position;
    ELSE
        IF EXISTS (SELECT FROM new_rows LEFT JOIN old_rows USING (tenant_id, id) WHERE old_rows.id IS NULL) THEN
            RAISE EXCEPTION 'the tenant_id and id of a % never change', entry_type
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        INSERT INTO crm.change_log (tenant_id, record_type, record_id, actor, changes)
        SELECT written.tenant_id, entry_type, written.id, entry_actor, diff.changes
        FROM (SELECT after_row.tenant_id, after_row.id, to_jsonb(after_row) AS fields,
                     row_number() OVER () AS position
              FROM new_rows AS after_row) AS written
        JOIN old_rows AS before_row USING (tenant_id, id)
        CROSS JOIN LATERAL crm.field_changes(to_jsonb(before_row), written.fields, numeric_fields) AS diff(changes)
        ORDER BY written.position;
    END IF;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION crm.capture_changes() FROM PUBLIC;

-- updated_at belongs to the database: it moves when, and only when, a row's values change.
CREATE FUNCTION crm.touch_updated_at() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    NEW.updated_at := OLD.updated_at;
    IF NEW IS DISTINCT FROM OLD THEN
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END
$$;
"""

TABLE_TRIGGERS = """
CREATE TRIGGER capture_inserts AFTER INSERT ON crm.{table}
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION crm.capture_changes('{record_type}');
CREATE TRIGGER capture_updates AFTER UPDATE ON crm.{table}
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION crm.capture_changes('{record_type}');
"""

TOUCH_TRIGGER = """
CREATE TRIGGER touch_updated_at BEFORE UPDATE ON crm.{table}
    FOR EACH ROW EXECUTE FUNCTION crm.touch_updated_at();
"""

CAPTURED = {"opportunities": "opportunity", "contacts": "contact", "activities": "activity"}


def upgrade() -> None:
    op.execute(TENANT_KEYS)
    quoted = ", ".join(f"'{stage}'" for stage in STAGES)
    op.execute(STAGE_CHECKS.format(stages=quoted, stage_list=", ".join(STAGES)))
    op.execute(CAPTURE)
    for table, record_type in CAPTURED.items():
        op.execute(TABLE_TRIGGERS.format(table=table, record_type=record_type))
    for table in ("opportunities", "contacts"):
        op.execute(TOUCH_TRIGGER.format(table=table))
    op.execute("REVOKE INSERT ON crm.change_log FROM crm_pipeline_app")


def downgrade() -> None:
    op.execute("GRANT INSERT ON crm.change_log TO crm_pipeline_app")
    for table in CAPTURED:
        op.execute(f"DROP TRIGGER capture_inserts ON crm.{table}; DROP TRIGGER capture_updates ON crm.{table}")
    for table in ("opportunities", "contacts"):
        op.execute(f"DROP TRIGGER touch_updated_at ON crm.{table}")
    op.execute(
        """
        DROP FUNCTION crm.touch_updated_at();
        DROP FUNCTION crm.capture_changes();
        DROP FUNCTION crm.field_changes(jsonb, jsonb, text[]);
        ALTER TABLE crm.opportunities
            DROP CONSTRAINT opportunities_deal_stage_check,
            DROP CONSTRAINT opportunities_override_stage_check;
        ALTER TABLE crm.contacts DROP CONSTRAINT contacts_opportunity_fkey;
        ALTER TABLE crm.activities DROP CONSTRAINT activities_opportunity_fkey;
        ALTER TABLE crm.activities DROP CONSTRAINT activities_pkey, ADD PRIMARY KEY (id);
        ALTER TABLE crm.contacts DROP CONSTRAINT contacts_pkey, ADD PRIMARY KEY (id);
        ALTER TABLE crm.opportunities
            DROP CONSTRAINT opportunities_pkey,
            ADD PRIMARY KEY (id),
            ADD CONSTRAINT opportunities_tenant_id_id_key UNIQUE (tenant_id, id);
        ALTER TABLE crm.contacts ADD CONSTRAINT contacts_opportunity_fkey
            FOREIGN KEY (tenant_id, opportunity_id) REFERENCES crm.opportunities (tenant_id, id);
        ALTER TABLE crm.activities ADD CONSTRAINT activities_opportunity_fkey
            FOREIGN KEY (tenant_id, opportunity_id) REFERENCES crm.opportunities (tenant_id, id);
        """
    )
