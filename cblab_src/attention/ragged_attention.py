"""Version 2: attention over a ragged batch — many requests' tokens packed into one array.

The ragged mask (see :func:`cblab_src.core.batch_builder.ragged_mask`) does all the work:
queries of one request see only keys of the same request, causally. Keys may include each
request's *cached* K/V from earlier steps, so a prefill chunk sees its earlier chunks and a
decode token its whole context.

This packed form computes scores for every query-key pair and masks most of them away: it
shows the idea in one matmul. Real kernels (FlashAttention's varlen mode) walk the segments
instead and never touch another request's keys; :func:`segmented_attention` does that, and the
two agree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .dense_attention import causal_mask, masked_attention

AttentionFn = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def ragged_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Packed attention: ``q (N, H, D)`` over ``k, v (M, H, D)`` with a ragged ``mask (N, M)``.

    Returns ``(N, H, D)``. Identical to running each request's tokens through
    :func:`~cblab_src.attention.dense_attention.masked_attention` on its own.
    """
    return masked_attention(q, k, v, mask)


def segmented_attention(q: np.ndarray, cu_seqlens: Sequence[int],
                        contexts: Sequence[tuple[np.ndarray, np.ndarray]],
                        attend: AttentionFn = masked_attention) -> np.ndarray:
    """Ragged attention one request at a time, as a varlen kernel does.

    ``q (N, H, D)`` holds the step's queries; segment ``i`` is ``q[cu_seqlens[i]:cu_seqlens[i+1]]``
    and attends causally over ``contexts[i] = (k_i, v_i)``, each ``(L_i, H, D)``, whose last
    rows are the segment's own new keys. Returns ``(N, H, D)``.
    """
    out = np.empty_like(q)
    for i, (k_i, v_i) in enumerate(contexts):
        lo, hi = cu_seqlens[i], cu_seqlens[i + 1]
        out[lo:hi] = attend(q[lo:hi], k_i, v_i, causal_mask(hi - lo, k_i.shape[0]))
    return out
