"""Serving targets: which requests met their latency targets, goodput, and capacity.

Serving papers judge a scheduler by what it sustains, not by what it does with a fixed batch:

* a request **meets its targets** when its time to first token is at most ``ttft_slo_ms``
  and its time per output token at most ``tpot_slo_ms`` (a one-token reply has no TPOT and
  meets that target);
* **goodput** (DistServe's word) is how many requests per second met both targets, over the
  run's duration (first arrival to last reply): throughput that counts only happy users;
* **capacity** under a pair of targets is the highest arrival rate at which the run's
  ``percentile``-th TTFT and TPOT both stay within them (Sarathi-Serve's "capacity under
  SLO"), found by :func:`capacity` by bisection on the rate.

Everything here reads :class:`~cblab_src.monitoring.metrics.RequestTimes` in milliseconds,
from a :class:`~cblab_src.timing.TimedRun`, a :class:`~cblab_src.baselines.StaticRun` or any
run with ``request_times()`` (or ``times``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from ._validate import real
from .monitoring.metrics import RequestTimes

__all__ = ["met_targets", "goodput", "meets_percentile_targets", "capacity"]


def _times(run) -> Sequence[RequestTimes]:
    times = run.request_times() if hasattr(run, "request_times") else getattr(run, "times", None)
    if times is None:
        raise TypeError(f"run must have request_times() or times, got {run!r}")
    if any(t.unit != "ms" for t in times):
        raise ValueError("run must be timed in milliseconds (time it with a cost model)")
    return times


def _targets(ttft_slo_ms, tpot_slo_ms) -> tuple[float, float]:
    return (real("ttft_slo_ms", ttft_slo_ms, minimum=0.0),
            real("tpot_slo_ms", tpot_slo_ms, minimum=0.0))


def met_targets(run, *, ttft_slo_ms: float, tpot_slo_ms: float) -> list[bool]:
    """For each finished request of ``run``, whether it met both targets."""
    ttft_slo_ms, tpot_slo_ms = _targets(ttft_slo_ms, tpot_slo_ms)
    return [t.ttft is not None and t.ttft <= ttft_slo_ms
            and (t.tpot is None or t.tpot <= tpot_slo_ms) for t in _times(run)]


def goodput(run, *, ttft_slo_ms: float, tpot_slo_ms: float) -> float:
    """Requests per second that met both targets, over the run's duration: its
    ``duration_ms`` if it has one (an open-loop run's arrival window), else from the first
    arrival to the last reply. Every request meeting them: completed requests / duration."""
    met = met_targets(run, ttft_slo_ms=ttft_slo_ms, tpot_slo_ms=tpot_slo_ms)
    times = _times(run)
    if not times:
        return 0.0
    duration_ms = getattr(run, "duration_ms", None)
    if duration_ms is None:
        duration_ms = max(t.finish for t in times) - min(t.arrival for t in times)
    return 1000.0 * sum(met) / duration_ms if duration_ms > 0 else math.nan


def meets_percentile_targets(run, *, ttft_slo_ms: float, tpot_slo_ms: float,
                             percentile: float = 99) -> bool:
    """Whether the run's ``percentile``-th TTFT and TPOT are both within the targets."""
    ttft_slo_ms, tpot_slo_ms = _targets(ttft_slo_ms, tpot_slo_ms)
    percentile = real("percentile", percentile, minimum=0.0, maximum=100.0)
    times = _times(run)
    ttft = [t.ttft for t in times if t.ttft is not None]
    tpot = [t.tpot for t in times if t.tpot is not None]
    if not ttft:
        return False
    return (float(np.percentile(ttft, percentile)) <= ttft_slo_ms
            and (not tpot or float(np.percentile(tpot, percentile)) <= tpot_slo_ms))


def capacity(run_at_rate: Callable[[float], object], *, ttft_slo_ms: float | None = None,
             tpot_slo_ms: float | None = None, percentile: float = 99,
             meets: Callable[[object], bool] | None = None, low: float = 0.125,
             high: float = 8.0, rel_tol: float = 0.02, max_rate: float = 1e6) -> float:
    """The highest arrival rate (requests/s) whose run meets both ``percentile`` targets (or
    passes ``meets(run)``, another test: Sarathi-Serve's is a p99 time between tokens and a
    median scheduling delay).

    ``run_at_rate(rate)`` serves one workload arriving at ``rate`` (e.g. Poisson arrivals,
    :func:`cblab_src.load.open_loop`) and returns its timed run. Assuming latency only grows
    with the rate, the answer is bracketed — ``high`` doubles until it fails, ``low`` halves
    until it passes (0.0 if even ``low / 2**20`` fails) — then bisected until the bracket is
    narrower than ``rel_tol`` of the answer: the result meets the targets and a rate
    ``1 + rel_tol`` times higher does not (2 % by default: the knee is steep, and each probe is
    a whole simulated run).
    """
    if meets is None:
        if ttft_slo_ms is None or tpot_slo_ms is None:
            raise ValueError("give ttft_slo_ms and tpot_slo_ms, or a meets(run) test")
        ttft_slo_ms, tpot_slo_ms = _targets(ttft_slo_ms, tpot_slo_ms)

        def meets(run) -> bool:
            return meets_percentile_targets(run, ttft_slo_ms=ttft_slo_ms,
                                            tpot_slo_ms=tpot_slo_ms, percentile=percentile)
    elif ttft_slo_ms is not None or tpot_slo_ms is not None:
        raise ValueError("give either the targets or a meets(run) test, not both")
    elif not callable(meets):
        raise TypeError(f"meets must be a function of a run, got {meets!r}")

    def ok(rate: float) -> bool:
        return bool(meets(run_at_rate(rate)))

    low = real("low", low, positive=True)
    high = real("high", high, minimum=low)
    rel_tol = real("rel_tol", rel_tol, positive=True)
    while ok(high):
        low, high = high, 2 * high
        if high > max_rate:
            return low
    floor = low / 2**20
    while not ok(low):
        low, high = low / 2, low
        if low < floor:
            return 0.0
    while high - low > rel_tol * low:
        mid = (low + high) / 2
        low, high = (mid, high) if ok(mid) else (low, mid)
    return low
