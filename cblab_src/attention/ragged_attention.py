"""Version 2: attention over a ragged batch — many requests' tokens packed into one array.

The ragged mask (see :func:`cblab_src.core.batch_builder.ragged_mask`) does all the work:
queries of one request see only keys of the same request, causally. Keys may include each
request's *cached* K/V from earlier steps, so a prefill chunk sees its earlier chunks and a
decode token its whole context.

This packed form computes scores for every query-key pair and masks most of them away: it
shows the idea in one matmul. Real kernels (FlashAttention's varlen mode) walk the segments
instead and never touch another request's keys; :func:`segmented_attention` does that, and the
two agree. Decode tokens, one query each, are batched differently: :func:`decode_attention`
pads their contexts to the longest and masks the padding, so all of them take one call.

Its ``context_lens`` keep the kernels' vocabulary (vLLM's paged-attention kernel argument,
FlashAttention's ``seqused_k``): ``context_lens[b]`` is the number of keys sequence ``b``
attends to, which is its request's ``num_computed_tokens`` in the engine, the new token
included (see :mod:`cblab_src.core.request`).
"""

from __future__ import annotations

import math
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


def pad_contexts(contexts: Sequence[np.ndarray]) -> np.ndarray:
    """Stack ``B`` arrays ``(L_i, H, D)`` into ``(B, max L_i, H, D)``, zero-padded at the end."""
    out = np.zeros((len(contexts), max(c.shape[0] for c in contexts), *contexts[0].shape[1:]),
                   dtype=contexts[0].dtype)
    for i, c in enumerate(contexts):
        out[i, :c.shape[0]] = c
    return out


def decode_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray,
                     context_lens: np.ndarray) -> np.ndarray:
    """Attention of ``B`` single queries, each over its own context, in one batched call.

    ``q (B, H, D)`` holds the newest token of each sequence; ``k, v (B, L, H, D)`` hold the
    contexts padded to a common length ``L``, sequence ``b`` owning rows ``0 .. context_lens[b]-1``
    (its own new key last). Padding gets exactly zero weight (its score is ``-inf`` before the
    softmax). Returns ``(B, H, D)``, equal to rounding to
    :func:`~cblab_src.attention.dense_attention.masked_attention` of each query alone.
    """
    visible = np.arange(k.shape[1])[None, :] < np.asarray(context_lens)[:, None]   # (B, L)
    scale = 1.0 / math.sqrt(q.shape[-1])
    scores = np.matmul(q[:, :, None, :], k.transpose(0, 2, 3, 1))[:, :, 0] * scale  # (B, H, L)
    scores = np.where(visible[:, None, :], scores, -np.inf)
    scores -= scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores, out=scores)                    # in place: no second (B, H, L)
    weights /= weights.sum(axis=-1, keepdims=True)
    return np.matmul(weights[:, :, None, :], v.transpose(0, 2, 1, 3))[:, :, 0]        # (B, H, D)
