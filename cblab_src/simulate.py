"""Run a workload under given knobs and keep everything the figures need.

:func:`simulate_schedule` is the pure ``simulate(params) -> result`` half of every explorer in
the book: the sliders, the static figures and the tests all call it, and
:mod:`cblab_src.viz` draws what it returns.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field

import numpy as np

from .core.kv_cache import PagedKVCache
from .core.request import Request
from .core.scheduler import Scheduler, SchedulerCounters, StepStats
from .monitoring.metrics import RequestMetrics, request_metrics
from .plugins.base import SchedulerPlugin
from .workloads import Workload


@dataclass(frozen=True)
class PoolSnapshot:
    """The paged pool at one moment: who owns each block, which slots hold a token, how many
    requests share each block, and which ownerless blocks are kept for prefix reuse."""

    owners: np.ndarray        # (num_blocks,) object: first owning request id, or None
    fill: np.ndarray          # (num_blocks, block_size) bool: slot holds a live token
    block_tables: dict        # req_id -> list of block ids
    ref_counts: np.ndarray    # (num_blocks,) int: live requests owning each block
    cached: np.ndarray        # (num_blocks,) bool: ownerless but holding a reusable prefix

    @classmethod
    def of(cls, cache: PagedKVCache) -> "PoolSnapshot":
        alloc = cache.allocator
        refs = np.asarray(alloc.ref_counts, dtype=np.int64)
        cached = np.array([refs[b] == 0 and alloc.is_cached_content(b)
                           for b in range(cache.num_blocks)], dtype=bool)
        return cls(cache.block_owners(), cache.slot_fill(),
                   {rid: list(t) for rid, t in cache.block_tables.items()}, refs, cached)

    @property
    def block_size(self) -> int:
        return self.fill.shape[1]

    @property
    def used_blocks(self) -> int:
        return int((self.ref_counts > 0).sum())

    @property
    def shared_blocks(self) -> int:
        return int((self.ref_counts > 1).sum())

    @property
    def wasted_slots(self) -> int:
        """Empty slots inside used blocks: internal fragmentation."""
        return self.used_blocks * self.block_size - int(self.fill.sum())


class _PoolRecorder(SchedulerPlugin):
    """Takes a :class:`PoolSnapshot` after every step."""

    def __init__(self) -> None:
        self.snapshots: list[PoolSnapshot] = []

    def after_step(self, scheduler, stats) -> None:
        self.snapshots.append(PoolSnapshot.of(scheduler.kv_cache))


@dataclass(frozen=True)
class ScheduleRun:
    """A finished run: its steps, its requests (finished), the knobs, optional pool snapshots."""

    history: list[StepStats]
    requests: list[Request]
    max_tokens_per_step: int
    prefill_chunk_size: int
    block_size: int
    pool: list[PoolSnapshot] | None
    counters: SchedulerCounters = field(default_factory=SchedulerCounters)

    @property
    def num_steps(self) -> int:
        return len(self.history)

    @property
    def req_ids(self) -> list[Hashable]:
        return [r.req_id for r in self.requests]

    @property
    def metrics(self) -> list[RequestMetrics]:
        return request_metrics(self.requests)

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
        """Steps, tokens/step, mean TTFT and TPOT (in steps) — what the sliders report."""
        ttft = [m.ttft for m in self.metrics if m.ttft is not None]
        tpot = [m.tpot for m in self.metrics if m.tpot is not None]
        return {
            "steps": self.num_steps,
            "tokens_per_step": round(self.tokens_per_step, 2),
            "mean_ttft": round(float(np.mean(ttft)), 2) if ttft else None,
            "mean_tpot": round(float(np.mean(tpot)), 2) if tpot else None,
        }


def simulate_schedule(workload: Workload, *, max_tokens_per_step: int, prefill_chunk_size: int,
                      kv_layout: str = "paged", block_size: int = 16,
                      num_blocks: int | None = None, enable_prefix_caching: bool = False,
                      watermark_blocks: int = 0, model=None,
                      record_pool: bool = False, max_num_seqs: int | None = None,
                      policy: str = "decode_first") -> ScheduleRun:
    """Run ``workload`` to completion and return a :class:`ScheduleRun`.

    Without a ``model`` no numbers are computed (scheduling only, every sampled token is 0).
    For greedy requests with no EOS token the schedule is then exactly the real one; sampled
    requests with prefix caching can differ, because their real generated tokens decide which
    blocks they share. Arrivals are counted in steps; a workload whose arrivals are in milliseconds runs with
    :func:`cblab_src.timing.simulate_timed`.
    """
    if workload.arrival_ms is not None:
        raise ValueError("this workload's arrivals are in milliseconds: run it with "
                         "cblab_src.timing.simulate_timed(workload, cost_model, ...)")
    sched = Scheduler(model, max_tokens_per_step=max_tokens_per_step,
                      prefill_chunk_size=prefill_chunk_size, kv_layout=kv_layout,
                      block_size=block_size, num_blocks=num_blocks,
                      enable_prefix_caching=enable_prefix_caching,
                      watermark_blocks=watermark_blocks, max_num_seqs=max_num_seqs,
                      policy=policy)
    recorder = None
    if record_pool and kv_layout == "paged":
        recorder = sched.plugins.register_scheduler_plugin(_PoolRecorder())
    requests = workload.requests()
    for r in requests:
        sched.add_request(r)
    history = sched.run()
    return ScheduleRun(history, requests, max_tokens_per_step, prefill_chunk_size, block_size,
                       recorder.snapshots if recorder else None, sched.counters)
