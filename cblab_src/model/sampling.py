"""Choosing the next token from logits: greedy, temperature, top-k, top-p, a seed, EOS, and
custom logits processors (the sampler hook plugins use).

Every request samples with its own ``numpy.random.Generator`` seeded from its
:class:`SamplingParams`, advanced once per token it samples. What else is in the batch never
touches that generator, so a seeded request produces the same tokens batched or alone — the
property real servers (vLLM's per-request generators) keep for reproducibility.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .._validate import non_negative_int, positive_int


def _real(name: str, value, *, low: float, high: float, closed_low: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    ok = (value >= low if closed_low else value > low) and value <= high and not math.isnan(value)
    if not ok:
        bracket = "[" if closed_low else "("
        raise ValueError(f"{name} must be in {bracket}{low}, {high}], got {value!r}")
    return float(value)


@dataclass(frozen=True)
class SamplingParams:
    """How one request picks tokens. The defaults are greedy decoding with no stop token.

    ``temperature`` 0 means greedy (argmax); otherwise logits are divided by it, the
    distribution is cut to the ``top_k`` most likely tokens and to the smallest set whose
    probability reaches ``top_p``, and a token is drawn with the request's generator (seeded by
    ``seed``; ``None`` draws a fresh seed, so the run is not reproducible). Sampling
    ``eos_token_id`` ends the request early.
    """

    temperature: float = 0.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None
    eos_token_id: int | None = None

    def __post_init__(self) -> None:
        _real("temperature", self.temperature, low=0.0, high=math.inf, closed_low=True)
        if self.top_k is not None:
            positive_int("top_k", self.top_k)
        if self.top_p is not None:
            _real("top_p", self.top_p, low=0.0, high=1.0, closed_low=False)
        if self.seed is not None:
            non_negative_int("seed", self.seed)
        if self.eos_token_id is not None:
            non_negative_int("eos_token_id", self.eos_token_id)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def make_rng(self) -> np.random.Generator:
        """A new generator for one request (the same sequence every time for a given seed)."""
        return np.random.default_rng(self.seed)


GREEDY = SamplingParams()


def sample_token(logits: np.ndarray, params: SamplingParams, rng: np.random.Generator) -> int:
    """Pick one token id from ``logits (vocab,)`` under ``params``.

    Greedy draws nothing from ``rng``; every other setting draws exactly one number, so a
    request's generator advances once per sampled token whatever the batch.
    """
    if params.greedy:
        return int(np.argmax(logits))
    cdf = np.cumsum(probabilities(logits, params))
    # Inverse-CDF sampling with one uniform draw; min() guards against rounding at the top.
    return int(min(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"), cdf.size - 1))


def probabilities(logits: np.ndarray, params: SamplingParams) -> np.ndarray:
    """The distribution ``sample_token`` draws from: ``(vocab,)``, summing to 1.

    ``probabilities([2., 1., 0.], SamplingParams(temperature=1.0, top_k=2))`` keeps the two
    largest logits: ``[0.731, 0.269, 0.]``.
    """
    z = np.asarray(logits, dtype=np.float64) / max(params.temperature, 1e-12)
    if params.top_k is not None and params.top_k < z.size:
        kth = np.partition(z, -params.top_k)[-params.top_k]
        z = np.where(z >= kth, z, -np.inf)
    p = np.exp(z - z.max())
    p /= p.sum()
    if params.top_p is not None and params.top_p < 1.0:
        order = np.argsort(-p, kind="stable")
        before = np.cumsum(p[order]) - p[order]          # mass of strictly more likely tokens
        keep = np.zeros_like(p, dtype=bool)
        keep[order[before < params.top_p]] = True        # smallest set reaching top_p
        p = np.where(keep, p, 0.0)
        p /= p.sum()
    return p


class LogitsProcessor(abc.ABC):
    """Rewrites next-token logits before sampling (a custom sampler hook).

    ``tokens`` is the request's prompt followed by what it has generated so far; ``logits``
    is ``(vocab,)``. Return the new ``(vocab,)`` logits.
    """

    @abc.abstractmethod
    def process_logits(self, tokens: Sequence[int], logits: np.ndarray) -> np.ndarray:
        ...


def apply_logits_processors(processors: Sequence[LogitsProcessor], tokens: Sequence[int],
                            logits: np.ndarray) -> np.ndarray:
    """Feed ``logits`` through each processor in turn."""
    for processor in processors:
        logits = processor.process_logits(tokens, logits)
    return logits
