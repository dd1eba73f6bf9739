"""A change feed that never skips late commits; foreign keys that stay inside one tenant.

- change_log.txid: the writing transaction's id. Readers take entries in (txid, sequence) order
  only below the oldest transaction still running, so an entry that commits after a later one was
  read is still delivered (a sequence or timestamp cursor would skip it).
- Contacts and activities reference their opportunity by (tenant_id, id): foreign-key checks
  bypass row-level security, so a global reference let one tenant attach rows to another
  tenant's deal, and tell its ids from unknown ones.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE crm.change_log ADD COLUMN txid xid8 NOT NULL DEFAULT pg_current_xact_id();
        CREATE INDEX change_log_tenant_feed ON crm.change_log (tenant_id, txid, sequence);

        ALTER TABLE crm.opportunities ADD CONSTRAINT opportunities_tenant_id_id_key UNIQUE (tenant_id, id);
        ALTER TABLE crm.contacts
            DROP CONSTRAINT contacts_opportunity_id_fkey,
            ADD CONSTRAINT contacts_opportunity_fkey
                FOREIGN KEY (tenant_id, opportunity_id) REFERENCES crm.opportunities (tenant_id, id);
        ALTER TABLE crm.activities
            DROP CONSTRAINT activities_opportunity_id_fkey,
            ADD CONSTRAINT activities_opportunity_fkey
                FOREIGN KEY (tenant_id, opportunity_id) REFERENCES crm.opportunities (tenant_id, id);
        """
    )


def downgrade() -> None:
    op.execute(
        """
        ALTER TABLE crm.activities
            DROP CONSTRAINT activities_opportunity_fkey,
            ADD CONSTRAINT activities_opportunity_id_fkey FOREIGN KEY (opportunity_id) REFERENCES crm.opportunities (id);
        ALTER TABLE crm.contacts
            DROP CONSTRAINT contacts_opportunity_fkey,
            ADD CONSTRAINT contacts_opportunity_id_fkey FOREIGN KEY (opportunity_id) REFERENCES crm.opportunities (id);
        ALTER TABLE crm.opportunities DROP CONSTRAINT opportunities_tenant_id_id_key;
        DROP INDEX crm.change_log_tenant_feed;
        ALTER TABLE crm.change_log DROP COLUMN txid;
        """
    )
