"""The one output format of every benchmark: a JSON line per figure."""

from __future__ import annotations

import json
import sys
from typing import Any


def emit(bench: str, figure: str, value: float | int, unit: str, goal: Any = None) -> None:
    print(json.dumps({"bench": bench, "figure": figure, "value": value, "unit": unit, "goal": goal}), flush=True)
    sys.stdout.flush()
