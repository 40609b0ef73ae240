"""Arrival processes: when requests reach the server.

All at once (every arrival at 0) is the simplest; a real server sees requests come one by one,
at random. :func:`poisson_arrivals` draws a Poisson process (independent arrivals at a
constant mean rate), the arrivals of the serving papers' benchmarks.
"""

from __future__ import annotations

import math

import numpy as np

from .._validate import MAX_COUNT, non_negative_int, real


def poisson_arrivals(n: int, rate: float, seed: int = 0) -> np.ndarray:
    """``(n,)`` arrival times of a Poisson process of ``rate`` arrivals per unit of time.

    The first request arrives at 0; the gaps after it are exponential with mean ``1 / rate``,
    so ``n`` arrivals span about ``(n - 1) / rate``. Units are the caller's: a rate per second
    gives times in seconds, a rate per step times in steps.
    """
    n = non_negative_int("n", n, maximum=MAX_COUNT)
    scale = 1.0 / real("rate", rate, positive=True)
    if not math.isfinite(scale):
        raise ValueError(f"rate must be a positive number whose inverse is finite, got {rate!r}")
    gaps = np.random.default_rng(non_negative_int("seed", seed)).exponential(scale, n)
    gaps[:1] = 0.0
    return np.cumsum(gaps)
