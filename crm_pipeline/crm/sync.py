"""The plan's ``crm/sync.py``: the sync engine, which lives in ``crm_pipeline.sync``."""

from crm_pipeline.sync.engine import SyncEngine

__all__ = ["SyncEngine"]
