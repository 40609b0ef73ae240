"""Serving on several GPUs: colocated replicas, or prefill and decode on different GPUs.

Two ways to spend ``G`` GPUs on one model (each GPU one scheduler over its own KV pool, each
step costed by a cost model on that GPU's own clock):

* **colocated** — ``G`` replicas, each doing prefill and decode (decode-first with chunked
  prefill, Sarathi-Serve's answer to their interference); a request goes to the replica with
  the fewest requests in hand;
* **disaggregated** (DistServe, Splitwise) — ``P`` prefill GPUs and ``D = G - P`` decode GPUs.
  A prefill GPU runs a request's prompt and samples its first token; the prompt's KV cache then
  crosses the ``link`` (its size over the link's bandwidth, plus a latency) to the decode GPU
  with the fewest requests, which produces the rest (:mod:`cblab_src.core.handoff`: the texts
  are those of one scheduler). No long prefill ever stalls a decode, at the price of the
  transfer, of GPUs that only prefill, and of two pools that must each fit their load.

:func:`simulate_cluster` runs either, as a discrete-event simulation: at every moment the
earliest of the next arrival, the next finished transfer and the next step of any GPU happens
first. The result has the usual :class:`~cblab_src.monitoring.metrics.RequestTimes` in ms, so
:func:`~cblab_src.slo.goodput` and friends read it; divide by ``num_gpus`` for goodput per GPU.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import numpy as np

from ._gc import cycle_collector_paused
from ._validate import positive_int, real
from .core.config import SchedulerConfig
from .core.handoff import continuation
from .core.request import Request
from .core.scheduler import Scheduler
from .costmodel import DEFAULT_COST_MODEL, LLAMA3_8B, CostModel, ModelShape, StepComposition
from .monitoring.metrics import RequestTimes
from .workloads import Workload

__all__ = ["Link", "NVLINK", "PCIE5", "ETHERNET_100G", "ClusterRun", "simulate_cluster"]


@dataclass(frozen=True)
class Link:
    """Between a prefill GPU and a decode GPU: bandwidth per direction and a fixed latency."""

    name: str
    gbytes_per_s: float
    latency_us: float

    def transfer_ms(self, nbytes: float) -> float:
        return self.latency_us / 1e3 + nbytes / (self.gbytes_per_s * 1e9) * 1e3


# Datasheet figures: NVLink 4 (H100/H200) 900 GB/s both ways; PCIe 5.0 x16 64 GB/s per
# direction; 100 Gb/s Ethernet (RDMA) 12.5 GB/s. Latencies are round numbers of that order.
NVLINK = Link("NVLink 4", 450.0, 5.0)
PCIE5 = Link("PCIe 5.0 x16", 64.0, 10.0)
ETHERNET_100G = Link("100 Gb/s Ethernet", 12.5, 20.0)


@dataclass
class _GPU:
    role: str                       # "both", "prefill" or "decode"
    sched: Scheduler
    clock: float = 0.0              # when its next step may start (ms)
    step_end: list[float] = field(default_factory=list)   # end of each of its steps (ms)

    @property
    def load(self) -> int:
        return len(self.sched.active)


@dataclass(frozen=True)
class ClusterRun:
    """A finished multi-GPU run: every request's times (first token from the GPU that
    prefilled it, the others from the GPU that decoded it)."""

    times: list[RequestTimes]
    num_gpus: int
    num_prefill: int                # 0 for colocated replicas
    transferred_bytes: int
    transfer_ms_total: float


def simulate_cluster(workload: Workload, cost_model: CostModel = DEFAULT_COST_MODEL, *,
                     num_gpus: int, num_prefill: int = 0, link: Link = NVLINK,
                     model_shape: ModelShape = LLAMA3_8B,
                     config: SchedulerConfig | None = None, **knobs) -> ClusterRun:
    """Serve ``workload`` (arrivals in ms) on ``num_gpus`` GPUs: colocated replicas with
    ``num_prefill=0``, else ``num_prefill`` prefill GPUs and the rest decoding. Every GPU runs
    the scheduler ``config``/``knobs``, scheduling only (lengths decide the times); a hand-off
    moves ``prompt tokens x model_shape.kv_bytes_per_token`` bytes over ``link``."""
    num_gpus = positive_int("num_gpus", num_gpus)
    if not 0 <= num_prefill < num_gpus or isinstance(num_prefill, bool):
        raise ValueError(f"num_prefill must be in [0, num_gpus={num_gpus}), got {num_prefill!r}")
    if not isinstance(link, Link):
        raise TypeError(f"link must be a Link, got {link!r}")
    real("link.gbytes_per_s", link.gbytes_per_s, positive=True)
    config = SchedulerConfig.of(config, **knobs)
    roles = ["both"] * num_gpus if not num_prefill else (
        ["prefill"] * num_prefill + ["decode"] * (num_gpus - num_prefill))
    gpus = [_GPU(role, Scheduler(None, config.replace(kv_hand_off=role == "prefill")))
            for role in roles]
    arrivals = workload.arrivals_in_ms("serve it with arrivals in ms (arrival_ms)")
    specs = {s.req_id: s for s in workload.specs}
    events = [(float(t), 0, i, "arrive", None) for i, t in enumerate(arrivals)]  # a heap
    heapq.heapify(events)
    seq, first_token, where, moved = len(events), {}, {}, [0, 0.0]

    def place(gpu: _GPU, request, at: float, kv=None) -> None:
        if not gpu.sched.has_unfinished:
            gpu.clock = max(gpu.clock, at)            # an idle GPU starts when work arrives
        request.arrival_step = gpu.sched.step_count
        gpu.sched.add_request(request, kv=kv)
        where[request.req_id] = gpu

    def pick(role: str) -> _GPU:
        return min((g for g in gpus if g.role in (role, "both")), key=lambda g: g.load)

    with cycle_collector_paused():              # (performance: see cblab_src/_gc.py)
        while events or any(g.sched.has_unfinished for g in gpus):
            busy = [g for g in gpus if g.sched.has_unfinished]
            gpu = min(busy, key=lambda g: g.clock, default=None)
            if events and (gpu is None or events[0][0] <= gpu.clock):
                at, _, i, kind, payload = heapq.heappop(events)
                if kind == "arrive":
                    spec = workload.specs[i]
                    first = pick("prefill")
                    n = min(1, spec.max_new_tokens) if first.role == "prefill" else spec.max_new_tokens
                    place(first, Request(spec.req_id, spec.prompt, n, sampling=spec.sampling), at)
                else:                                       # a hand-off has crossed the link
                    prefilled, kv = payload
                    place(pick("decode"), continuation(prefilled, specs[prefilled.req_id]
                                                       .max_new_tokens), at, kv)
                continue
            stats = gpu.sched.step()
            gpu.clock += cost_model.step_ms(StepComposition.of(stats))
            gpu.step_end.append(gpu.clock)
            for rid in stats.finished_ids:
                if gpu.role != "prefill" or not specs[rid].max_new_tokens:
                    continue
                first_token[rid] = gpu.clock
                kv = gpu.sched.hand_off(rid)                # the prefill pool gets its blocks back
                if specs[rid].max_new_tokens == 1:
                    continue                                # done: nothing to send
                nbytes = kv.num_tokens * model_shape.kv_bytes_per_token
                delay = link.transfer_ms(nbytes)
                moved[0] += nbytes
                moved[1] += delay
                heapq.heappush(events, (gpu.clock + delay, seq, -1, "handoff",
                                        (gpu.sched.requests[rid], kv)))
                seq += 1
    times = [_times(spec, float(arrivals[i]), where[spec.req_id], first_token.get(spec.req_id))
             for i, spec in enumerate(workload.specs)]
    return ClusterRun(times, num_gpus, num_prefill, moved[0], moved[1])


def _times(spec, arrival: float, gpu: _GPU, first_token: float | None) -> RequestTimes:
    """A request's times: its tokens' steps on the GPU that finished it, in ms, and the first
    token from the prefill GPU when it was handed off."""
    r = gpu.sched.requests[spec.req_id]
    ends = np.asarray(gpu.step_end)
    tokens = [float(ends[s]) for s in r.token_steps]
    if first_token is not None and gpu.role == "decode":
        tokens = [first_token] + tokens
    finish = tokens[-1] if tokens else float(ends[r.finish_step])
    return RequestTimes(spec.req_id, len(spec.prompt), arrival, tuple(tokens), finish, "ms")
