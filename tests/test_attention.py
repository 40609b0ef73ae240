"""Attention paths against the slow reference: dense (v1) vs a loop, ragged (v2), paged (v3)."""

import math

import numpy as np
import pytest

from cblab_src import (causal_mask, dense_causal_attention, gather_kv, masked_attention,
                       paged_attention, ragged_attention, ragged_causal_mask, ragged_mask,
                       segmented_attention)

H, D = 2, 4   # heads, head size


def qkv(rng, n):
    """Random ``q, k, v``, each ``(n, H, D)``."""
    return tuple(rng.standard_normal((n, H, D)) for _ in range(3))


def naive_attention(q, k, v, mask):
    """One query and one head at a time, softmax with math.exp over the allowed keys only."""
    out = np.zeros_like(q)
    for h in range(q.shape[1]):
        for i in range(q.shape[0]):
            allowed = [j for j in range(k.shape[0]) if mask[i, j]]
            scores = [float(q[i, h] @ k[j, h]) / math.sqrt(q.shape[2]) for j in allowed]
            top = max(scores)
            weights = [math.exp(s - top) for s in scores]
            total = sum(weights)
            for w, j in zip(weights, allowed):
                out[i, h] += w / total * v[j, h]
    return out


def test_causal_mask_examples():
    np.testing.assert_array_equal(causal_mask(3), np.tril(np.ones((3, 3), bool)))
    np.testing.assert_array_equal(causal_mask(1, 5), [[True] * 5])      # a decode sees everything
    np.testing.assert_array_equal(causal_mask(2, 4), [[True, True, True, False], [True] * 4])


@pytest.mark.parametrize("n", [1, 2, 7])
def test_dense_causal_attention_equals_naive_loop(n):
    q, k, v = qkv(np.random.default_rng(n), n)
    out = dense_causal_attention(q, k, v)
    assert out.shape == (n, H, D)
    np.testing.assert_allclose(out, naive_attention(q, k, v, causal_mask(n)), rtol=0, atol=1e-12)


def test_masked_attention_with_an_arbitrary_mask_equals_naive_loop():
    rng = np.random.default_rng(1)
    q, (k, v) = rng.standard_normal((4, H, D)), rng.standard_normal((2, 6, H, D))
    mask = rng.random((4, 6)) < 0.5
    mask[:, 0] = True                                     # every query sees at least one key
    np.testing.assert_allclose(masked_attention(q, k, v, mask), naive_attention(q, k, v, mask),
                               rtol=0, atol=1e-12)


def test_first_query_copies_its_own_value():
    # Query 0 sees only key 0: all its weight is on it, so its output is v[0] exactly.
    q, k, v = qkv(np.random.default_rng(2), 5)
    np.testing.assert_allclose(dense_causal_attention(q, k, v)[0], v[0], rtol=0, atol=1e-15)


def test_masked_keys_get_exactly_zero_weight():
    rng = np.random.default_rng(3)
    q, k, v = qkv(rng, 6)
    out = dense_causal_attention(q, k, v)
    # Change the last key and value wildly (a huge score, a huge value): only the last
    # query may see them, so every other output row is unchanged bit for bit.
    k2, v2 = k.copy(), v.copy()
    k2[-1] = 1e3 * q[0]
    v2[-1] = 1e6
    out2 = dense_causal_attention(q, k2, v2)
    np.testing.assert_array_equal(out2[:-1], out[:-1])
    assert not np.allclose(out2[-1], out[-1])


def test_masked_keys_get_zero_weight_under_a_random_mask():
    rng = np.random.default_rng(4)
    q, (k, v) = rng.standard_normal((5, H, D)), rng.standard_normal((2, 8, H, D))
    mask = rng.random((5, 8)) < 0.4
    mask[:, 3] = True
    hidden = ~mask.any(axis=0)                           # keys no query may see
    hidden[5] = True
    mask[:, 5] = False
    out = masked_attention(q, k, v, mask)
    k2, v2 = k.copy(), v.copy()
    k2[hidden], v2[hidden] = 50.0, -1e9
    np.testing.assert_array_equal(masked_attention(q, k2, v2, mask), out)


def test_ragged_on_two_packed_sequences_equals_dense_on_each_alone():
    rng = np.random.default_rng(5)
    qa, ka, va = qkv(rng, 3)
    qb, kb, vb = qkv(rng, 4)
    req_ids = ["a"] * 3 + ["b"] * 4
    positions = [0, 1, 2, 0, 1, 2, 3]
    out = ragged_attention(np.concatenate([qa, qb]), np.concatenate([ka, kb]),
                           np.concatenate([va, vb]), ragged_causal_mask(req_ids, positions))
    np.testing.assert_allclose(out[:3], dense_causal_attention(qa, ka, va), rtol=0, atol=1e-12)
    np.testing.assert_allclose(out[3:], dense_causal_attention(qb, kb, vb), rtol=0, atol=1e-12)


def test_ragged_with_cached_keys_equals_dense_on_whole_sequences():
    # Step view: a decode of "a" (position 4, 4 cached keys) and a second chunk of "b"
    # (positions 3..5, 3 cached keys). Keys are each request's whole context.
    rng = np.random.default_rng(6)
    qa, ka, va = qkv(rng, 5)
    qb, kb, vb = qkv(rng, 6)
    q = np.concatenate([qa[4:], qb[3:]])
    k, v = np.concatenate([ka, kb]), np.concatenate([va, vb])
    mask = ragged_mask(["a"] + ["b"] * 3, [4, 3, 4, 5], ["a"] * 5 + ["b"] * 6,
                       list(range(5)) + list(range(6)))
    out = ragged_attention(q, k, v, mask)
    np.testing.assert_allclose(out[:1], dense_causal_attention(qa, ka, va)[4:], rtol=0, atol=1e-12)
    np.testing.assert_allclose(out[1:], dense_causal_attention(qb, kb, vb)[3:], rtol=0, atol=1e-12)


def test_segmented_attention_equals_ragged_attention():
    rng = np.random.default_rng(7)
    lengths, new = [5, 1, 7], [2, 1, 3]                  # context lengths, new tokens per request
    contexts = [(rng.standard_normal((n, H, D)), rng.standard_normal((n, H, D))) for n in lengths]
    q = rng.standard_normal((sum(new), H, D))
    cu_seqlens = np.cumsum([0] + new)
    q_ids = np.repeat([0, 1, 2], new)
    q_pos = np.concatenate([np.arange(L - t, L) for L, t in zip(lengths, new)])
    k_ids = np.repeat([0, 1, 2], lengths)
    k_pos = np.concatenate([np.arange(L) for L in lengths])
    k = np.concatenate([c[0] for c in contexts])
    v = np.concatenate([c[1] for c in contexts])
    expected = ragged_attention(q, k, v, ragged_mask(q_ids, q_pos, k_ids, k_pos))
    np.testing.assert_allclose(segmented_attention(q, cu_seqlens, contexts), expected,
                               rtol=0, atol=1e-12)


def test_gather_kv_follows_the_block_table():
    pool = np.arange(5 * 2 * 1 * 1).reshape(5, 2, 1, 1)   # block b holds values 2b, 2b+1
    np.testing.assert_array_equal(gather_kv(pool, [3, 0], 3).ravel(), [6, 7, 0])


@pytest.mark.parametrize("num_queries", [1, 3, 10])
def test_paged_attention_through_shuffled_blocks_equals_dense(num_queries):
    rng = np.random.default_rng(8)
    block_size, num_blocks, length = 3, 9, 10
    q, k, v = qkv(rng, length)
    k_pool = rng.standard_normal((num_blocks, block_size, H, D))   # other blocks: garbage
    v_pool = rng.standard_normal((num_blocks, block_size, H, D))
    table = [7, 2, 5, 0]                                 # non-contiguous, out of order
    for p in range(length):                              # scatter token p to its slot
        k_pool[table[p // block_size], p % block_size] = k[p]
        v_pool[table[p // block_size], p % block_size] = v[p]
    out = paged_attention(q[-num_queries:], k_pool, v_pool, table, length)
    np.testing.assert_allclose(out, dense_causal_attention(q, k, v)[-num_queries:],
                               rtol=0, atol=1e-12)


def test_roadmap_exercise_ragged_equals_dense_for_a_single_sequence():
    # Phase 6 exercise: one sequence, ragged path vs dense path -> identical.
    q, k, v = qkv(np.random.default_rng(9), 6)
    ragged = ragged_attention(q, k, v, ragged_causal_mask([0] * 6, np.arange(6)))
    np.testing.assert_array_equal(ragged, dense_causal_attention(q, k, v))


def test_a_query_that_sees_nothing_is_refused():
    q, k, v = qkv(np.random.default_rng(10), 2)
    with pytest.raises(AssertionError):
        masked_attention(q, k, v, np.array([[True, False], [False, False]]))
