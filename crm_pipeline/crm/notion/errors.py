"""Errors particular to the Notion connector (mapping errors live in crm_pipeline.crm.errors)."""

from __future__ import annotations

from crm_pipeline.crm.errors import RecordGoneError


class NotionAdapterError(Exception):
    """Base of the Notion connector's own errors."""


class DataSourceConfigError(NotionAdapterError):
    """The configured database or data source cannot be used as given (none, several, wrong one)."""


class PageTrashedError(NotionAdapterError, RecordGoneError):
    """The page is in Notion's trash: a human deleted the deal there. Not a transient failure."""

    def __init__(self, page_id: str) -> None:
        self.page_id = page_id
        RecordGoneError.__init__(
            self, page_id, "the Notion page is in the trash; restore it in Notion or archive the deal"
        )


class OpportunityPageNotFoundError(NotionAdapterError):
    """No page in the deals data source carries this opportunity's sync key."""

    def __init__(self, sync_key: str) -> None:
        self.sync_key = sync_key
        super().__init__(f"no Notion page carries sync key {sync_key}")


class QueryWindowError(NotionAdapterError):
    """More rows share one created_time minute than a single query may return: windows cannot advance."""


class UnexpectedResponseError(NotionAdapterError):
    """Notion answered with a body the adapter cannot read (an API change, a proxy's error page)."""

    def __init__(self, endpoint: str, problem: object) -> None:
        self.endpoint = endpoint
        super().__init__(f"unexpected response from Notion's {endpoint}: {problem}")
