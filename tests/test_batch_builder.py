"""Ragged batches: the token table, segments, and the ragged causal mask against a naive loop."""

import numpy as np
import pytest

from cblab_src import build_batch, padding_waste, ragged_causal_mask, ragged_mask

T, F = True, False


def naive_ragged_mask(q_req_ids, q_pos, k_req_ids, k_pos):
    """The rule written as a double loop: query i sees key j iff same request and pos_j <= pos_i."""
    mask = np.zeros((len(q_req_ids), len(k_req_ids)), dtype=bool)
    for i in range(len(q_req_ids)):
        for j in range(len(k_req_ids)):
            mask[i, j] = q_req_ids[i] == k_req_ids[j] and k_pos[j] <= q_pos[i]
    return mask


def test_two_plus_three_tokens_mask_written_out():
    # Request A has 2 tokens, B has 3, packed as A A B B B.
    mask = ragged_causal_mask(["A", "A", "B", "B", "B"], [0, 1, 0, 1, 2])
    expected = np.array([
        [T, F, F, F, F],
        [T, T, F, F, F],
        [F, F, T, F, F],
        [F, F, T, T, F],
        [F, F, T, T, T],
    ])
    assert mask.dtype == bool
    np.testing.assert_array_equal(mask, expected)


def test_docstring_example_three_tokens():
    np.testing.assert_array_equal(ragged_causal_mask(["A", "A", "B"], [0, 1, 0]),
                                  [[T, F, F], [T, T, F], [F, F, T]])


@pytest.mark.parametrize("seed", range(8))
def test_ragged_causal_mask_equals_naive_loop_on_random_tables(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 30))
    pool = [0, 1, 2, "x", "y"]                       # ints and strings both work as ids
    req_ids = [pool[i] for i in rng.integers(0, len(pool), n)]
    positions = rng.integers(0, 10, n)               # any order, repeats allowed
    np.testing.assert_array_equal(ragged_causal_mask(req_ids, positions),
                                  naive_ragged_mask(req_ids, positions, req_ids, positions))


@pytest.mark.parametrize("seed", range(8))
def test_ragged_mask_with_other_keys_equals_naive_loop(seed):
    rng = np.random.default_rng(100 + seed)
    nq, nk = int(rng.integers(1, 12)), int(rng.integers(1, 30))
    q_ids, k_ids = list(rng.integers(0, 4, nq)), list(rng.integers(0, 4, nk))
    q_pos, k_pos = rng.integers(0, 10, nq), rng.integers(0, 10, nk)
    np.testing.assert_array_equal(ragged_mask(q_ids, q_pos, k_ids, k_pos),
                                  naive_ragged_mask(q_ids, q_pos, k_ids, k_pos))


def test_ragged_mask_with_cached_keys():
    # Keys: A's 2 cached tokens, B's 3 cached tokens, and this step's new ones
    # (A's decode at position 2, B's next chunk at positions 3, 4).
    k_ids = ["A", "A", "B", "B", "B", "A", "B", "B"]
    k_pos = [0, 1, 0, 1, 2, 2, 3, 4]
    q_ids, q_pos = ["A", "B", "B"], [2, 3, 4]
    expected = np.array([
        [T, T, F, F, F, T, F, F],    # A's decode sees its whole context, itself included
        [F, F, T, T, T, F, T, F],    # B's chunk sees B's earlier chunk and itself causally
        [F, F, T, T, T, F, T, T],
    ])
    np.testing.assert_array_equal(ragged_mask(q_ids, q_pos, k_ids, k_pos), expected)


def test_ragged_mask_refuses_mismatched_lengths():
    with pytest.raises(ValueError, match="positions"):
        ragged_mask(["A", "A"], [0], ["A"], [0])
    with pytest.raises(ValueError, match="positions"):
        ragged_causal_mask(["A"], [0, 1])


def test_build_batch_docstring_example():
    batch = build_batch([("A", [7, 8], 0, False), ("B", [3], 5, True)])
    np.testing.assert_array_equal(batch.token_ids, [7, 8, 3])
    np.testing.assert_array_equal(batch.positions, [0, 1, 5])
    assert batch.token_ids.dtype == np.int64
    assert batch.req_ids == ("A", "A", "B")
    assert batch.token_table == [("A", 0), ("A", 1), ("B", 5)]
    assert batch.num_tokens == 3
    np.testing.assert_array_equal(batch.cu_seqlens, [0, 2, 3])
    a, b = batch.segments
    assert ((a.req_id, a.offset, a.length, a.start_pos, a.samples, a.num_computed_tokens)
            == ("A", 0, 2, 0, False, 2))
    assert ((b.req_id, b.offset, b.length, b.start_pos, b.samples, b.num_computed_tokens)
            == ("B", 2, 1, 5, True, 6))
    np.testing.assert_array_equal(batch.mask(), [[T, F, F], [T, T, F], [F, F, T]])


def test_build_batch_three_segments_decode_and_chunks():
    batch = build_batch([(0, [4], 9, True), (1, [1, 2, 3], 0, False), (2, [5, 6], 4, True)])
    assert batch.token_table == [(0, 9), (1, 0), (1, 1), (1, 2), (2, 4), (2, 5)]
    np.testing.assert_array_equal(batch.cu_seqlens, [0, 1, 4, 6])
    assert [s.offset for s in batch.segments] == [0, 1, 4]
    np.testing.assert_array_equal(batch.mask(), ragged_causal_mask(batch.req_ids, batch.positions))


def test_build_batch_of_nothing_is_empty():
    batch = build_batch([])
    assert batch.num_tokens == 0 and batch.segments == () and batch.token_table == []
    np.testing.assert_array_equal(batch.cu_seqlens, [0])


def test_build_batch_refuses_an_empty_segment():
    with pytest.raises(AssertionError):
        build_batch([("A", [], 0, True)])


def test_padding_waste_example():
    # Padded to the longest (5): 3 * 5 = 15 slots for 2 + 5 + 3 = 10 tokens -> 5 wasted.
    assert padding_waste([2, 5, 3]) == 5
    assert padding_waste([4, 4]) == 0
    assert padding_waste([7]) == 0
    assert padding_waste([]) == 0
