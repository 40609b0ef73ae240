"""Version 3: attention that reads K/V through a block table from a shared paged pool.

The pool for one layer is an array ``(num_blocks, block_size, H, D)``. A request's tokens live
in the blocks its block table lists, in order: token ``p`` is in block ``table[p // block_size]``
at slot ``p % block_size``. A real paged-attention kernel follows the table inside the kernel;
here we gather the blocks into a contiguous array first (same numbers, simpler to read).

:func:`paged_decode_attention` is the batched form a decode step uses: every decoding
sequence's single query attends over its own context in one einsum, the contexts gathered
padded to the longest with a length mask (what vLLM's paged-attention decode kernel does in
one launch). :func:`slot_mapping` gives every new token's slot, so a step writes all its K/V
with one scatter. A context's length (``context_len``, ``context_lens``: the kernels' names) is
its request's ``num_computed_tokens``, the new tokens included.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

from .dense_attention import causal_mask, masked_attention
from .ragged_attention import AttentionFn, decode_attention


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


def padded_block_tables(block_tables: Sequence[Sequence[int]]) -> np.ndarray:
    """``(B, max_blocks)`` int64: one row per sequence, padded with block 0 (never read past
    a sequence's length). ``padded_block_tables([[3, 1], [2]])`` -> ``[[3, 1], [2, 0]]``."""
    lengths = np.fromiter((len(t) for t in block_tables), np.int64, len(block_tables))
    out = np.zeros((len(block_tables), int(lengths.max(initial=0))), dtype=np.int64)
    flat = np.fromiter(itertools.chain.from_iterable(block_tables), np.int64, int(lengths.sum()))
    rows = np.repeat(np.arange(len(block_tables)), lengths)
    cols = np.arange(flat.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    out[rows, cols] = flat                              # one scatter, no loop over sequences
    return out


def slot_mapping(tables: np.ndarray, seq_index: np.ndarray, positions: np.ndarray,
                 block_size: int) -> np.ndarray:
    """Flat slot ``block * block_size + offset`` of every token, for one scatter into the pool.

    ``tables (S, max_blocks)`` from :func:`padded_block_tables`; ``seq_index (N,)`` the row of
    each token's sequence; ``positions (N,)`` its position in that sequence. Returns ``(N,)``:
    the pool viewed as ``(num_blocks * block_size, H, D)`` holds token ``i`` at ``slots[i]``.
    """
    return tables[seq_index, positions // block_size] * block_size + positions % block_size


def paged_decode_attention(q: np.ndarray, k_pool: np.ndarray, v_pool: np.ndarray,
                           tables: np.ndarray, context_lens: np.ndarray, *,
                           workspace: np.ndarray | None = None) -> np.ndarray:
    """One query per sequence, ``B`` sequences at once, each over its own paged context.

    ``q (B, H, D)``: the newest token of each sequence, whose K/V are already in the pool;
    ``tables (B, max_blocks)`` and ``context_lens (B,)`` say where each context lives and how
    long it is. The contexts are gathered, slot by slot through the block tables, padded to the
    longest, ``(B, L_max, H, D)``, and
    :func:`~cblab_src.attention.ragged_attention.decode_attention` does the rest: one
    batched call for all sequences instead of one per sequence, as a real paged-attention
    decode kernel does. Returns ``(B, H, D)``, equal (to rounding) to :func:`paged_attention`
    run on each sequence alone.

    ``workspace``, a flat array of at least :func:`decode_workspace_size` elements of the pool's
    dtype, is gathered into instead of fresh arrays: a caller running step after step reuses
    it (fresh multi-megabyte arrays cost the operating system's page faults every time).
    A model step calls the three parts itself: :func:`context_slots` once (every layer reads
    the same slots, each of its own pool), then :func:`gather_contexts` and
    :func:`decode_attention` in each layer.
    """
    slots = context_slots(tables, context_lens, k_pool.shape[1])          # (B, L_max)
    k, v = gather_contexts(k_pool, v_pool, slots, workspace)              # (B, L_max, H, D)
    return decode_attention(q, k, v, context_lens)


def context_slots(tables: np.ndarray, context_lens: np.ndarray, block_size: int) -> np.ndarray:
    """``(B, L_max)``: the flat pool slot of every context token of ``B`` sequences, padded to
    the longest. Padding points at a real slot of the sequence's table (or block 0), so it
    gathers harmless values that :func:`decode_attention` masks."""
    pos = np.arange(int(context_lens.max()))                             # (L_max,)
    return tables[:, pos // block_size] * block_size + pos % block_size


def gather_contexts(k_pool: np.ndarray, v_pool: np.ndarray, slots: np.ndarray,
                    workspace: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Copy the K and V at ``slots (B, L)`` out of the pools ``(num_blocks, block_size, H, D)``:
    ``k, v (B, L, H, D)``, into ``workspace`` when given (see :func:`paged_decode_attention`)."""
    padded = (*slots.shape, *k_pool.shape[2:])                           # (B, L, H, D)
    size = math.prod(padded)
    if workspace is None:
        workspace = np.empty(2 * size, dtype=k_pool.dtype)
    elif workspace.size < 2 * size or workspace.dtype != k_pool.dtype:
        raise ValueError(f"workspace must be a {k_pool.dtype} array of at least {2 * size} "
                         f"elements, got {workspace.size} of {workspace.dtype}")
    k, v = workspace[:size].reshape(padded), workspace[size:2 * size].reshape(padded)
    flat = (-1, *k_pool.shape[2:])                                       # (slots, H, D)
    np.take(k_pool.reshape(flat), slots, axis=0, out=k, mode="clip")  # valid slots: no checks
    np.take(v_pool.reshape(flat), slots, axis=0, out=v, mode="clip")
    return k, v


def decode_workspace_size(batch: int, max_context: int, heads: int, head_dim: int) -> int:
    """Elements :func:`paged_decode_attention` gathers into: K and V of ``batch`` contexts
    padded to the longest."""
    return 2 * batch * max_context * heads * head_dim
