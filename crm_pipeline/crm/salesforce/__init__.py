"""Salesforce connector: opportunities, contacts and tasks over ``simple-salesforce``."""

from crm_pipeline.crm.salesforce.adapter import SalesforceAdapter, SalesforceDiscovery
from crm_pipeline.crm.salesforce.client import RateLimit, RetryPolicy
from crm_pipeline.crm.salesforce.errors import (
    AllowanceFloorError,
    InstanceConfigError,
    OrgBusyError,
    SessionExpiredError,
    StageConfigError,
    WriteRefusedError,
)
from crm_pipeline.crm.salesforce.mapping import (
    DEFAULT_STAGE_NAMES,
    SALESFORCE_FIELD_MAP,
    SYNC_KEY_FIELD,
    SalesforceField,
)

__all__ = [
    "DEFAULT_STAGE_NAMES",
    "SALESFORCE_FIELD_MAP",
    "SYNC_KEY_FIELD",
    "AllowanceFloorError",
    "InstanceConfigError",
    "OrgBusyError",
    "RateLimit",
    "RetryPolicy",
    "SalesforceAdapter",
    "SalesforceDiscovery",
    "SalesforceField",
    "SessionExpiredError",
    "StageConfigError",
    "WriteRefusedError",
]
