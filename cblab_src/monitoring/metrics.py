"""Throughput and latency, from the steps and requests a scheduler produces.

Latencies are in *steps* (step ``s`` spans the time ``[s, s + 1)``):

* TTFT (time to first token) = ``first_token_step + 1 - arrival_step``
* TPOT (time per output token, after the first) = ``(finish_step - first_token_step) / (N - 1)``
* ITL (inter-token latencies) = gaps between the steps that produced consecutive tokens
* end-to-end latency = ``finish_step + 1 - arrival_step``

Wall-clock throughput (``tokens_per_second``) measures this numpy engine on this machine, so it
changes from run to run; everything else is exact.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RequestMetrics:
    """Latency figures of one finished request, in steps."""

    req_id: Hashable
    prompt_len: int
    num_generated: int
    ttft: int | None          # None when the request produced no token
    tpot: float | None        # None with fewer than two tokens
    itl: tuple[int, ...]      # steps between consecutive tokens
    e2e: int

    @classmethod
    def from_request(cls, req) -> "RequestMetrics":
        if req.finish_step is None:
            raise ValueError(f"request {req.req_id!r} has not finished")
        n = req.num_generated
        ttft = None if n == 0 else req.first_token_step + 1 - req.arrival_step
        tpot = (req.finish_step - req.first_token_step) / (n - 1) if n > 1 else None
        itl = tuple(int(d) for d in np.diff(req.token_steps))
        return cls(req.req_id, req.prompt_len, n, ttft, tpot, itl,
                   req.finish_step + 1 - req.arrival_step)


@dataclass(frozen=True)
class StepRecord:
    """What the collector keeps of one step."""

    step_id: int
    num_tokens: int
    num_decode_tokens: int
    num_prefill_tokens: int
    num_finished: int
    wall_time: float          # clock() when the step was recorded


class MetricsCollector:
    """Accumulates step and request figures; ``record_step(**stats)`` accepts a ``StepStats``.

    ``clock`` is any function returning seconds (``time.perf_counter`` by default); pass a fake
    clock to make ``tokens_per_second`` deterministic in a test.
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter):
        self.clock = clock
        self.steps: list[StepRecord] = []
        self.requests: list[RequestMetrics] = []
        self._start = clock()

    def reset(self) -> None:
        """Forget everything recorded and restart the wall clock."""
        self.steps.clear()
        self.requests.clear()
        self._start = self.clock()

    def record_step(self, *, step_id: int, num_tokens: int, decode_ids, prefill_chunks,
                    finished_ids, **_other) -> StepRecord:
        """Record one step from the fields of a ``StepStats`` (extra fields are ignored)."""
        record = StepRecord(step_id, num_tokens, len(decode_ids),
                            sum(length for _, _, length in prefill_chunks),
                            len(finished_ids), self.clock())
        self.steps.append(record)
        return record

    def record_request(self, request) -> RequestMetrics:
        """Record a finished request's latencies."""
        metrics = RequestMetrics.from_request(request)
        self.requests.append(metrics)
        return metrics

    def get_step_summary(self) -> dict:
        """Totals over the recorded steps: tokens, tokens per step, and wall-clock tokens/s."""
        total = sum(s.num_tokens for s in self.steps)
        n = len(self.steps)
        elapsed = (self.steps[-1].wall_time - self._start) if self.steps else 0.0
        return {
            "steps": n,
            "total_tokens": total,
            "decode_tokens": sum(s.num_decode_tokens for s in self.steps),
            "prefill_tokens": sum(s.num_prefill_tokens for s in self.steps),
            "tokens_per_step": total / n if n else 0.0,
            "wall_seconds": elapsed,
            "tokens_per_second": total / elapsed if elapsed > 0 else 0.0,
        }

    def get_request_summary(self) -> dict:
        """Means and 90th percentiles of TTFT, TPOT and end-to-end latency, in steps."""
        def stats(values):
            values = [v for v in values if v is not None]
            if not values:
                return {"mean": None, "p90": None}
            return {"mean": float(np.mean(values)), "p90": float(np.percentile(values, 90))}

        return {
            "requests": len(self.requests),
            "output_tokens": sum(r.num_generated for r in self.requests),
            "ttft": stats(r.ttft for r in self.requests),
            "tpot": stats(r.tpot for r in self.requests),
            "e2e": stats(r.e2e for r in self.requests),
        }


def request_metrics(requests) -> list[RequestMetrics]:
    """Metrics of every finished request in ``requests``, in the given order."""
    return [RequestMetrics.from_request(r) for r in requests if r.finish_step is not None]
