"""The Notion connector: NotionAdapter plus its retry/pacing settings and error types."""

from crm_pipeline.crm.adapter import UpsertOutcome
from crm_pipeline.crm.notion.adapter import CONTACT_PROPERTY_MAP, NotionAdapter, NotionDiscovery
from crm_pipeline.crm.notion.client import RateLimit, RetryPolicy
from crm_pipeline.crm.notion.errors import (
    DataSourceConfigError,
    NotionAdapterError,
    OpportunityPageNotFoundError,
    PageTrashedError,
    QueryWindowError,
    UnexpectedResponseError,
)

__all__ = [
    "CONTACT_PROPERTY_MAP",
    "DataSourceConfigError",
    "NotionAdapter",
    "NotionAdapterError",
    "NotionDiscovery",
    "OpportunityPageNotFoundError",
    "PageTrashedError",
    "QueryWindowError",
    "RateLimit",
    "RetryPolicy",
    "UnexpectedResponseError",
    "UpsertOutcome",
]
