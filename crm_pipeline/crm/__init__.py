"""The pluggable CRM layer: one interface, the PostgreSQL primary, and external connectors."""

from crm_pipeline.crm.adapter import AdapterCapabilities, CRMAdapter
from crm_pipeline.crm.notion import NotionAdapter
from crm_pipeline.crm.postgres import PostgresAdapter

__all__ = ["AdapterCapabilities", "CRMAdapter", "NotionAdapter", "PostgresAdapter"]
