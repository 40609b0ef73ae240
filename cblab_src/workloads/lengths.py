"""Length distributions: how many tokens a prompt or an output has, drawn with a seeded generator.

Real prompts and outputs are not all the same length: most are short, a few are very long.
A :class:`LengthDist` is one such distribution (fixed, uniform, exponential or log-normal,
optionally capped); :func:`sample_lengths` draws ``n`` lengths from it with a seed, so the
same seed gives the same lengths every time. :class:`~cblab_src.workloads.shapes.WorkloadShape`
pairs two of them, one for prompts and one for outputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._validate import MAX_COUNT, non_negative_int, one_of, real


# Longest length a distribution may draw, in tokens: beyond any model's context, and small
# enough that lengths and their sums stay exact in int64.
MAX_LENGTH = 10**9
LENGTH_KINDS = ("fixed", "uniform", "exponential", "lognormal")


@dataclass(frozen=True)
class LengthDist:
    """A distribution of token counts (prompt or output lengths), drawn with a seeded generator.

    * ``fixed``: always ``round(mean)``;
    * ``uniform``: integers in ``[low, high]``, both ends included;
    * ``exponential``: ``round(Exp(mean))``;
    * ``lognormal``: ``round(exp(N(mu, sigma)))`` with ``mu`` chosen so the mean is ``mean``
      (the median is ``mean * exp(-sigma**2 / 2)``): a long right tail, like real chat prompts.

    Lengths below ``low`` become ``low``. Above ``high``, ``truncate="clip"`` sets them to
    ``high``; ``truncate="resample"`` draws them again, keeping only lengths <= ``high`` (what
    Anyscale's benchmark did with its "capped exponential"), so the mean falls below ``mean``.
    Every parameter is checked when the distribution is built: ``mean``, ``low`` and ``high``
    are finite and at most :data:`MAX_LENGTH` tokens, ``sigma`` is in (0, 10); a far tail draw
    becomes ``MAX_LENGTH``.
    ``LengthDist.lognormal(161, sigma=1.0).sample(3, np.random.default_rng(0))`` ->
    ``array([111, 86, 185])``.
    """

    kind: str
    mean: float = 1.0                  # tokens, before clipping or truncation
    low: int = 1                       # smallest length
    high: int | None = None            # largest length (None: no cap)
    sigma: float = 1.0                 # lognormal: standard deviation of log(length)
    truncate: str = "clip"             # "clip" or "resample" lengths above high

    def __post_init__(self) -> None:
        one_of("kind", self.kind, LENGTH_KINDS)
        one_of("truncate", self.truncate, ("clip", "resample"))
        _length("low", self.low)
        if self.high is not None and _length("high", self.high) < self.low:
            raise ValueError(f"high must be >= low ({self.low}), got {self.high}")
        if self.kind == "uniform" and self.high is None:
            raise ValueError("a uniform LengthDist needs high, got high=None")
        real("mean", self.mean, minimum=0.0, maximum=MAX_LENGTH)
        _sigma(self.sigma)

    @classmethod
    def fixed(cls, length: int) -> "LengthDist":
        return cls("fixed", mean=float(_length("length", length)), low=0)

    @classmethod
    def uniform(cls, low: int, high: int) -> "LengthDist":
        return cls("uniform", mean=(_length("low", low) + _length("high", high)) / 2, low=low,
                   high=high)

    @classmethod
    def exponential(cls, mean: float, *, high: int | None = None, low: int = 1,
                    truncate: str = "clip") -> "LengthDist":
        return cls("exponential", mean=mean, low=low, high=high, truncate=truncate)

    @classmethod
    def lognormal(cls, mean: float | None = None, *, median: float | None = None,
                  sigma: float = 1.0, high: int | None = None, low: int = 1) -> "LengthDist":
        """Give the ``mean`` or the ``median`` (``mean = median * exp(sigma**2 / 2)``)."""
        if (mean is None) == (median is None):
            raise ValueError(f"give exactly one of mean and median, got mean={mean!r}, "
                             f"median={median!r}")
        if mean is None:
            median = real("median", median, minimum=0.0, maximum=MAX_LENGTH)
            mean = median * math.exp(_sigma(sigma) ** 2 / 2)
        return cls("lognormal", mean=mean, low=low, high=high, sigma=sigma)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``(n,)`` int64 lengths."""
        n = non_negative_int("n", n, maximum=MAX_COUNT)
        if self.kind == "fixed":
            return np.full(n, max(round(self.mean), self.low), dtype=np.int64)
        if self.kind == "uniform":
            return rng.integers(self.low, self.high + 1, n).astype(np.int64)
        out = self._draw(n, rng)
        if self.high is not None and self.truncate == "resample":
            out = out[out <= self.high]
            while out.size < n:
                more = self._draw(n, rng)
                out = np.concatenate([out, more[more <= self.high]])
            out = out[:n]
        if self.high is not None:
            out = np.minimum(out, self.high)
        return np.maximum(out, self.low)

    def _draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        if self.kind == "exponential":
            x = rng.exponential(self.mean, n)
        else:
            x = rng.lognormal(math.log(max(self.mean, 1e-9)) - self.sigma ** 2 / 2, self.sigma, n)
        # A far tail draw (log-normal, large sigma) becomes MAX_LENGTH, never an int64 overflow.
        return np.round(np.minimum(x, MAX_LENGTH)).astype(np.int64)


def _length(name: str, value) -> int:
    """A length in tokens: an integer in ``[0, MAX_LENGTH]``."""
    if non_negative_int(name, value) > MAX_LENGTH:
        raise ValueError(f"{name} must be <= MAX_LENGTH ({MAX_LENGTH}), got {value!r}")
    return int(value)


def _sigma(value) -> float:
    """A log-normal's sigma: a finite number in (0, 10)."""
    sigma = real("sigma", value)
    if not 0 < sigma < 10:
        raise ValueError(f"sigma must be a number in (0, 10), got {value!r}")
    return sigma


def sample_lengths(dist: LengthDist, n: int, seed: int = 0) -> np.ndarray:
    """``(n,)`` lengths from ``dist`` with a generator seeded by ``seed``."""
    if not isinstance(dist, LengthDist):
        raise TypeError(f"dist must be a LengthDist, got {dist!r}")
    return dist.sample(n, np.random.default_rng(non_negative_int("seed", seed)))
