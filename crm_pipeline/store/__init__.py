"""The deal store: opportunities, contacts and activities on PostgreSQL, tenant-scoped by row-level
security, with a field-level change log that PostgreSQL writes in the same transaction as every change."""

from crm_pipeline.store.bulk_upsert import BulkUpsertResult
from crm_pipeline.store.database import Database
from crm_pipeline.store.errors import (
    DatabaseRoleError,
    DatabaseUnavailableError,
    DatabaseURLError,
    DuplicateRecordError,
    EmbeddedServerError,
    MigrationError,
    RecordNotFoundError,
    SchemaTooNewError,
    StoreError,
    UnknownTenantError,
)
from crm_pipeline.store.repository import DealRepository

__all__ = [
    "BulkUpsertResult",
    "Database",
    "DatabaseRoleError",
    "DatabaseUnavailableError",
    "DatabaseURLError",
    "DealRepository",
    "DuplicateRecordError",
    "EmbeddedServerError",
    "MigrationError",
    "RecordNotFoundError",
    "SchemaTooNewError",
    "StoreError",
    "UnknownTenantError",
]
