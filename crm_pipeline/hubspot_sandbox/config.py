"""Start-up settings of a local HubSpot (tests and benchmarks build them directly)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_TOKEN = "pat-sandbox-private-app"
READ_ONLY_TOKEN = "pat-sandbox-read-only"


@dataclass(frozen=True)
class HubSpotSandboxConfig:
    tokens: tuple[str, ...] = (DEFAULT_TOKEN,)
    read_only_tokens: tuple[str, ...] = (READ_ONLY_TOKEN,)  # granted read scopes only: writes get 403
    ten_secondly_limit: int = 100  # requests per app in any ten seconds (Free/Starter); 0 turns it off
    daily_limit: int = 250_000  # requests per account per day (of the sandbox clock); 0 turns it off
    search_per_second: int = 5  # search's own limit, exempt from the ten-secondly one; 0 turns it off
    search_lag_ms: int = 0  # how far behind writes the search index is
    search_result_cap: int = 10_000  # results one search query can page through; tests lower it
    preserve_merged_ids: bool = False  # a merge keeps the primary's id (HubSpot beta) or makes a new one
    retry_after_s: int | None = None  # a Retry-After on 429s; HubSpot's own behaviour is unconfirmed
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    state_file: Path | None = None  # the portal is loaded from it, and saved to it after every change
