"""Seeded workload generators: many requests from a few numbers and a seed.

:func:`random_workload` draws lengths uniformly in ranges and spaces arrivals evenly, in steps:
the small workloads of the chapters. :func:`synthetic_workload` draws prompt and output lengths
from a :class:`~cblab_src.workloads.shapes.WorkloadShape` (or two
:class:`~cblab_src.workloads.lengths.LengthDist`) and arrivals from a Poisson process
(:func:`~cblab_src.workloads.arrivals.poisson_arrivals`) or all at once: the large workloads of
the papers' reproductions. The same arguments give the same workload every time.
"""

from __future__ import annotations

import numpy as np

from .._validate import MAX_COUNT, non_negative_int, one_of, positive_int, real
from .arrivals import poisson_arrivals
from .lengths import MAX_LENGTH, LengthDist
from .shapes import WorkloadShape
from .workload import Workload


def random_workload(num_requests: int, *, prompt_len: tuple[int, int] = (4, 24),
                    max_new_tokens: tuple[int, int] = (2, 8), arrival_every: int = 0,
                    seed: int = 0, vocab_size: int = 128) -> Workload:
    """``num_requests`` requests with lengths uniform in the inclusive ranges given.

    Request ``i`` arrives at step ``i * arrival_every`` (all at once when 0).
    ``random_workload(3, seed=1)`` is the same three requests every time.
    """
    n = positive_int("num_requests", num_requests, maximum=MAX_COUNT)
    every = non_negative_int("arrival_every", arrival_every)
    rng = np.random.default_rng(non_negative_int("seed", seed))
    lo, hi = _range("prompt_len", prompt_len, minimum=1)
    plens = rng.integers(lo, hi + 1, n)
    lo, hi = _range("max_new_tokens", max_new_tokens, minimum=0)
    news = rng.integers(lo, hi + 1, n)
    return Workload.from_lengths(plens.tolist(), news.tolist(), [i * every for i in range(n)],
                                 seed=int(rng.integers(2**31)), vocab_size=vocab_size)


def _range(name: str, value, *, minimum: int) -> tuple[int, int]:
    if not (isinstance(value, tuple) and len(value) == 2):
        raise TypeError(f"{name} must be a (low, high) tuple, got {value!r}")
    lo, hi = (non_negative_int(name, v, maximum=MAX_LENGTH) for v in value)
    if lo < minimum or hi < lo:
        raise ValueError(f"{name} must satisfy {minimum} <= low <= high, got {value!r}")
    return lo, hi


def synthetic_workload(num_requests: int, shape: WorkloadShape | None = None, *,
                       prompt: LengthDist | None = None, output: LengthDist | None = None,
                       max_total: int | None = None, arrival_rate: float | None = None,
                       arrival_unit: str = "s", seed: int = 0,
                       vocab_size: int = 128) -> Workload:
    """``num_requests`` requests with lengths drawn from ``shape`` (or ``prompt``/``output``).

    Arrivals: all at once when ``arrival_rate`` is None; else a Poisson process with that rate,
    per second (``arrival_unit="s"``: the requests get ``arrival_ms``, for
    :func:`cblab_src.timing.simulate_timed`) or per step (``"step"``: ``arrival_step``).
    Lengths are clipped so that prompt + output <= ``max_total``. Every random choice (lengths,
    arrivals, token ids) comes from ``seed``, in separate streams.
    """
    n = positive_int("num_requests", num_requests, maximum=MAX_COUNT)
    if shape is None:
        if prompt is None or output is None:
            raise ValueError("give a shape, or both prompt and output LengthDists")
        shape = WorkloadShape(prompt, output, max_total)
    elif prompt is not None or output is not None or max_total is not None:
        raise ValueError("give a shape or prompt/output/max_total, not both")
    if not isinstance(shape, WorkloadShape):
        raise TypeError(f"shape must be a WorkloadShape, got {shape!r}")
    one_of("arrival_unit", arrival_unit, ("s", "step"))
    if arrival_rate is not None:
        real("arrival_rate", arrival_rate, positive=True)
    streams = [np.random.default_rng(s) for s in
               np.random.SeedSequence(non_negative_int("seed", seed)).spawn(3)]
    prompts = np.maximum(shape.prompt.sample(n, streams[0]), 1)
    outputs = shape.output.sample(n, streams[1])
    if shape.max_total is not None:
        prompts = np.minimum(prompts, shape.max_total - 1)
        outputs = np.minimum(outputs, shape.max_total - prompts)
    steps, times = np.zeros(n, dtype=np.int64), None
    if arrival_rate is not None:
        t = poisson_arrivals(n, arrival_rate, seed=int(streams[2].integers(2**31)))
        if arrival_unit == "s":
            if not t[-1] < np.finfo(np.float64).max / 1000.0:
                raise ValueError(f"arrival_rate {arrival_rate!r} per second is too small: the "
                                 f"arrivals do not fit in a float of milliseconds")
            times = (t * 1000.0).tolist()
        elif not t[-1] < 2**62:
            raise ValueError(f"arrival_rate {arrival_rate!r} per step is too small: the "
                             f"arrival steps do not fit in an int64")
        else:
            steps = np.floor(t).astype(np.int64)
    return Workload.from_lengths(prompts.tolist(), outputs.tolist(), steps.tolist(),
                                 seed=int(streams[2].integers(2**31)), vocab_size=vocab_size,
                                 arrival_ms=times)
