"""Merge-core benchmark: one ``decide`` over 100,000 deals × every mapped Notion field, side by side
with a per-record Python loop over the same cells (the test oracle), in the same run.

    .venv/bin/python benchmarks/bench_merge.py [--deals 100000] [--seed 7]

The cells mix what a reconciliation meets: most in step (some as echoes written differently, such
as Decimal("0.50") back as Decimal("0.5")), then pushes, pulls, overrides, conflicts on both sides
of the minute, first links and a few codec errors.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT)]

from report import emit  # noqa: E402

from crm_pipeline.crm.notion.properties import NOTION_PROPERTY_MAP  # noqa: E402
from crm_pipeline.models import DEAL_STAGES  # noqa: E402
from crm_pipeline.sync import FieldState, cells_frame, comparable, decide, decide_record  # noqa: E402
from crm_pipeline.sync.ownership import DEFAULT_FIELD_OWNERSHIP  # noqa: E402
from crm_pipeline_tests.sync.oracle import oracle_decide  # noqa: E402

BENCH = "merge"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
FIELDS = tuple(NOTION_PROPERTY_MAP)
SINGLE_RECORD_CALLS = 200

BASE_VALUES: dict[str, Callable[[int], Any]] = {
    "name": lambda n: f"Deal {n}",
    "deal_stage": lambda n: DEAL_STAGES[n % len(DEAL_STAGES)],
    "estimated_value": lambda n: Decimal(n % 100_000) + Decimal("0.50"),
    "close_date": lambda n: date(2026, 1, 1) + timedelta(days=n % 365),
    "product_line": lambda n: ("Core", "Plus", "Enterprise")[n % 3],
    "probability": lambda n: Decimal(n % 100) / 100,
    "source": lambda n: ("inbound", "outbound", "referral")[n % 3],
    "contact_name": lambda n: f"Contact {n}",
    "contact_email": lambda n: f"contact{n}@example.com",
}


def _edited(value: Any, by: str) -> Any:
    """A different value of the same type."""
    if isinstance(value, Decimal):
        return value + (1 if by == "agent" else 2)
    if isinstance(value, date):
        return value + timedelta(days=1 if by == "agent" else 2)
    return f"{value} ({by})"


def _echo(value: Any) -> Any:
    """The same value as the other side reads it back: numbers lose trailing zeros."""
    return value.normalize() if isinstance(value, Decimal) else value


def make_cell(rng: random.Random, field: str, n: int) -> FieldState:
    base = BASE_VALUES[field](n)
    primary_at = T0 + timedelta(seconds=rng.randrange(3600))
    external_at = T0 + timedelta(minutes=rng.randrange(60))
    draw = rng.random()
    primary, external, error = base, _echo(base), None
    if draw < 0.06:
        primary = _edited(base, "agent")
    elif draw < 0.12:
        external = _edited(base, "human")
    elif draw < 0.15:
        primary = external = _edited(base, "agent")
    elif draw < 0.19:
        primary, external = _edited(base, "agent"), _edited(base, "human")
    elif draw < 0.20:
        base = None
    elif draw < 0.201:
        error = "cannot be stored in Notion"
    return FieldState(field, base, primary, external, primary_at, external_at, error)


def make_records(deals: int, seed: int) -> list[tuple[str, list[FieldState]]]:
    rng = random.Random(seed)
    return [(f"deal-{n}", [make_cell(rng, field, n) for field in FIELDS]) for n in range(deals)]


def per_record_loop(records: list[tuple[str, list[FieldState]]], **oracle: Any) -> list[Any]:
    owners = {field: DEFAULT_FIELD_OWNERSHIP.owner_of(field) for field in FIELDS}
    return [
        oracle_decide(owners[state.field], state.field in NOTION_PROPERTY_MAP, state, **oracle)
        for _, states in records
        for state in states
    ]


def _same_comparable(a: Any, b: Any) -> bool:
    return bool(comparable(a) == comparable(b))


def timed(function: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = function()
    return result, time.perf_counter() - started


def run(deals: int, seed: int) -> None:
    records = make_records(deals, seed)
    cells = cells_frame(
        ((record, state) for record, states in records for state in states), DEFAULT_FIELD_OWNERSHIP, FIELDS
    )
    decided, decide_seconds = timed(lambda: decide(cells))
    expected, oracle_seconds = timed(lambda: per_record_loop(records))
    _, loop_seconds = timed(lambda: per_record_loop(records, same=_same_comparable))
    got = list(zip(decided.outcome, decided.winner, decided.rule, strict=True))
    assert got == [(outcome, winner, rule) for outcome, winner, _, rule in expected], "decide disagrees with the oracle"

    tracemalloc.start()
    decide(cells)
    peak_bytes = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    _, single_seconds = timed(
        lambda: [decide_record(*records[n], DEFAULT_FIELD_OWNERSHIP, FIELDS) for n in range(SINGLE_RECORD_CALLS)]
    )

    emit(BENCH, "cells", len(cells), "cells")
    emit(BENCH, "decide_100k_deals_seconds", round(decide_seconds, 3), "s", "<= 1")
    emit(BENCH, "decide_throughput", round(len(cells) / decide_seconds), "cells/s")
    emit(BENCH, "per_record_loop_oracle_seconds", round(oracle_seconds, 3), "s")
    emit(BENCH, "speedup_vs_per_record_loop", round(oracle_seconds / decide_seconds, 1), "x", ">= 10")
    emit(BENCH, "per_record_loop_same_comparison_seconds", round(loop_seconds, 3), "s")
    emit(BENCH, "speedup_vs_per_record_loop_same_comparison", round(loop_seconds / decide_seconds, 1), "x")
    emit(BENCH, "decide_100k_deals_peak_memory", round(peak_bytes / 2**20, 1), "MB", "<= 500")
    emit(BENCH, "decide_record_one_deal", round(single_seconds / SINGLE_RECORD_CALLS * 1e3, 2), "ms")
    counts = decided.outcome.value_counts()
    for outcome, count in counts.items():
        emit(BENCH, f"outcome_{outcome}", int(count), "cells")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--deals", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    run(args.deals, args.seed)


if __name__ == "__main__":
    main()
