"""Runs in milliseconds: every step timed by a cost model, latencies and throughput in real units.

Two ways to get a :class:`TimedRun`:

* :func:`simulate_timed` — requests arrive in milliseconds (``RequestSpec.arrival_ms``, e.g.
  Poisson at so many requests per second). The loop keeps a clock: it hands the scheduler every
  request that has arrived, runs a step, and advances the clock by the step's cost; when nothing
  is left to do it jumps to the next arrival. This is how a real server's time flows.
* :func:`timed` (or ``ScheduleRun.timed()``) — re-times a run whose arrivals were counted in
  steps: each step lasts what the cost model says, and a request arriving at step ``a`` arrives
  when step ``a`` starts. Empty steps (waiting for arrivals) last ``idle_step_ms``.

Latencies are those of :mod:`cblab_src.monitoring.metrics` (one definition for steps and ms) on
the millisecond clock: a token is ready when its step ends, at ``step_end_ms[s]``, and
:meth:`TimedRun.request_times` gives each request's :class:`RequestTimes` with ``unit="ms"``.
ITL is what Sarathi-Serve calls TBT (time between tokens). :meth:`TimedRun.summary` is their
:class:`LatencySummary`: percentiles in ms, throughput in output tokens per second of the whole
run (``total_tok_s`` counts prompt tokens too, as Anyscale's benchmark did).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ._gc import cycle_collector_paused
from ._validate import real
from .core.request import Request
from .core.config import SchedulerConfig
from .core.scheduler import Scheduler
from .core.step_stats import StepStats
from .costmodel import DEFAULT_COST_MODEL, CostModel, StepComposition
from .monitoring.metrics import LatencySummary, RequestTimes
from .workloads import Workload

from .slo import capacity, goodput, meets_percentile_targets, met_targets  # noqa: E402 (re-exported)

__all__ = ["LatencySummary", "RequestTimes", "TimedRun", "simulate_timed", "timed", "goodput",
           "capacity", "met_targets", "meets_percentile_targets"]


@dataclass(frozen=True)
class TimedRun:
    """A finished scheduler run with every step's duration under a cost model."""

    history: list[StepStats]
    requests: list[Request]
    step_ms: np.ndarray             # (S,) duration of each step
    step_end_ms: np.ndarray         # (S,) clock when each step ends (idle gaps included)
    arrival_ms: np.ndarray          # (R,) arrival of each request, aligned with requests
    cost_model: CostModel

    @property
    def num_steps(self) -> int:
        return len(self.history)

    @property
    def busy_ms(self) -> float:
        """Time spent running steps (the makespan less idle gaps)."""
        return float(self.step_ms.sum())

    def request_times(self) -> list[RequestTimes]:
        """Per finished request, its arrival and token times in ms."""
        return [RequestTimes.from_request(r, self.step_end_ms, arrival)
                for r, arrival in zip(self.requests, self.arrival_ms) if r.finish_step is not None]

    def summary(self) -> LatencySummary:
        """Latency percentiles in ms and throughput per second."""
        return LatencySummary.of(self.request_times(), self.num_steps, unit="ms")


def simulate_timed(workload: Workload, cost_model: CostModel = DEFAULT_COST_MODEL,
                   config: SchedulerConfig | None = None, *, model=None, **knobs) -> TimedRun:
    """Run ``workload`` with its arrivals in milliseconds against a clock driven by ``cost_model``.

    Requests without ``arrival_ms`` arrive at 0 (all at once). A request is added to the
    scheduler when the clock reaches its arrival, so it waits for the step in flight to end,
    as on a real server. The scheduler's knobs are a :class:`SchedulerConfig` or its fields by
    name (``max_tokens_per_step=512, prefill_chunk_size=512, ...``).
    """
    if not isinstance(cost_model, CostModel):
        raise TypeError(f"cost_model must be a CostModel, got {cost_model!r}")
    if not isinstance(workload, Workload):      # its specs' arrival_ms are finite and >= 0
        raise TypeError(f"workload must be a Workload, got {workload!r}")
    arrivals = workload.arrivals_in_ms("run it with simulate_schedule(...).timed(cost_model)")
    sched = Scheduler(model, config, **knobs)
    requests = workload.requests()
    if not np.any(arrivals > 0):                   # all at once: run, then time every step
        for r in requests:
            sched.add_request(r)
        history = sched.run()
        ms = cost_model.history_ms(history)
        return TimedRun(history, requests, ms, np.cumsum(ms), np.zeros(len(requests)),
                        cost_model)
    order = np.argsort(arrivals, kind="stable")
    clock, i, history, durations, ends = 0.0, 0, [], [], []
    with cycle_collector_paused():              # (performance: see cblab_src/_gc.py)
        while i < len(order) or sched.has_unfinished:
            while i < len(order) and arrivals[order[i]] <= clock:
                r = requests[order[i]]
                r.arrival_step = sched.step_count      # it joins the next step
                sched.add_request(r)
                i += 1
            if not sched.has_unfinished:
                clock = float(arrivals[order[i]])      # idle until the next arrival
                continue
            stats = sched.step()
            ms = cost_model.step_ms(StepComposition.of(stats))
            clock += ms
            history.append(stats)
            durations.append(ms)
            ends.append(clock)
    return TimedRun(history, requests, np.asarray(durations), np.asarray(ends),
                    np.asarray(arrivals, dtype=np.float64), cost_model)


def timed(history: Sequence[StepStats], requests: Sequence[Request],
          cost_model: CostModel = DEFAULT_COST_MODEL, *,
          idle_step_ms: float | None = None) -> TimedRun:
    """Time a run whose arrivals were counted in steps: each step lasts what ``cost_model``
    says; an empty step (nothing had arrived) lasts ``idle_step_ms`` (default: a one-token
    step, the shortest a busy engine takes). A request arriving at step ``a`` arrives when step
    ``a`` starts."""
    if not isinstance(cost_model, CostModel):
        raise TypeError(f"cost_model must be a CostModel, got {cost_model!r}")
    _check_run(history, requests)
    if idle_step_ms is not None:
        idle_step_ms = real("idle_step_ms", idle_step_ms, minimum=0.0)
    ms = cost_model.history_ms(history)
    if idle_step_ms is None:
        idle_step_ms = cost_model.step_ms(StepComposition((1,), (), 1))
    ms = np.where(np.array([s.num_tokens == 0 for s in history], dtype=bool), idle_step_ms, ms)
    ends = np.cumsum(ms)
    starts = ends - ms
    arrivals = np.array([starts[r.arrival_step] if r.arrival_step < len(starts) else 0.0
                         for r in requests], dtype=np.float64)
    return TimedRun(list(history), list(requests), ms, ends, arrivals, cost_model)


def _check_run(history, requests) -> None:
    """``history`` must be a whole run's steps (``history[i].step_id == i``) and cover every
    step a finished request in ``requests`` produced a token in: :func:`timed` reads each
    request's times by step number."""
    for name, value, kind in (("history", history, StepStats), ("requests", requests, Request)):
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise TypeError(f"{name} must be a list of {kind.__name__}s, got {value!r}")
        for i, item in enumerate(value):
            if not isinstance(item, kind):
                raise TypeError(f"{name}[{i}] must be a {kind.__name__}, got {item!r}")
    for i, stats in enumerate(history):
        if stats.step_id != i:
            raise ValueError(f"history must be a run's steps from step 0, in order "
                             f"(history[i].step_id == i), got history[{i}].step_id == "
                             f"{stats.step_id}")
    for r in requests:
        last = r.finish_step if r.finish_step is not None else max(r.token_steps, default=-1)
        if last >= len(history):
            raise ValueError(f"history has {len(history)} steps but request {r.req_id!r} "
                             f"produced a token or finished in step {last}: pass the run's "
                             f"whole history")
