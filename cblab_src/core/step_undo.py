"""All or nothing: a step that fails before its commit leaves no trace.

:meth:`Scheduler.step <cblab_src.core.scheduler.Scheduler.step>` changes things before it
knows the step will succeed: arrivals join the queue, the policy admits and preempts, KV blocks
are reserved, the model writes keys and values into the cache, sampling draws from each
request's random generator. Any of it can raise — a policy, an attention plugin, a logits
processor written in chapter 8, or Ctrl-C in a notebook. Without care, the cache and the
requests would then disagree and the next step would compute wrong tokens or crash.

So the part of a step that can fail runs inside :class:`StepUndo`: on any exception
(``KeyboardInterrupt`` included) it puts back the queues, the counters, every request the
policy admitted or preempted, each sampled request's random generator, and the KV cache with
its block pool and stored keys and values (:mod:`.undo`), then lets the exception go on. The
commit that follows cannot fail (no user code runs in it), and :class:`HeldInterrupts` keeps
Ctrl-C from splitting the step: a Ctrl-C that arrives meanwhile is raised when the step ends.
"""

from __future__ import annotations

import heapq
import signal
import threading


class StepUndo:
    """Everything needed to undo the uncommitted part of one step (a context manager).

    ``arrived`` collects the arrivals' heap entries as they are taken; the step's
    :class:`~cblab_src.core.step_plan.StepPlan` logs its admissions and preemptions
    (``plan.moves``); :meth:`keep_generators` saves the random generators sampling will draw
    from. The KV cache logs its own changes from the checkpoint taken here.
    """

    def __init__(self, scheduler, interrupts: HeldInterrupts):
        self.scheduler, self.interrupts = scheduler, interrupts
        self.counters = vars(scheduler.counters).copy()
        self.arrived: list[tuple] = []          # heap entries of this step's arrivals, in order
        self.plan = None
        self.generators: list[tuple] = []       # (request, its generator, the generator's state)
        scheduler.kv_cache.checkpoint()

    def keep_generators(self, requests, logits) -> None:
        """Save the random generators that sampling ``requests`` from ``logits`` will draw
        from (none without logits: a scheduling-only run samples nothing)."""
        if logits is not None:
            self.generators = [(r, r._rng, r._rng and r._rng.bit_generator.state)
                               for r in requests if not r.sampling.greedy]

    def __enter__(self) -> "StepUndo":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.interrupts.hold()                   # keep or undo: either runs whole
        if exc_type is None:
            self.scheduler.kv_cache.drop_checkpoint()
        else:
            self.rollback()
        return False                             # the exception, if any, goes on unchanged

    def rollback(self) -> None:
        """Put the scheduler back as it was when this step began."""
        s = self.scheduler
        for move, r, progress in reversed(self.plan.moves if self.plan else ()):
            if move == "admit":                  # it went from the waiting front to running
                assert s._running.pop() is r
                s._waiting.appendleft(r)
            else:                                # preempted: from running to the waiting front
                assert s._waiting.popleft() is r
                s._running.append(r)
            r._restore_progress(progress)
        s.kv_cache.rollback()
        for r, rng, state in self.generators:
            r._rng = rng
            if rng is not None:
                rng.bit_generator.state = state
        for entry in reversed(self.arrived):     # arrivals joined the end of the waiting queue
            if entry[2].max_new_tokens > 0:
                assert s._waiting.pop() is entry[2]
            heapq.heappush(s._future, entry)
        vars(s.counters).update(self.counters)


class HeldInterrupts:
    """Ctrl-C (SIGINT) during a step waits for the step to end, then is raised (a context
    manager around one step).

    A second Ctrl-C before :meth:`hold` interrupts at once, for a policy or plugin that hangs
    (the step is then rolled back); after :meth:`hold`, every Ctrl-C waits. Only the main
    thread receives signals, so in another thread this does nothing.
    """

    def __enter__(self) -> "HeldInterrupts":
        self.received, self.holding, self.previous = 0, False, None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._receive)
        return self

    def _receive(self, signum, frame) -> None:
        self.received += 1
        if self.received > 1 and not self.holding:
            raise KeyboardInterrupt

    def hold(self) -> None:
        """From now on, hold every Ctrl-C until the end."""
        self.holding = True

    def __exit__(self, exc_type, exc, tb) -> bool:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
            if self.received and exc_type is None and callable(self.previous):
                self.previous(signal.SIGINT, None)      # Python's: raises KeyboardInterrupt
        return False
