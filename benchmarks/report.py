"""The one output format of every benchmark: a JSON line per figure."""

from __future__ import annotations

import json
import sys


def emit(bench: str, figure: str, value: float | int | None, unit: str, goal: str | None = None) -> None:
    """`goal` is a comparison the value must meet (">= 500", "<= 1.05", "== 0"), or None; `value`
    is None when the figure could not be measured on this machine (the benchmark says why)."""
    print(json.dumps({"bench": bench, "figure": figure, "value": value, "unit": unit, "goal": goal}), flush=True)
    sys.stdout.flush()
