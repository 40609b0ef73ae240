"""A scheduler's three queues of requests, and the views a reader gets of them.

* ``_future`` — added, not yet arrived: a heap by arrival step (ties in the order added);
* ``_waiting`` — arrived, holding no KV cache, oldest first (a preempted request goes back to
  its front, being older than every other waiting one);
* ``_running`` — admitted, prefilling or decoding, oldest first.

Running requests are always older than waiting ones. ``add_request`` checks a request and puts
it on the heap; arrivals move from the heap to the end of the waiting queue at the start of each
step; the policy moves requests from waiting to running and back
(:mod:`~cblab_src.core.step_plan`).
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque

from .handoff import KVHandoff
from .request import Request, RequestState


class RequestQueues:
    """The queues (see the module docstring) and adding a request to them. The scheduler that
    inherits this provides ``step_count`` (the current step), ``requests``, ``model``,
    ``kv_cache`` and ``plugins``."""

    step_count: int

    def __init__(self):
        self._running: list[Request] = []
        self._waiting: deque[Request] = deque()
        self._future: list[tuple[int, int, Request]] = []   # (arrival_step, seq, request)
        self._seq = itertools.count()                      # tie-break for equal arrival steps

    @property
    def active(self) -> list[Request]:
        """Every added request not yet finished, in arrival order."""
        return self._running + list(self._waiting) + [r for _, _, r in sorted(self._future)]

    @property
    def waiting(self) -> list[Request]:
        """Requests that have arrived (by the current step) but hold no KV cache."""
        return self.waiting_after(self.step_count)

    @property
    def running(self) -> list[Request]:
        """Admitted requests, prefilling or decoding, oldest first."""
        return list(self._running)

    @property
    def has_unfinished(self) -> bool:
        return bool(self._running or self._waiting or self._future)

    def waiting_after(self, step_id: int) -> list[Request]:
        """Requests arrived by ``step_id`` and waiting."""
        arrived = []
        if self._future and self._future[0][0] <= step_id:     # the heap's top arrives first
            arrived = [r for a, _, r in sorted(self._future) if a <= step_id]
        return list(self._waiting) + arrived

    # ------------------------------------------------------------------ adding work
    def add_request(self, req: Request, kv: KVHandoff | None = None) -> Request:
        """Queue a new request, arriving at ``req.arrival_step`` (``None``: this step). All
        checks happen before anything changes: a rejected request leaves everything as it was.

        ``kv``: the keys and values of ``req``'s leading tokens, prefilled by another scheduler
        (:mod:`~cblab_src.core.handoff`); admitting ``req`` receives them instead of computing
        them, and it samples from the same random stream."""
        self._validate(req, kv)
        given_arrival = req.arrival_step
        if req.arrival_step is None:
            req._arrival_step = self.step_count     # (it is fixed once added: set it directly)
        self.requests[req.req_id], req._owner = req, self
        if kv is not None:
            req._kv_handoff = kv
            if kv.rng_state is not None:
                req._rng = req.sampling.make_rng()
                req._rng.bit_generator.state = kv.rng_state
        self._push_future(req)
        try:
            self.plugins.dispatch("on_request_added", self, req)
        except BaseException:                       # a failing hook: as if never added
            del self.requests[req.req_id]
            self._future = [entry for entry in self._future if entry[2] is not req]
            heapq.heapify(self._future)
            req._arrival_step, req._owner = given_arrival, None
            req._kv_handoff = req._rng = None
            raise
        return req

    def _validate(self, req: Request, kv: KVHandoff | None) -> None:
        if not isinstance(req, Request):
            raise TypeError(f"req must be a Request, got {req!r}")
        if req.req_id in self.requests:
            raise ValueError(f"req_id {req.req_id!r} was already added")
        if req._owner is not None:
            raise ValueError(f"request {req.req_id!r} belongs to another scheduler: a request "
                             f"runs in one scheduler only (make a new Request)")
        if req.state is not RequestState.WAITING or req.num_computed_tokens or req.generated:
            raise ValueError(f"req {req.req_id!r} has already run (state {req.state.name})")
        self.model.check_request(req)
        cache = self.kv_cache
        if cache.is_bounded and cache.blocks_for(req.max_kv_tokens) > cache.num_blocks:
            raise ValueError(f"request {req.req_id!r} can never fit: it needs "
                             f"{cache.blocks_for(req.max_kv_tokens)} blocks (prompt "
                             f"{req.prompt_len} + max_new_tokens {req.max_new_tokens} - 1 "
                             f"tokens) but num_blocks is {cache.num_blocks}")
        if kv is not None and not (isinstance(kv, KVHandoff) and kv.req_id == req.req_id
                                   and kv.num_tokens < len(req.prompt)):
            raise ValueError(f"kv must be the KVHandoff of request {req.req_id!r}, covering less "
                             f"than its prompt of {len(req.prompt)} tokens, got {kv!r}")
        if kv is not None and cache.has_storage and (
                kv.layers is None or len(kv.layers) != cache.n_layers
                or kv.layers[0][0].shape != (kv.num_tokens, cache.n_heads, cache.head_dim)):
            raise ValueError(f"kv of request {req.req_id!r} must carry keys and values shaped "
                             f"for this cache's {cache.n_layers} layers (a scheduling-only "
                             f"prefill sends none)")
        if req.arrival_step is not None and req.arrival_step < self.step_count:
            raise ValueError(f"arrival_step {req.arrival_step} is in the past: the scheduler is "
                             f"at step {self.step_count} (leave arrival_step=None for 'now')")

    def _push_future(self, req: Request) -> None:
        heapq.heappush(self._future, (req.arrival_step, next(self._seq), req))

    def _take_arrivals(self, arrived: list) -> list[Request]:
        """Move requests arriving by this step to the waiting queue (their heap entries to
        ``arrived``); return those that ask for no token at all (they finish in this step
        without running)."""
        zero_output = []
        while self._future and self._future[0][0] <= self.step_count:
            arrived.append(heapq.heappop(self._future))
            r = arrived[-1][2]
            (self._waiting if r.max_new_tokens > 0 else zero_output).append(r)
        return zero_output

    def _steps_until_arrival(self) -> int:
        """Steps from now in which nothing can run: nothing runs or waits and the next request
        arrives later (0 otherwise)."""
        if self._running or self._waiting or not self._future:
            return 0
        return max(0, self._future[0][0] - self.step_count)
