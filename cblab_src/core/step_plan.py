"""One step being scheduled: what a policy reads, and the two moves it can make.

A :class:`~cblab_src.core.policies.Policy` fills a :class:`StepPlan` with
``plan.schedule(r, n)`` and ``plan.admit(r, cap)`` (``plan.schedule_decodes(requests)`` is
``schedule(r, 1)`` for many decodes at once). Behind those calls is the mechanism
every policy shares: KV blocks are reserved as tokens are scheduled; when a request needs a
block and none is available, the youngest running request (the last of ``running``) is
preempted — its blocks freed, its tokens given back to the budget, and it goes to the front
of the waiting queue to recompute later (as vLLM v1 does). Admission is first come, first
served, so running requests are older than waiting ones and the oldest always progresses.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from itertools import compress

from .config import SchedulerConfig
from .handoff import receive_kv
from .kv_cache import KVCache
from .prefix_match import NO_MATCH
from .request import Request, RequestState
from .step_stats import Preemption

DECODE = RequestState.DECODE


@dataclass
class SchedulerCounters:
    """Running totals over the scheduler's life."""

    preemptions: int = 0
    recomputed_tokens: int = 0        # cached tokens thrown away by preemption
    prompt_tokens: int = 0            # prompt tokens of requests admitted for the first time
    cached_prompt_tokens: int = 0     # ... of which came from the prefix cache

    @property
    def prefix_hit_rate(self) -> float:
        """Share of admitted prompt tokens whose prefill the prefix cache saved."""
        return self.cached_prompt_tokens / self.prompt_tokens if self.prompt_tokens else 0.0


@dataclass(eq=False)
class StepPlan:
    """The work of step ``step_id`` as a policy builds it.

    ``running`` (admitted, oldest first) and ``waiting`` (arrived, not admitted, front first)
    are the scheduler's own queues: the moves below change them. ``items`` lists what was
    scheduled, in batch order, one tuple per request: ``(request, start, num_tokens,
    is_decode, samples)`` — ``start`` is how many of its tokens were cached when it was
    scheduled, ``is_decode`` that it is one token after a completed prefill (not a chunk), and
    ``samples`` that its cache is complete after this step, so a token is sampled.
    (Plain tuples: a step makes one per running request.)
    """

    config: SchedulerConfig
    step_id: int
    budget: int
    running: list[Request]
    waiting: deque[Request]
    kv_cache: KVCache
    counters: SchedulerCounters
    items: list[tuple[Request, int, int, bool, bool]] = field(default_factory=list)
    preemptions: list[Preemption] = field(default_factory=list)
    cached_tokens: int = 0            # prompt tokens admitted this step from the prefix cache
    # ("admit" or "preempt", request, its progress before): how to undo the moves if the step
    # fails (see core/step_undo.py)
    moves: list[tuple[str, Request, tuple]] = field(default_factory=list)
    cache_when_scheduled: bool = False  # prefix caching offers full blocks at once (vLLM)

    def work(self) -> dict:
        """The step's work as :class:`~cblab_src.core.step_stats.StepStats` fields."""
        requests, starts, sizes, decodes, _ = zip(*self.items) if self.items else ((),) * 5
        order = tuple([r.req_id for r in requests])
        chunks = tuple((req_id, start, n) for req_id, start, n, decode
                       in zip(order, starts, sizes, decodes) if not decode)
        return dict(step_id=self.step_id, decode_ids=tuple(compress(order, decodes)),
                    prefill_chunks=chunks, num_tokens=self.num_tokens,
                    preemptions=tuple(self.preemptions), cached_tokens=self.cached_tokens,
                    # the keys a decode token attended to: the cached ones and its own
                    decode_context_lens=tuple([start + 1 for start in compress(starts, decodes)]),
                    batch_order=order)

    @property
    def num_tokens(self) -> int:
        """Tokens scheduled so far in this step."""
        return self.config.max_tokens_per_step - self.budget

    @property
    def preempted(self) -> bool:
        """Whether this step has preempted anyone (memory is short)."""
        return bool(self.preemptions)

    def schedule(self, r: Request, n: int) -> bool:
        """Give running request ``r`` ``n`` more tokens this step (``0 < n <= budget``).

        Reserves their KV slots, preempting the youngest running requests while blocks are
        short. Returns ``False`` if ``r`` itself had to be preempted (it is then waiting).
        """
        assert 0 < n <= self.budget, (r, n, self.budget)
        if not self.kv_cache.try_extend(r.req_id, n) and not self._reserve(r, n):
            return False
        decode = r.state is DECODE                       # (a decode always samples)
        self.items.append((r, r.num_computed_tokens, n, decode, decode or n == r.tokens_to_compute))
        self.budget -= n
        if self.cache_when_scheduled:
            self.kv_cache.cache_full_blocks(r.req_id, r.all_tokens)
        return True

    def schedule_decodes(self, decoding: list[Request]) -> None:
        """``schedule(r, 1)`` for each request of ``decoding`` (all in DECODE), in order,
        while the budget lasts, skipping any preempted meanwhile.

        (performance: a step may hold hundreds of decodes; when the pool has a block for every
        one that needs it, nobody can be preempted, so they are scheduled in one pass.)
        """
        batch = decoding[:self.budget]
        if not self.cache_when_scheduled and self.kv_cache.try_extend_decodes(
                [r.req_id for r in batch]):
            self.items += [(r, r.num_computed_tokens, 1, True, True) for r in batch]
            self.budget -= len(batch)
            return
        for r in decoding:                  # one at a time, preempting as schedule() does
            if self.budget == 0:
                return
            if r.state is DECODE:           # (a request preempted meanwhile is WAITING)
                self.schedule(r, 1)

    def admit(self, r: Request, cap: int, *, reserve_all: bool = False) -> bool:
        """Start ``r``, the head of the waiting queue, and schedule its first chunk:
        ``min(cap, its tokens not in the prefix cache, budget)`` tokens.

        It is admitted only if that chunk's blocks are available — or, with ``reserve_all``,
        blocks for all its tokens (vLLM's ``scheduler_reserve_full_isl``) — keeping
        ``watermark_blocks`` free while others run. Returns ``False``, changing nothing, if not.
        """
        assert self.waiting and r is self.waiting[0]
        tokens, received = r.all_tokens, r._kv_handoff      # (K/V sent by a prefill instance)
        match = NO_MATCH if received else self.kv_cache.match_prefix(tokens)   # matched once
        cached = received.num_tokens if received else match.num_tokens
        n = min(cap, len(tokens) - cached, self.budget)
        need = len(tokens) if reserve_all else cached + n
        keep_free = self.config.watermark_blocks if self.running else 0
        if not self.kv_cache.can_admit(match, need, keep_free):
            return False
        self.moves.append(("admit", r, r._progress()))         # (to undo what follows)
        self.running.append(self.waiting.popleft())
        hit = self.kv_cache.admit(r.req_id, match)
        if r.admitted_step is None:
            self.counters.prompt_tokens += r.prompt_len
            self.counters.cached_prompt_tokens += hit
        if received:
            receive_kv(self.kv_cache, r.req_id, received)
        r.admit(cached, self.step_id)
        self.cached_tokens += hit
        return self.schedule(r, n)                          # its blocks were checked above

    def _reserve(self, r: Request, n: int) -> bool:
        cache = self.kv_cache
        while not cache.can_extend(r.req_id, n):
            victim = self.running[-1]                       # the youngest running request
            self.preemptions.append(Preemption(
                victim.req_id, r.req_id, cache.blocks_to_extend(r.req_id, n),
                cache.num_available_blocks, victim.num_computed_tokens))
            self._preempt(victim)
            if victim is r:
                return False
        cache.extend(r.req_id, n)
        return True

    def _preempt(self, victim: Request) -> None:
        """Free the victim's KV, give back the tokens it was given this step, requeue it."""
        self.kv_cache.free(victim.req_id)
        for i, (r, _, n, _, _) in enumerate(self.items):
            if r is victim:
                del self.items[i]
                self.budget += n
                break
        self.moves.append(("preempt", victim, victim._progress()))     # (to undo what follows)
        self.running.pop()
        self.waiting.appendleft(victim)                     # older than every waiting request
        self.counters.preemptions += 1
        self.counters.recomputed_tokens += victim.preempt(self.step_id)
        assert victim.state is RequestState.WAITING
