"""Version 3: attention that reads K/V through a block table from a shared paged pool.

The pool for one layer is an array ``(num_blocks, block_size, H, D)``. A request's tokens live
in the blocks its block table lists, in order: token ``p`` is in block ``table[p // block_size]``
at slot ``p % block_size``. A real paged-attention kernel follows the table inside the kernel;
here we gather the blocks into a contiguous array first (same numbers, simpler to read).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .dense_attention import causal_mask, masked_attention
from .ragged_attention import AttentionFn


def gather_kv(pool: np.ndarray, block_table: Sequence[int], length: int) -> np.ndarray:
    """The first ``length`` tokens stored through ``block_table``: ``(length, H, D)``.

    ``pool`` is ``(num_blocks, block_size, H, D)``. Slots past ``length`` in the last block are
    empty and are cut off.
    """
    blocks = pool[np.asarray(block_table, dtype=np.int64)]      # (n_blocks, block_size, H, D)
    return blocks.reshape(-1, *pool.shape[2:])[:length]


def slot_indices(block_table: Sequence[int], block_size: int, start: int, stop: int) -> tuple:
    """``(block_ids, offsets)`` where positions ``start .. stop-1`` are stored."""
    pos = np.arange(start, stop)
    return np.asarray(block_table, dtype=np.int64)[pos // block_size], pos % block_size


def paged_attention(q: np.ndarray, k_pool: np.ndarray, v_pool: np.ndarray,
                    block_table: Sequence[int], context_len: int,
                    attend: AttentionFn = masked_attention) -> np.ndarray:
    """Attention of one request's newest ``T`` queries ``q (T, H, D)`` over its paged context.

    The request's context is ``context_len`` tokens (its new tokens included, already written to
    the pool). Decode is ``T = 1``: the query reads only the cache. Returns ``(T, H, D)``.
    """
    k = gather_kv(k_pool, block_table, context_len)
    v = gather_kv(v_pool, block_table, context_len)
    return attend(q, k, v, causal_mask(q.shape[0], context_len))
