"""Tests of cutting a sequence into batches."""

from __future__ import annotations

import pytest

from crm_pipeline.batches import chunks


def test_batches_are_consecutive_slices_in_order_the_last_shorter() -> None:
    assert list(chunks([1, 2, 3, 4, 5], 2)) == [[1, 2], [3, 4], [5]]
    assert list(chunks((1, 2, 3, 4), 2)) == [(1, 2), (3, 4)]


def test_nothing_makes_no_batch() -> None:
    assert list(chunks([], 3)) == []


@pytest.mark.parametrize("size", [0, -1])
def test_a_batch_holds_at_least_one_item(size: int) -> None:
    with pytest.raises(ValueError, match="at least one item"):
        chunks([1], size)
