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
import itertools
from dataclasses import dataclass
from functools import cached_property
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
    def num_computed_tokens(self) -> int:
        """The request's tokens in the KV cache once this segment's K/V are written: every key
        its last token attends to."""
        return self.start_pos + self.length


@dataclass(frozen=True)
class RaggedBatch:
    """One step's tokens, from ``parts`` ``(req_id, tokens, start_pos, samples)``, one per
    request. Arrays have shape ``(N,)`` for the ``N`` tokens of the step. Everything is built
    on first use: a scheduling-only run reads only :attr:`num_samples` and skips the rest."""

    parts: tuple[tuple[Hashable, Sequence[int], int, bool], ...]

    @cached_property
    def segments(self) -> tuple[Segment, ...]:
        segments, offset = [], 0
        for req_id, toks, start_pos, samples in self.parts:
            segments.append(Segment(req_id, offset, len(toks), start_pos, samples))
            offset += len(toks)
        return tuple(segments)

    @cached_property
    def token_ids(self) -> np.ndarray:
        """``(N,)`` int64 token ids, segments end to end."""
        return np.fromiter(itertools.chain.from_iterable(toks for _, toks, _, _ in self.parts),
                           np.int64, self.num_tokens)

    @cached_property
    def req_ids(self) -> tuple:
        """``(N,)`` request id of each token."""
        return tuple(itertools.chain.from_iterable([s.req_id] * s.length for s in self.segments))

    @cached_property
    def positions(self) -> np.ndarray:
        """``(N,)`` int64 position of each token in its own sequence."""
        # Token i of a segment starting at batch offset o and sequence position p sits at p + i - o.
        shift = np.repeat([s.start_pos - s.offset for s in self.segments],
                          [s.length for s in self.segments]).astype(np.int64)
        return np.arange(self.num_tokens, dtype=np.int64) + shift

    @property
    def num_tokens(self) -> int:
        return sum(len(toks) for _, toks, _, _ in self.parts)

    @property
    def num_samples(self) -> int:
        """Segments whose last token's logits produce a new token."""
        return sum(samples for *_, samples in self.parts)

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
    parts = tuple(parts)
    assert all(len(toks) for _, toks, _, _ in parts), f"empty segment in {parts!r}"
    return RaggedBatch(parts)


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
