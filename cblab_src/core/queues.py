"""A scheduler's three queues of requests, and the views a reader gets of them.

* ``_future`` — added, not yet arrived: a heap by arrival step (ties in the order added);
* ``_waiting`` — arrived, holding no KV cache, oldest first (a preempted request goes back to
  its front, being older than every other waiting one);
* ``_running`` — admitted, prefilling or decoding, oldest first.

Running requests are always older than waiting ones. The policy moves requests from waiting to
running and back (:mod:`~cblab_src.core.step_plan`); arrivals move from the heap to the end of
the waiting queue at the start of each step.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque

from .request import Request


class RequestQueues:
    """The queues (see the module docstring); ``step_count`` is the current step."""

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
