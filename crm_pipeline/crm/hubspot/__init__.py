"""HubSpot CRM connector: deals, contacts and notes over the official ``hubspot-api-client``."""

from crm_pipeline.crm.hubspot.adapter import HubSpotAdapter, HubSpotDiscovery
from crm_pipeline.crm.hubspot.client import RateLimit, RetryPolicy
from crm_pipeline.crm.hubspot.errors import PipelineConfigError, RestoreUnsupportedError, WriteRefusedError
from crm_pipeline.crm.hubspot.mapping import DEFAULT_STAGE_LABELS, HUBSPOT_PROPERTY_MAP, SYNC_KEY, HubSpotProperty

__all__ = [
    "DEFAULT_STAGE_LABELS",
    "HUBSPOT_PROPERTY_MAP",
    "SYNC_KEY",
    "HubSpotAdapter",
    "HubSpotDiscovery",
    "HubSpotProperty",
    "PipelineConfigError",
    "RateLimit",
    "RestoreUnsupportedError",
    "RetryPolicy",
    "WriteRefusedError",
]
