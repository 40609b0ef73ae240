"""Run a workload under given knobs and keep everything the figures need.

:func:`simulate_schedule` is the pure ``simulate(params) -> result`` half of every explorer in
the book: the sliders, the static figures and the tests all call it, and
:mod:`cblab_src.viz` draws what it returns.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field

import numpy as np

from .core.request import Request
from .core.config import SchedulerConfig
from .core.scheduler import Scheduler, SchedulerCounters, StepStats
from .monitoring.metrics import LatencySummary, RequestTimes, request_times
from .monitoring.pool_snapshot import PoolRecorder as _PoolRecorder, PoolSnapshot
from .workloads import Workload


@dataclass(frozen=True)
class ScheduleRun:
    """A finished run: its steps, its requests (finished), the knobs, optional pool snapshots."""

    history: list[StepStats]
    requests: list[Request]
    config: SchedulerConfig
    pool: list[PoolSnapshot] | None
    counters: SchedulerCounters = field(default_factory=SchedulerCounters)

    @property
    def max_tokens_per_step(self) -> int:
        return self.config.max_tokens_per_step

    @property
    def prefill_chunk_size(self) -> int:
        return self.config.prefill_chunk_size

    @property
    def block_size(self) -> int:
        return self.config.block_size

    @property
    def num_steps(self) -> int:
        return len(self.history)

    @property
    def req_ids(self) -> list[Hashable]:
        return [r.req_id for r in self.requests]

    def request_times(self) -> list[RequestTimes]:
        """Each finished request's arrival and token times, in steps."""
        return request_times(self.requests)

    def latency_summary(self) -> LatencySummary:
        """The run's latencies in steps: means, percentiles, output tokens per step."""
        return LatencySummary.of(self.request_times(), self.num_steps, unit="step")

    @property
    def tokens_per_step(self) -> float:
        """Mean tokens processed per step (prefill and decode)."""
        return float(np.mean([s.num_tokens for s in self.history])) if self.history else 0.0

    @property
    def budget_use(self) -> float:
        """Fraction of the steps' token budget actually used."""
        return self.tokens_per_step / self.max_tokens_per_step

    def timed(self, cost_model=None, *, idle_step_ms: float | None = None):
        """This run in milliseconds under ``cost_model`` (default: the measured H200 preset):
        a :class:`~cblab_src.timing.TimedRun` with TTFT/TPOT/ITL in ms and tokens/s."""
        from .costmodel import DEFAULT_COST_MODEL
        from .timing import timed
        return timed(self.history, self.requests, cost_model or DEFAULT_COST_MODEL,
                     idle_step_ms=idle_step_ms)

    def summary(self) -> dict:
        """Steps, tokens/step, mean TTFT and TPOT (in steps) — what the sliders report, read off
        :meth:`latency_summary`."""
        s = self.latency_summary()
        return {
            "steps": self.num_steps,
            "tokens_per_step": round(self.tokens_per_step, 2),
            "mean_ttft": round(s.ttft.mean, 2) if s.ttft.count else None,
            "mean_tpot": round(s.tpot.mean, 2) if s.tpot.count else None,
        }


def simulate_schedule(workload: Workload, config: SchedulerConfig | None = None, *, model=None,
                      record_pool: bool = False, **knobs) -> ScheduleRun:
    """Run ``workload`` to completion and return a :class:`ScheduleRun`.

    The knobs are a :class:`SchedulerConfig` or its fields by name
    (``simulate_schedule(w, max_tokens_per_step=8, prefill_chunk_size=4)``). Without a
    ``model`` no numbers are computed (scheduling only, every sampled token is 0). For greedy
    requests with no EOS token the schedule is then exactly the real one; sampled requests with
    prefix caching can differ, because their real generated tokens decide which blocks they
    share. Arrivals are counted in steps; a workload whose arrivals are in milliseconds runs
    with :func:`cblab_src.timing.simulate_timed`. ``record_pool`` keeps a snapshot of the paged
    pool after every step (for the figures).
    """
    if not isinstance(workload, Workload):
        raise TypeError(f"workload must be a Workload (e.g. Workload.from_lengths(...)), got "
                        f"{workload!r}")
    if workload.arrival_ms is not None:
        raise ValueError("this workload's arrivals are in milliseconds: run it with "
                         "cblab_src.timing.simulate_timed(workload, cost_model, ...)")
    sched = Scheduler(model, config, **knobs)
    recorder = None
    if record_pool and sched.kv_layout == "paged":
        recorder = sched.plugins.register_scheduler_plugin(_PoolRecorder())
    requests = workload.requests()
    for r in requests:
        sched.add_request(r)
    history = sched.run()
    return ScheduleRun(history, requests, sched.config,
                       recorder.snapshots if recorder else None, sched.counters)
