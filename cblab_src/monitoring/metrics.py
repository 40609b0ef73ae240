"""Throughput and latency, from the steps and requests a scheduler produces.

Latencies are in *steps* (step ``s`` spans the time ``[s, s + 1)``):

* TTFT (time to first token) = ``first_token_step + 1 - arrival_step``
* TPOT (time per output token, after the first) = ``(finish_step - first_token_step) / (N - 1)``
* ITL (inter-token latencies) = gaps between the steps that produced consecutive tokens
* end-to-end latency = ``finish_step + 1 - arrival_step``

The same definitions hold on any clock, and this is the one place that states them. A
:class:`RequestTimes` holds a request's arrival, the time each of its tokens was ready (the end
of the step that sampled it) and the time its reply was complete, in one ``unit``: ``"step"``,
where step ``s`` ends at time ``s + 1`` (which gives the formulas above), or ``"ms"``, where
step ``s`` ends when a cost model says (:mod:`cblab_src.timing`). Then TTFT = first token -
arrival, ITL = the gaps between tokens, TPOT = their mean, end-to-end = reply - arrival, all in
that unit; :class:`LatencySummary` reduces any run's records to means, percentiles and
throughput, whichever the unit.

Wall-clock throughput (``tokens_per_second``) measures this numpy engine on this machine, so it
changes from run to run; everything else is exact.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np

UNITS = ("step", "ms")


@dataclass(frozen=True)
class RequestTimes:
    """When one finished request arrived, got each token and got its whole reply, in ``unit``.

    ``RequestTimes("a", 5, 0, (3, 4, 5), 5, unit="step")``: arrived at step 0, tokens sampled in
    steps 2, 3 and 4, so TTFT 3, ITL (1, 1), TPOT 1.0, end-to-end 5 steps.
    """

    req_id: Hashable
    prompt_len: int
    arrival: float
    token_times: tuple[float, ...]   # when each output token was ready (its step's end)
    finish: float                    # when the reply was complete: the last token, or later
    unit: str = "ms"                 # "step" (times are ints) or "ms"

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise ValueError(f"unit must be one of {UNITS}, got {self.unit!r}")

    @classmethod
    def from_request(cls, req, step_end: np.ndarray | None = None,
                     arrival: float | None = None) -> "RequestTimes":
        """The times of ``req``, which must have finished. By default on the step clock (it
        arrives when step ``req.arrival_step`` starts; step ``s`` ends at ``s + 1``); given
        ``step_end`` (``(S,)``, when each step of the run ends, in ms) and its ``arrival`` in
        ms, on the millisecond clock."""
        if req.finish_step is None:
            raise ValueError(f"request {req.req_id!r} has not finished")
        if step_end is None:
            return cls(req.req_id, req.prompt_len, req.arrival_step,
                       tuple(s + 1 for s in req.token_steps), req.finish_step + 1, "step")
        return cls(req.req_id, req.prompt_len, float(arrival),
                   tuple(step_end[req.token_steps].tolist()) if req.token_steps else (),
                   float(step_end[req.finish_step]), "ms")

    @property
    def num_generated(self) -> int:
        return len(self.token_times)

    @property
    def ttft(self) -> float | None:
        """Time to first token (None when the request produced no token)."""
        return self.token_times[0] - self.arrival if self.token_times else None

    @property
    def itl(self) -> tuple[float, ...]:
        """Inter-token latencies: the ``N - 1`` gaps between consecutive tokens."""
        t = self.token_times
        return tuple(b - a for a, b in zip(t, t[1:]))

    @property
    def tpot(self) -> float | None:
        """Time per output token after the first, the mean ITL (None with fewer than two)."""
        n = len(self.token_times)
        return (self.token_times[-1] - self.token_times[0]) / (n - 1) if n > 1 else None

    @property
    def e2e(self) -> float:
        """End-to-end latency: arrival to the complete reply."""
        return self.finish - self.arrival


def request_times(requests) -> list[RequestTimes]:
    """Step-clock times of every finished request in ``requests``, in the given order."""
    return [RequestTimes.from_request(r) for r in requests if r.finish_step is not None]


@dataclass(frozen=True)
class Distribution:
    """Mean, percentiles and maximum of one latency over a run (NaN where there are no values)."""

    count: int
    mean: float
    p50: float
    p90: float
    p99: float
    max: float

    @classmethod
    def of(cls, values) -> "Distribution":
        x = np.asarray(values, dtype=np.float64)
        if not x.size:
            return cls(0, *[math.nan] * 5)
        p50, p90, p99 = np.percentile(x, (50, 90, 99)).tolist()
        return cls(int(x.size), float(np.mean(x)), p50, p90, p99, float(x.max()))


@dataclass(frozen=True)
class LatencySummary:
    """A run's latencies (in the unit of its :class:`RequestTimes`) and throughput."""

    unit: str
    num_requests: int
    num_steps: int
    makespan: float                 # first arrival to last reply
    prompt_tokens: int
    output_tokens: int
    ttft: Distribution
    tpot: Distribution              # one value per request with two tokens or more
    itl: Distribution               # every gap of every request
    e2e: Distribution

    @classmethod
    def of(cls, times: Sequence[RequestTimes], num_steps: int,
           unit: str | None = None) -> "LatencySummary":
        """Summarise ``times``, all in one unit (``unit``, if given, must be it; with no
        records it is the unit, by default "ms")."""
        units = {t.unit for t in times} | ({unit} if unit else set())
        if len(units) > 1:
            raise ValueError(f"times must all be in one unit, got {sorted(units)}")
        unit = units.pop() if units else "ms"
        start = min((t.arrival for t in times), default=0.0)
        end = max((t.finish for t in times), default=0.0)
        ttft = [t.ttft for t in times]
        tpot = [t.tpot for t in times]
        # Every t.itl, as arrays (performance: one np.diff per request, not a Python loop).
        itl = [np.diff(t.token_times) for t in times if len(t.token_times) > 1]
        return cls(unit, len(times), num_steps, end - start,
                   sum(t.prompt_len for t in times), sum(t.num_generated for t in times),
                   Distribution.of([x for x in ttft if x is not None]),
                   Distribution.of([x for x in tpot if x is not None]),
                   Distribution.of(np.concatenate(itl) if itl else ()),
                   Distribution.of([t.e2e for t in times]))

    @property
    def throughput(self) -> float:
        """Output tokens per unit of time (per step, or per ms)."""
        return self.output_tokens / self.makespan if self.makespan > 0 else math.nan

    # Rates per second: "ms" clock only.
    def _ms(self, value):
        if self.unit != "ms":
            raise ValueError(f"this summary is in {self.unit}s, not ms")
        return value

    @property
    def _per_s(self) -> float:
        return self._ms(1000.0 / self.makespan if self.makespan > 0 else math.nan)

    throughput_tok_s = property(lambda self: self.output_tokens * self._per_s,
                                doc="Output tokens per second.")
    total_tok_s = property(lambda self: (self.prompt_tokens + self.output_tokens) * self._per_s,
                           doc="Prompt and output tokens per second (as Anyscale counted).")
    requests_per_s = property(lambda self: self.num_requests * self._per_s)


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
        self.requests: list[RequestTimes] = []
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

    def record_request(self, request) -> RequestTimes:
        """Record a finished request's times, in steps."""
        times = RequestTimes.from_request(request)
        self.requests.append(times)
        return times

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

    def summary(self) -> LatencySummary:
        """The recorded requests' :class:`LatencySummary`, in steps."""
        return LatencySummary.of(self.requests, len(self.steps), unit="step")

    def get_request_summary(self) -> dict:
        """Means and 90th percentiles of TTFT, TPOT and end-to-end latency, in steps."""
        s = self.summary()

        def stats(d: Distribution) -> dict:
            return {"mean": d.mean, "p90": d.p90} if d.count else {"mean": None, "p90": None}

        return {"requests": s.num_requests, "output_tokens": s.output_tokens,
                "ttft": stats(s.ttft), "tpot": stats(s.tpot), "e2e": stats(s.e2e)}
