"""Packing pending items into provider batches: every limit at once, input order kept."""

from __future__ import annotations

import itertools
import pickle
import random
from collections.abc import Iterator

import pytest

from llmbatch.domain.planning import BatchPlan, ItemTooLarge, pack_items


def pack(sizes: list[int] | list[tuple[int, int]], *, max_requests: int = 1000,
         max_bytes: int = 10**9) -> list[BatchPlan]:
    pairs = [(i, s) if isinstance(s, int) else s for i, s in enumerate(sizes)]
    return list(pack_items(pairs, max_requests=max_requests, max_bytes=max_bytes))


def test_nothing_to_pack_makes_no_batch() -> None:
    assert pack([]) == []


def test_everything_fits_in_one_batch() -> None:
    assert pack([10, 20, 30]) == [BatchPlan(0, 2, 3, 63)]  # each line costs size + newline


def test_the_request_limit_splits_in_order() -> None:
    plans = pack([1] * 7, max_requests=3)
    assert [(p.first_seq, p.last_seq, p.item_count) for p in plans] == [(0, 2, 3), (3, 5, 3),
                                                                        (6, 6, 1)]


def test_the_byte_limit_counts_the_newline_of_every_line() -> None:
    # Two 9-byte items make 20 bytes with their newlines: exactly the limit.
    assert [p.item_count for p in pack([9, 9, 9], max_bytes=20)] == [2, 1]
    assert [p.item_count for p in pack([9, 9, 9], max_bytes=19)] == [1, 1, 1]


def test_both_limits_apply_at_once() -> None:
    sizes = [10, 10, 50, 10, 10, 10, 10, 90]
    plans = pack(sizes, max_requests=3, max_bytes=100)
    assert [(p.first_seq, p.last_seq) for p in plans] == [(0, 2), (3, 5), (6, 6), (7, 7)]
    assert [p.byte_count for p in plans] == [73, 33, 11, 91]


def test_an_item_exactly_at_the_limit_fits_alone() -> None:
    assert pack([5, 99, 5], max_bytes=100) == [BatchPlan(0, 0, 1, 6), BatchPlan(1, 1, 1, 100),
                                               BatchPlan(2, 2, 1, 6)]


def test_sparse_sequence_numbers_keep_their_values() -> None:
    # Pending items after a re-batch: holes where items already succeeded.
    plans = pack([(2, 5), (7, 5), (8, 5), (40, 5), (41, 5)], max_requests=2)
    assert [(p.first_seq, p.last_seq, p.item_count) for p in plans] == [(2, 7, 2), (8, 40, 2),
                                                                        (41, 41, 1)]


def test_an_item_over_the_byte_limit_raises_item_too_large() -> None:
    with pytest.raises(ItemTooLarge) as caught:
        pack([(0, 10), (5, 100), (6, 10)], max_bytes=100)
    assert (caught.value.seq, caught.value.size, caught.value.limit) == (5, 101, 100)
    assert "item 5 is 101 bytes" in str(caught.value)


def test_item_too_large_pickles_with_its_attributes() -> None:
    clone = pickle.loads(pickle.dumps(ItemTooLarge(3, 500, 400)))
    assert (type(clone), clone.seq, clone.size, clone.limit) == (ItemTooLarge, 3, 500, 400)
    assert str(clone) == str(ItemTooLarge(3, 500, 400))


def test_packing_is_lazy() -> None:
    def sizes() -> Iterator[tuple[int, int]]:
        yield from [(0, 10), (1, 10)]
        raise AssertionError("read past the first batch")

    first = next(pack_items(sizes(), max_requests=1, max_bytes=100))
    assert first == BatchPlan(0, 0, 1, 11)


def test_random_inputs_pack_into_valid_greedy_batches() -> None:
    for seed in range(500):
        check_random_packing(random.Random(seed), seed)


def check_random_packing(rng: random.Random, seed: int) -> None:
    max_requests = rng.randint(1, 12)
    max_bytes = rng.randint(2, 400)
    seqs = sorted(rng.sample(range(1000), rng.randint(0, 80)))
    items = [(seq, rng.randint(0, max_bytes - 1)) for seq in seqs]
    size_of = dict(items)

    plans = pack(items, max_requests=max_requests, max_bytes=max_bytes)

    # Every item lands in exactly one batch, in input order, batches contiguous in the input.
    covered = [seq for p in plans for seq in seqs if p.first_seq <= seq <= p.last_seq]
    assert covered == seqs, f"seed {seed}"
    for plan in plans:
        members = [s for s in seqs if plan.first_seq <= s <= plan.last_seq]
        assert plan.item_count == len(members) <= max_requests, f"seed {seed}"
        assert plan.byte_count == sum(size_of[s] + 1 for s in members) <= max_bytes, \
            f"seed {seed}"
    # Greedy: a batch closed only because the next item would have broken a limit.
    for plan, nxt in itertools.pairwise(plans):
        following = size_of[nxt.first_seq] + 1
        assert (plan.item_count == max_requests
                or plan.byte_count + following > max_bytes), f"seed {seed}"
