"""Start-up settings of a local Salesforce org (tests and benchmarks build them directly)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_TOKEN = "00DSb0000000001!sandbox-integration-session"
"""An access token of the integration user (Salesforce's look: the org id, ``!``, a secret)."""
DEVELOPER_EDITION_DAILY = 15_000


@dataclass(frozen=True)
class SalesforceSandboxConfig:
    tokens: tuple[str, ...] = (DEFAULT_TOKEN,)
    """Accepted access tokens, each the integration user's."""
    daily_api_max: int = DEVELOPER_EDITION_DAILY
    """API requests in any 24 hours of the sandbox clock, the org's allowance."""
    query_page_cap: int = 0
    """At most this many records a query page (0: the batch size alone decides), as a server that
    answers with short pages does."""
    concurrent_long_running_limit: int = 25
    """Requests running 20 s or more at once before new ones are refused (0: no limit)."""
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    state_file: Path | None = None
    """The org is loaded from it, and saved to it after every change."""
