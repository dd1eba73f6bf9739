"""A local, stateful Salesforce REST API (v59.0 to v62.0) that behaves like Salesforce where sync
correctness depends on it: Opportunity with its stage cascade, audit fields and history, Task
roll-ups, Contacts, upsert by external id, sObject Collections, SOQL paging, the change lists, the Recycle
Bin, the daily allowance and faults. Driven by the real ``simple-salesforce`` client."""

from .config import DEFAULT_TOKEN, SalesforceSandboxConfig
from .control_client import SalesforceControl
from .server import RunningSalesforce, serve_salesforce_in_thread
from .setup import SYNC_KEY
from .state import AUTOMATED_PROCESS, HUMAN_USER, INTEGRATION_USER, INTEGRATION_USERNAME
from .transport import API_VERSION, sandbox_salesforce, sandbox_session

__all__ = [
    "API_VERSION",
    "AUTOMATED_PROCESS",
    "DEFAULT_TOKEN",
    "HUMAN_USER",
    "INTEGRATION_USER",
    "INTEGRATION_USERNAME",
    "SYNC_KEY",
    "RunningSalesforce",
    "SalesforceControl",
    "SalesforceSandboxConfig",
    "sandbox_salesforce",
    "sandbox_session",
    "serve_salesforce_in_thread",
]
