"""Choosing the next token from logits: greedy, temperature, top-k, top-p, a seed, EOS, and
custom logits processors (the sampler hook plugins use).

Every request samples with its own ``numpy.random.Generator`` seeded from its
:class:`SamplingParams`, advanced once per token it samples. What else is in the batch never
touches that generator, so a seeded request produces the same tokens batched or alone — the
property real servers (vLLM's per-request generators) keep for reproducibility.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .._validate import non_negative_int, positive_int, real


def _real(name: str, value, *, low: float, high: float, closed_low: bool) -> float:
    """A finite number in ``[low, high]`` (or ``(low, high]``): ``TypeError`` if it is not a
    number, ``ValueError`` naming ``name`` if it is NaN, infinite or out of range."""
    x = real(name, value)
    if not ((x >= low if closed_low else x > low) and x <= high):
        bracket = "[" if closed_low else "("
        raise ValueError(f"{name} must be in {bracket}{low}, {high}], got {value!r}")
    return x


@dataclass(frozen=True)
class SamplingParams:
    """How one request picks tokens. The defaults are greedy decoding with no stop token.

    ``temperature`` 0 means greedy (argmax); otherwise (a finite number > 0) logits are divided
    by it, the distribution is cut to the ``top_k`` most likely tokens and to the smallest set whose
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
        # Finite: at temperature inf every logit becomes 0 and top-k/top-p would pick by index.
        real("temperature", self.temperature, minimum=0.0)
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
    _check_params(params)
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
    _check_params(params)
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


def _check_params(params) -> None:
    if not isinstance(params, SamplingParams):
        raise TypeError(f"params must be a SamplingParams, got {params!r}")


class LogitsProcessor(abc.ABC):
    """Rewrites next-token logits before sampling (a custom sampler hook).

    ``tokens`` is the request's prompt followed by what it has generated so far; ``logits``
    is ``(vocab,)``. Return the new ``(vocab,)`` logits.
    """

    @abc.abstractmethod
    def process_logits(self, tokens: Sequence[int], logits: np.ndarray) -> np.ndarray:
        ...


def check_logits_processors(processors, name: str = "logits_processors"
                            ) -> tuple[LogitsProcessor, ...]:
    """Return ``processors`` as a tuple if it is a sequence of objects with a callable
    ``process_logits`` (a :class:`LogitsProcessor`, or any object written like one), else raise
    ``TypeError`` naming the bad entry: ``logits_processors=[1]`` fails here, before any
    forward pass, not deep inside sampling."""
    if isinstance(processors, (str, bytes)) or not isinstance(processors, Sequence):
        raise TypeError(f"{name} must be a list or tuple of LogitsProcessors, got "
                        f"{processors!r} ({type(processors).__name__})")
    for i, processor in enumerate(processors):
        if isinstance(processor, type) or not callable(getattr(processor, "process_logits", None)):
            what = "a class, not an instance" if isinstance(processor, type) else \
                type(processor).__name__
            raise TypeError(f"{name}[{i}] must be a LogitsProcessor (an object with a "
                            f"process_logits(tokens, logits) method), got {processor!r} ({what})")
    return tuple(processors)


def apply_logits_processors(processors: Sequence[LogitsProcessor], tokens: Sequence[int],
                            logits: np.ndarray) -> np.ndarray:
    """Feed ``logits`` through each processor in turn.

    ``processors`` is checked by :func:`check_logits_processors`; each result must have the
    shape of the logits it was given (``ValueError`` naming the processor otherwise)."""
    for i, processor in enumerate(check_logits_processors(processors)):
        shape = np.shape(logits)
        logits = processor.process_logits(tokens, logits)
        if np.shape(logits) != shape:
            raise ValueError(f"logits_processors[{i}] ({type(processor).__name__}) returned "
                             f"logits of shape {np.shape(logits)}, expected {shape}")
    return logits
