"""The pluggable CRM layer: one interface, the PostgreSQL primary, external connectors, and the
sync engine between them (``SyncEngine``, from ``crm_pipeline.sync``)."""

from typing import TYPE_CHECKING

from crm_pipeline.crm.adapter import AdapterCapabilities, ChangeBatch, CRMAdapter, Discovery, UpsertOutcome
from crm_pipeline.crm.budget import DailyBudgetSpentError, PostgresBudget, RequestBudget, Window
from crm_pipeline.crm.hubspot import HubSpotAdapter
from crm_pipeline.crm.notion import NotionAdapter
from crm_pipeline.crm.postgres import PostgresAdapter

if TYPE_CHECKING:
    from crm_pipeline.sync.engine import SyncEngine

__all__ = [
    "AdapterCapabilities",
    "CRMAdapter",
    "ChangeBatch",
    "DailyBudgetSpentError",
    "Discovery",
    "HubSpotAdapter",
    "NotionAdapter",
    "PostgresAdapter",
    "PostgresBudget",
    "RequestBudget",
    "SyncEngine",
    "UpsertOutcome",
    "Window",
]


def __getattr__(name: str) -> object:
    # The engine imports this package's modules, so it is loaded on first use, not here.
    if name == "SyncEngine":
        from crm_pipeline.sync.engine import SyncEngine

        return SyncEngine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
