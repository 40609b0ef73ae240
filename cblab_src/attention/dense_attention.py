"""Version 1: multi-head attention over one dense causal sequence — the reference.

Every other attention path (ragged, paged) is tested against :func:`masked_attention`.
Shapes: ``T`` queries, ``S`` keys, ``H`` heads of size ``D``.
"""

from __future__ import annotations

import math

import numpy as np


def causal_mask(num_queries: int, num_keys: int | None = None) -> np.ndarray:
    """``(T, S)`` bool mask for the *last* ``T`` positions of a ``S``-token sequence.

    Query ``i`` sits at position ``S - T + i`` and sees keys ``0 .. S - T + i``. With
    ``num_keys`` omitted it is the square lower-triangular mask of a whole sequence;
    ``causal_mask(1, 5)`` is one decode token seeing all five cached keys.
    """
    num_keys = num_queries if num_keys is None else num_keys
    assert 0 <= num_queries <= num_keys, (num_queries, num_keys)
    q_pos = np.arange(num_keys - num_queries, num_keys)
    return np.arange(num_keys)[None, :] <= q_pos[:, None]


def masked_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Softmax attention of ``q (T, H, D)`` over ``k, v (S, H, D)`` where ``mask (T, S)`` allows.

    Returns ``(T, H, D)``. Masked scores are set to ``-inf`` *before* the softmax, so masked keys
    get exactly zero weight (no clamping that leaks weight). Every query must see at least one
    key (itself, in a causal mask).
    """
    assert mask.shape == (q.shape[0], k.shape[0]), (mask.shape, q.shape, k.shape)
    assert mask.any(axis=1).all(), "a query row sees no key"
    scale = 1.0 / math.sqrt(q.shape[-1])                        # a Python float keeps q's dtype
    scores = np.einsum("thd,shd->hts", q, k) * scale            # (H, T, S)
    scores = np.where(mask[None, :, :], scores, -np.inf)
    scores -= scores.max(axis=-1, keepdims=True)                  # stable softmax
    weights = np.exp(scores)
    weights /= weights.sum(axis=-1, keepdims=True)
    return np.einsum("hts,shd->thd", weights, v)                  # (T, H, D)


def dense_causal_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Causal self-attention of one sequence: ``q, k, v (T, H, D) -> (T, H, D)``."""
    return masked_attention(q, k, v, causal_mask(q.shape[0]))
