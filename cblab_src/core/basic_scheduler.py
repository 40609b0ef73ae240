"""A basic continuous-batching scheduler, to read first: one file, no options.

A fixed pool of paged KV blocks, first come first served, decode-first, chunked prefill, and
preemption of the youngest running request when blocks run out. That is all:
:class:`~cblab_src.core.scheduler.Scheduler` is the same engine with the rest — other
policies (:mod:`cblab_src.core.policies`), a growing pool, a dense layout, prefix caching, a
watermark, ``max_num_seqs``, plugins, a scheduling-only mode. Given the same knobs, both give
exactly the same steps (tests/test_basic_scheduler.py checks it).
"""

from __future__ import annotations

import bisect

from .._validate import positive_int
from .batch_builder import build_batch
from .paged_kv_cache import PagedKVCache
from .request import FinishReason, Request, RequestState
from .step_plan import SchedulerCounters
from .step_stats import Preemption, StepStats


class BasicScheduler:
    """``BasicScheduler(TinyLLM(), max_tokens_per_step=8, prefill_chunk_size=4)``."""

    def __init__(self, model, *, max_tokens_per_step: int, prefill_chunk_size: int,
                 block_size: int = 16, num_blocks: int = 64):
        self.model = model
        self.max_tokens_per_step = positive_int("max_tokens_per_step", max_tokens_per_step)
        self.prefill_chunk_size = positive_int("prefill_chunk_size", prefill_chunk_size)
        self.kv_cache = PagedKVCache(positive_int("block_size", block_size),
                                     positive_int("num_blocks", num_blocks), model.n_layers,
                                     model.n_heads, model.head_dim, model.dtype)
        self.counters = SchedulerCounters()
        self.step_count = 0
        self.requests: dict = {}          # every request added, by id
        self.queue: list[Request] = []    # not admitted (arrived or not), in arrival order
        self.running: list[Request] = []  # admitted, oldest first
        self.finished: list[Request] = []

    def add_request(self, r: Request) -> Request:
        """Queue ``r`` in arrival order (``arrival_step=None``: it arrives now)."""
        if self.kv_cache.blocks_for(r.max_kv_tokens) > self.kv_cache.num_blocks:
            raise ValueError(f"request {r.req_id!r} can never fit in {self.kv_cache.num_blocks} blocks")
        if r.arrival_step is None:
            r.arrival_step = self.step_count
        self.model.check_request(r)
        self.requests[r.req_id] = r
        bisect.insort(self.queue, r, key=lambda q: q.arrival_step)   # after equal arrivals
        return r

    @property
    def waiting(self) -> list[Request]:
        """Requests that have arrived and are not admitted."""
        return [r for r in self.queue if r.arrival_step <= self.step_count]

    @property
    def active(self) -> list[Request]:
        return self.running + self.queue

    @property
    def has_unfinished(self) -> bool:
        return bool(self.running or self.queue)

    def run(self) -> list[StepStats]:
        """Step until every added request has finished."""
        history = []
        while self.has_unfinished:
            history.append(self.step())
        return history

    def step(self) -> StepStats:
        """Schedule, run the model once over every scheduled token, sample, finish."""
        self.budget, self.work, self.preemptions = self.max_tokens_per_step, [], []
        finished = [r for r in self.waiting if r.max_new_tokens == 0]  # they ask for nothing
        # 1. Decodes first: one token each, oldest first.
        for r in list(self.running):
            if self.budget and r.state is RequestState.DECODE:
                self.schedule(r, 1)
        # 2. Then one chunk for each prompt being prefilled, oldest first.
        for r in list(self.running):
            if self.budget and r.state is RequestState.PREFILL:
                self.schedule(r, min(self.prefill_chunk_size, r.tokens_to_compute, self.budget))
        # 3. Then admit arrived requests, first come first served, unless memory is short.
        for r in self.waiting:
            if r.max_new_tokens == 0:
                continue
            n = min(self.prefill_chunk_size, r.tokens_to_compute, self.budget)
            if (self.preemptions or not self.budget or
                    self.kv_cache.blocks_for(n) > self.kv_cache.num_available_blocks):
                break                     # nobody overtakes the request that did not fit
            self.queue.remove(r)
            self.running.append(r)
            self.kv_cache.admit(r.req_id)
            r.admit(0, self.step_count)
            self.schedule(r, n)
        # 4. One forward pass over the ragged batch; sample where a request's cache is complete.
        samplers = [r for r, _, n, _ in self.work if n == r.tokens_to_compute]
        if self.work:
            logits = self.model.forward_step(build_batch(
                [(r.req_id, r.all_tokens[start:start + n], start, n == r.tokens_to_compute)
                 for r, start, n, _ in self.work]), self.kv_cache)
            for r, _, n, _ in self.work:
                r.mark_computed(n)
            for r, row in zip(samplers, logits):
                r.append_token(r.sample(row), self.step_count)     # it is now in DECODE
        finished += [r for r in samplers if r.is_done]
        for r in finished:
            self.finish(r)
        stats = self.stats(finished, samplers)
        self.step_count += 1
        return stats

    def schedule(self, r: Request, n: int) -> bool:
        """Reserve ``n`` tokens of KV for ``r``, preempting the youngest while blocks are short;
        False if ``r`` itself was preempted."""
        while not self.kv_cache.can_extend(r.req_id, n):
            victim = self.running.pop()               # the youngest running request
            self.preemptions.append(Preemption(
                victim.req_id, r.req_id, self.kv_cache.blocks_to_extend(r.req_id, n),
                self.kv_cache.num_available_blocks, victim.num_computed_tokens))
            self.kv_cache.free(victim.req_id)
            for item in [w for w in self.work if w[0] is victim]:   # give its tokens back
                self.work.remove(item)
                self.budget += item[2]
            self.counters.preemptions += 1
            self.counters.recomputed_tokens += victim.preempt(self.step_count)
            self.queue.insert(0, victim)              # older than every queued request
            if victim is r:
                return False
        self.kv_cache.extend(r.req_id, n)
        self.work.append((r, r.num_computed_tokens, n, r.state is RequestState.DECODE))
        self.budget -= n
        return True

    def finish(self, r: Request) -> None:
        """Return the request's KV blocks at once and record why it stopped."""
        (self.running if r.state is not RequestState.WAITING else self.queue).remove(r)
        if r.req_id in self.kv_cache:
            self.kv_cache.free(r.req_id)
        eos = r.sampling.eos_token_id
        stopped = eos is not None and r.generated[-1:] == [eos]
        r.finish_reason = FinishReason.STOP if stopped else FinishReason.LENGTH
        r.state, r.finish_step = RequestState.FINISHED, self.step_count
        self.finished.append(r)

    def stats(self, finished: list[Request], samplers: list[Request]) -> StepStats:
        """What this step did (the same record as the full scheduler's)."""
        decodes = [(r, start) for r, start, _, decode in self.work if decode]
        return StepStats(
            step_id=self.step_count,
            decode_ids=tuple(r.req_id for r, _ in decodes),
            prefill_chunks=tuple((r.req_id, s, n) for r, s, n, decode in self.work if not decode),
            num_tokens=self.max_tokens_per_step - self.budget,
            sampled=tuple((r.req_id, r.generated[-1]) for r in samplers),
            finished_ids=tuple(r.req_id for r in finished),
            num_waiting=len(self.waiting), num_running=len(self.running),
            kv=self.kv_cache.usage(), preemptions=tuple(self.preemptions),
            decode_context_lens=tuple(s + 1 for _, s in decodes),
            batch_order=tuple(r.req_id for r, *_ in self.work))
