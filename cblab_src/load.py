"""Open-loop load: requests arriving at a rate, served by a policy, measured as a server is.

A benchmark of a fixed batch says how fast a server empties it. A server in production sees
requests arrive, one by one and at random, whether or not it keeps up: an *open loop*. Below
the rate it can sustain, each request waits a little; past it, the queue — and every latency
with it — grows without bound: the knee every latency-versus-load curve shows.

:func:`open_loop` serves ``num_requests`` requests with ShareGPT-like lengths and Poisson
arrivals at ``rate`` requests per second, under a cost model in milliseconds, with one of four
policies: ``"static"`` (request-level batching, :mod:`cblab_src.baselines`),
``"prefill_first"``, ``"decode_first"`` and ``"vllm_v1"``
(:class:`~cblab_src.core.scheduler.Scheduler`). :func:`load_sweep` does it for every policy and
rate.

**What is measured.** The first and last ``warmup`` requests (by arrival) are left out: the
first ones meet an empty server, the last ones a server no longer receiving work, and neither is
the steady state a rate describes. With the defaults, 1000 requests and 100 left out at each
end, every percentile comes from 800 requests: the p99 is the 8th-worst, and moving the seed
moves it by a few percent below the knee (past the knee nothing is stable: the queue grows
for as long as the run lasts, which is the finding).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validate import non_negative_int, one_of, positive_int, real
from .baselines import StaticRun, simulate_static
from .costmodel import DEFAULT_COST_MODEL, CostModel
from .monitoring.metrics import Distribution, LatencySummary, RequestTimes
from .timing import TimedRun, simulate_timed
from .workloads import SHAREGPT, WorkloadShape, synthetic_workload

__all__ = ["POLICIES", "LoadRun", "LoadPoint", "open_loop", "load_sweep"]

POLICIES = ("static", "prefill_first", "decode_first", "vllm_v1")


@dataclass(frozen=True)
class LoadRun:
    """One open-loop run: the whole run, and which requests are measured."""

    policy: str
    rate: float                      # requests per second
    run: TimedRun | StaticRun
    warmup: int                      # requests left out at each end, by arrival

    def request_times(self) -> list[RequestTimes]:
        """The measured requests' times, in ms, in arrival order (the slo functions read it)."""
        times = sorted(self._all_times(), key=lambda t: t.arrival)
        return times[self.warmup:len(times) - self.warmup]

    @property
    def duration_ms(self) -> float:
        """The measured requests' arrival window: at a steady state, :func:`~cblab_src.slo.goodput`
        over it is about the rate times the share of requests meeting their targets."""
        arrivals = [t.arrival for t in self.request_times()]
        return max(arrivals) - min(arrivals) if arrivals else 0.0

    def _all_times(self) -> list[RequestTimes]:
        return self.run.times if isinstance(self.run, StaticRun) else self.run.request_times()

    def summary(self) -> LatencySummary:
        """Percentiles of the measured requests (throughput over their span)."""
        return LatencySummary.of(self.request_times(), self.run.num_steps, unit="ms")

    def queue(self) -> tuple[np.ndarray, np.ndarray]:
        """``(t_ms, n)``: how many requests are waiting for their first token, after each
        arrival and each first token of the whole run (the same measure for every policy)."""
        times = self._all_times()
        events = np.array([t.arrival for t in times] + [t.token_times[0] for t in times])
        change = np.concatenate([np.ones(len(times)), -np.ones(len(times))])
        order = np.argsort(events, kind="stable")
        return events[order], np.cumsum(change[order]).astype(np.int64)


@dataclass(frozen=True)
class LoadPoint:
    """One policy at one rate: its measured latencies (ms) and throughput."""

    policy: str
    rate: float
    ttft: Distribution
    tpot: Distribution
    itl: Distribution
    e2e: Distribution
    throughput_tok_s: float          # output tokens per second over the measured requests' span
    max_queue: int                   # most requests waiting for a first token at once

    @classmethod
    def of(cls, load: LoadRun) -> "LoadPoint":
        s = load.summary()
        return cls(load.policy, load.rate, s.ttft, s.tpot, s.itl, s.e2e, s.throughput_tok_s,
                   int(load.queue()[1].max(initial=0)))


def open_loop(policy: str, rate: float, *, num_requests: int = 1000, warmup: int = 100,
              shape: WorkloadShape = SHAREGPT, cost_model: CostModel = DEFAULT_COST_MODEL,
              seed: int = 0, **knobs) -> LoadRun:
    """Serve ``num_requests`` requests arriving at ``rate`` per second (Poisson, ``seed``)
    with ``policy``. ``knobs`` are the scheduler's (:class:`~cblab_src.core.config.SchedulerConfig`);
    ``"static"`` reads only ``max_num_seqs``, as its batch size."""
    one_of("policy", policy, POLICIES)
    rate = real("rate", rate, positive=True)
    num_requests = positive_int("num_requests", num_requests)
    warmup = non_negative_int("warmup", warmup)
    if 2 * warmup >= num_requests:
        raise ValueError(f"warmup must leave requests to measure: 2 * {warmup} >= "
                         f"num_requests {num_requests}")
    workload = synthetic_workload(num_requests, shape, arrival_rate=rate, seed=seed)
    if policy == "static":                 # (the budget and chunk knobs do not apply)
        if knobs.get("max_num_seqs") is None:
            raise ValueError("static batching needs max_num_seqs, its batch size")
        run = simulate_static(workload, cost_model, batch_size=knobs["max_num_seqs"])
    else:
        run = simulate_timed(workload, cost_model, policy=policy, **knobs)
    return LoadRun(policy, rate, run, warmup)


def load_sweep(rates, policies=POLICIES, **kwargs) -> list[LoadPoint]:
    """:func:`open_loop` for every policy and rate (the same arrivals for every policy at a
    rate), summarised: one :class:`LoadPoint` each, policies in the order given."""
    return [LoadPoint.of(open_loop(p, r, **kwargs)) for p in policies for r in rates]
