"""Handing a long sequence on in pieces: in batches for requests and statements that take a
bounded number at once, or one item at a time, each let go once taken."""

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


def drain(items: list[T]) -> Iterator[T]:
    """``items`` in order, each taken out of the list as it is handed on: once the caller has
    turned it into something else, nothing holds it. A change read's pages can number tens of
    thousands, so the list and what is made of it need not all be held at once.
    """
    items.reverse()
    while items:
        yield items.pop()
