"""A local, stateful HubSpot CRM API (v3 objects, v4 associations) that behaves like HubSpot where
sync correctness depends on it: string values with history, idProperty upserts, 207s, search caps
and lag, archive, merge, rate limits and faults. Driven by the official ``hubspot-api-client``."""

from .config import DEFAULT_TOKEN, READ_ONLY_TOKEN, HubSpotSandboxConfig
from .control_client import HubSpotControl
from .server import RunningHubSpot, serve_hubspot_in_thread

__all__ = [
    "DEFAULT_TOKEN",
    "READ_ONLY_TOKEN",
    "HubSpotControl",
    "HubSpotSandboxConfig",
    "RunningHubSpot",
    "serve_hubspot_in_thread",
]
