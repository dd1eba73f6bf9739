"""Alembic environment: migrations run on the connection handed over by `crm_pipeline.store.migrate`."""

from alembic import context

from crm_pipeline.store.schema import SCHEMA, metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table_schema=SCHEMA,
    include_schemas=True,
)
with context.begin_transaction():
    context.run_migrations()
