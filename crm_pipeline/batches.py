"""Cutting a sequence into batches for requests and statements that take a bounded number at once."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """``items`` in consecutive slices of ``size`` (the last may be shorter), in order; a size
    under one is refused at the call, not at the first batch.

    What ``itertools.batched`` (Python 3.12) does, but as slices: a list's batches are lists.
    """
    if size < 1:
        raise ValueError(f"a batch holds at least one item, not {size}")
    return (items[start : start + size] for start in range(0, len(items), size))
