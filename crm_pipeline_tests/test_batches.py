"""Tests of handing a sequence on in batches, or drained one item at a time."""

from __future__ import annotations

import pytest

from crm_pipeline.batches import chunks, drain


def test_batches_are_consecutive_slices_in_order_the_last_shorter() -> None:
    assert list(chunks([1, 2, 3, 4, 5], 2)) == [[1, 2], [3, 4], [5]]
    assert list(chunks((1, 2, 3, 4), 2)) == [(1, 2), (3, 4)]


def test_nothing_makes_no_batch() -> None:
    assert list(chunks([], 3)) == []


@pytest.mark.parametrize("size", [0, -1])
def test_a_batch_holds_at_least_one_item(size: int) -> None:
    with pytest.raises(ValueError, match="at least one item"):
        chunks([1], size)


def test_drain_hands_on_each_item_in_order_taking_it_out_of_the_list() -> None:
    items = [1, 2, 3]
    drained = drain(items)
    assert next(drained) == 1
    assert items == [3, 2]  # taken out as handed on
    assert list(drained) == [2, 3]
    assert items == []
