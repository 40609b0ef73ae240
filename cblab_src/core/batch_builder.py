"""Lay out one step's work as a ragged batch: tokens concatenated, no padding.

A step mixes decode tokens (one per running request) and prefill chunks (several tokens of
one prompt). They are packed end to end; a *token table* records, for every token, which
request it belongs to and its position in that request's sequence. Attention must then stop
tokens of different requests from seeing each other: that is the ragged causal mask.

Example, requests A (2 tokens) and B (3 tokens)::

    token table  req_id: A A B B B      mask  1 . . . .
                 pos:    0 1 0 1 2            1 1 . . .
                                              . . 1 . .
                                              . . 1 1 .
                                              . . 1 1 1
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np


class Segment(NamedTuple):
    """One request's contiguous run of tokens inside a ragged batch.

    ``offset`` is where the run starts in the batch, ``start_pos`` the sequence position of its
    first token; ``samples`` is true when the last token's logits produce a new token (every
    decode, and the prefill chunk that completes a prompt). (An immutable named tuple: a step
    builds one per request, so it must be cheap to make.)
    """

    req_id: Hashable
    offset: int
    length: int
    start_pos: int
    samples: bool

    @property
    def end_pos(self) -> int:
        """Sequence length once this segment's K/V are cached."""
        return self.start_pos + self.length


@dataclass(frozen=True)
class RaggedBatch:
    """One step's tokens. Arrays have shape ``(N,)`` for the ``N`` tokens of the step."""

    token_ids: np.ndarray    # (N,) int64
    req_ids: tuple           # (N,) request id of each token
    positions: np.ndarray    # (N,) int64, position of each token in its own sequence
    segments: tuple[Segment, ...]

    @property
    def num_tokens(self) -> int:
        return int(self.token_ids.shape[0])

    @property
    def token_table(self) -> list[tuple[Hashable, int]]:
        """``[(req_id, position), ...]``, one row per token."""
        return list(zip(self.req_ids, self.positions.tolist()))

    @property
    def cu_seqlens(self) -> np.ndarray:
        """Segment boundaries ``[0, len0, len0+len1, ...]`` (FlashAttention's ``cu_seqlens_q``)."""
        return np.cumsum([0] + [s.length for s in self.segments])

    def mask(self) -> np.ndarray:
        """The ``(N, N)`` ragged causal mask of this step's tokens."""
        return ragged_causal_mask(self.req_ids, self.positions)


def build_batch(parts: Sequence[tuple[Hashable, Sequence[int], int, bool]]) -> RaggedBatch:
    """Pack ``(req_id, tokens, start_pos, samples)`` parts into one :class:`RaggedBatch`.

    ``build_batch([("A", [7, 8], 0, False), ("B", [3], 5, True)])`` gives token ids
    ``[7, 8, 3]``, positions ``[0, 1, 5]`` and two segments.
    """
    segments, tokens, req_ids = [], [], []
    offset = 0
    for req_id, toks, start_pos, samples in parts:
        n = len(toks)
        assert n > 0, f"empty segment for request {req_id!r}"
        segments.append(Segment(req_id, offset, n, start_pos, samples))
        tokens.extend(toks)
        req_ids.extend([req_id] * n)
        offset += n
    # Token i of a segment starting at batch offset o and sequence position p sits at p + i - o.
    shift = np.repeat([s.start_pos - s.offset for s in segments],
                      [s.length for s in segments]).astype(np.int64)
    return RaggedBatch(
        token_ids=np.asarray(tokens, dtype=np.int64),
        req_ids=tuple(req_ids),
        positions=np.arange(offset, dtype=np.int64) + shift,
        segments=tuple(segments),
    )


def _codes(req_ids: Sequence[Hashable]) -> dict:
    # Map ids (ints or strings) to small ints in order of first appearance: one pass over N.
    return {rid: i for i, rid in enumerate(dict.fromkeys(req_ids))}


def ragged_mask(q_req_ids: Sequence[Hashable], q_positions, k_req_ids: Sequence[Hashable],
                k_positions) -> np.ndarray:
    """``(Nq, Nk)`` bool: query i may see key j iff same request and ``k_pos[j] <= q_pos[i]``.

    The keys may include tokens cached in earlier steps, so a prefill chunk sees its own
    earlier chunks and a decode token sees its whole context.
    """
    codes = _codes(list(q_req_ids) + list(k_req_ids))
    q_code = np.fromiter((codes[r] for r in q_req_ids), np.int64, len(q_req_ids))
    k_code = np.fromiter((codes[r] for r in k_req_ids), np.int64, len(k_req_ids))
    q_pos = np.asarray(q_positions).reshape(-1)
    k_pos = np.asarray(k_positions).reshape(-1)
    if q_pos.shape[0] != q_code.shape[0] or k_pos.shape[0] != k_code.shape[0]:
        raise ValueError(f"req_ids and positions must have the same length, got "
                         f"{q_code.shape[0]} and {q_pos.shape[0]} (queries), "
                         f"{k_code.shape[0]} and {k_pos.shape[0]} (keys)")
    same_request = q_code[:, None] == k_code[None, :]
    causal = k_pos[None, :] <= q_pos[:, None]
    return same_request & causal


def ragged_causal_mask(req_ids: Sequence[Hashable], positions) -> np.ndarray:
    """``(N, N)`` bool mask of a ragged batch: ``mask[i, j]`` iff same request and ``pos[j] <= pos[i]``.

    ``ragged_causal_mask(["A", "A", "B"], [0, 1, 0])`` ->
    ``[[T, F, F], [T, T, F], [F, F, T]]``.
    """
    return ragged_mask(req_ids, positions, req_ids, positions)


def padding_waste(lengths: Sequence[int]) -> int:
    """Tokens a padded batch would waste: ``len(lengths) * max(lengths) - sum(lengths)``."""
    lengths = list(lengths)
    return len(lengths) * max(lengths) - sum(lengths) if lengths else 0
