"""What a step computes, in the terms a GPU cost model needs: :class:`StepComposition` for one
step, :class:`StepArrays` for many (one array per quantity, so a whole run is costed at once).

A step of ``T`` tokens is ``B`` decode tokens (each attends to its request's context) plus prefill
chunks (each of ``C`` tokens, after ``start`` tokens of the same prompt already cached):

* the dense part of every layer (projections, MLP) runs on ``T`` rows: its cost depends on ``T``;
* decode attention reads every decode token's cached K/V: it depends on ``sum(context lens)``;
* a chunk's attention compares each of its ``C`` queries with ``start + 1 ..  start + C`` keys:
  ``C * start + C * (C + 1) / 2`` query-key pairs; it also reads ``start + C`` cached keys;
* the LM head runs once per step, on the rows that sample a token.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from .._validate import MAX_COUNT, non_negative_int, positive_int

# Largest token count or position a composition holds: exact as a float64, which StepArrays uses.
MAX_TOKENS = 2**53


@dataclass(frozen=True)
class StepComposition:
    """One step's work. ``StepComposition((40, 12), ((0, 64),), 2)``: two decode tokens with
    contexts of 40 and 12 tokens, one 64-token chunk at the start of a prompt, two sampled rows."""

    decode_context_lens: tuple[int, ...] = ()          # keys each decode token attends (itself too)
    prefill_chunks: tuple[tuple[int, int], ...] = ()   # (start, length) of each prompt chunk
    num_sampled: int = 0                               # rows of the LM head

    def __post_init__(self) -> None:
        for name in ("decode_context_lens", "prefill_chunks"):
            value = getattr(self, name)
            if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
                raise TypeError(f"{name} must be a tuple, got {value!r}")
            object.__setattr__(self, name, tuple(value))
        for i, n in enumerate(self.decode_context_lens):
            if non_negative_int(f"decode_context_lens[{i}]", n, maximum=MAX_TOKENS) < 1:
                raise ValueError(f"a decode context length must be >= 1, got "
                                 f"decode_context_lens[{i}]={n}")
        for i, chunk in enumerate(self.prefill_chunks):
            if not isinstance(chunk, (tuple, list)) or len(chunk) != 2:
                raise ValueError(f"prefill_chunks holds (start, length) pairs, got "
                                 f"prefill_chunks[{i}]={chunk!r}")
            non_negative_int(f"prefill_chunks[{i}] chunk start", chunk[0], maximum=MAX_TOKENS)
            if non_negative_int(f"prefill_chunks[{i}] chunk length", chunk[1],
                                maximum=MAX_TOKENS) < 1:
                raise ValueError(f"a chunk length must be >= 1, got prefill_chunks[{i}]="
                                 f"{tuple(chunk)}")
        object.__setattr__(self, "prefill_chunks", tuple(tuple(c) for c in self.prefill_chunks))
        non_negative_int("num_sampled", self.num_sampled, maximum=MAX_TOKENS)

    @classmethod
    def of(cls, stats) -> "StepComposition":
        """The composition of a scheduler step, from its :class:`~cblab_src.core.StepStats`
        (which the scheduler built from valid requests: not checked again, as timing a long
        run calls this once per step)."""
        c = object.__new__(cls)
        object.__setattr__(c, "decode_context_lens", tuple(stats.decode_context_lens))
        object.__setattr__(c, "prefill_chunks",
                           tuple((start, n) for _, start, n in stats.prefill_chunks))
        object.__setattr__(c, "num_sampled", len(stats.sampled))
        return c

    @classmethod
    def uniform(cls, num_decodes: int = 0, context_len: int = 1, chunks: int = 0,
                chunk_len: int = 0, chunk_start: int = 0) -> "StepComposition":
        """``num_decodes`` decodes of one context length and ``chunks`` equal chunks."""
        non_negative_int("num_decodes", num_decodes, maximum=MAX_COUNT)
        positive_int("context_len", context_len)
        if non_negative_int("chunks", chunks, maximum=MAX_COUNT) and \
                non_negative_int("chunk_len", chunk_len) < 1:
            raise ValueError(f"chunk_len must be >= 1 when chunks > 0, got {chunk_len!r}")
        non_negative_int("chunk_len", chunk_len)
        non_negative_int("chunk_start", chunk_start)
        return cls((context_len,) * num_decodes, ((chunk_start, chunk_len),) * chunks,
                   num_decodes + chunks)

    @property
    def num_decodes(self) -> int:
        return len(self.decode_context_lens)

    @property
    def prefill_tokens(self) -> int:
        return sum(n for _, n in self.prefill_chunks)

    @property
    def num_tokens(self) -> int:
        """``T``, the rows of the step's dense matmuls."""
        return self.num_decodes + self.prefill_tokens


@dataclass(frozen=True)
class StepArrays:
    """Many steps as arrays, each ``(S,)`` float64: what a cost model reads."""

    num_tokens: np.ndarray          # T: rows of the dense part
    num_decodes: np.ndarray         # decode tokens
    decode_kv_tokens: np.ndarray    # sum of the decode tokens' context lengths
    num_chunks: np.ndarray          # prefill chunks
    prefill_tokens: np.ndarray      # sum of chunk lengths
    prefill_kv_tokens: np.ndarray   # sum of (start + length): keys the chunks read
    prefill_pairs: np.ndarray       # sum of C * start + C (C + 1) / 2: query-key pairs
    num_sampled: np.ndarray         # rows of the LM head

    def __len__(self) -> int:
        return int(self.num_tokens.shape[0])

    @classmethod
    def of(cls, compositions: Iterable[StepComposition]) -> "StepArrays":
        rows = []
        for c in compositions:
            starts = np.array([s for s, _ in c.prefill_chunks], dtype=np.float64)
            lens = np.array([n for _, n in c.prefill_chunks], dtype=np.float64)
            rows.append((c.num_tokens, c.num_decodes, sum(c.decode_context_lens),
                         len(c.prefill_chunks), lens.sum(), (starts + lens).sum(),
                         (lens * starts + lens * (lens + 1) / 2).sum(), c.num_sampled))
        data = np.array(rows, dtype=np.float64).reshape(-1, 8)
        return cls(*(data[:, i].copy() for i in range(8)))

    @classmethod
    def from_history(cls, history: Sequence) -> "StepArrays":
        """The compositions of a scheduler run's :class:`~cblab_src.core.StepStats`."""
        return cls.of(StepComposition.of(s) for s in history)
