"""Start-up settings of a sandbox server (the CLI flags; tests and benchmarks build them directly)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_TOKEN = "ntn_sandbox_integration_token"
NOTION_VERSION = "2025-09-03"


@dataclass(frozen=True)
class SandboxConfig:
    tokens: tuple[str, ...] = (DEFAULT_TOKEN,)
    rate_limit: float = 3.0  # average requests/s per token; 0 turns limiting off
    burst: int = 10
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    result_cap: int = 10_000
    state_file: Path | None = None
    seed_file: Path | None = None
    save_interval_s: float = 1.0  # debounce: at most one state-file write per interval
