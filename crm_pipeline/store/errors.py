"""Errors the deal store raises; each message says what to do, and none carries a password."""


class StoreError(Exception):
    """Base class of every deal-store error."""


class DatabaseUnavailableError(StoreError):
    """The configured PostgreSQL cannot be reached (the message names host and database)."""


class DatabaseURLError(DatabaseUnavailableError):
    """The configured database URL cannot be parsed unambiguously (the message quotes none of it)."""


class EmbeddedServerError(StoreError):
    """The embedded PostgreSQL did not start (the message names its log file)."""


class MigrationError(StoreError):
    """Bringing the schema up to date failed (the message carries PostgreSQL's reason and hint)."""


class SchemaTooNewError(StoreError):
    """The database was migrated by a newer crm_pipeline than the one running."""


class UnknownTenantError(StoreError):
    """A tenant id that was never registered; no query runs unscoped or against it."""


class RecordNotFoundError(StoreError):
    """An id that does not exist for this tenant."""


class DuplicateRecordError(StoreError):
    """A create with an id this tenant already has (the message names the record type and id)."""


class DatabaseRoleError(StoreError):
    """The application's login role is missing or could get around row-level security."""
