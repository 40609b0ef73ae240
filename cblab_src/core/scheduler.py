"""The continuous-batching scheduler: each step, decodes first, then prefill chunks, in a budget.

One step, as :meth:`Scheduler.step` reads::

    plan = self._schedule()         # decodes, then prefill chunks, allocating KV as it goes
    batch = self._build(plan)       # lay them out ragged: one array of tokens, no padding
    logits = model.forward_step()   # one forward pass over every token of the step
    self._commit(plan, logits)      # advance progress, sample tokens, finish and free

The policy (the design notes' §5, as in vLLM v1 and Sarathi-Serve):

* running decodes go first, one token each, oldest request first;
* the rest of the budget goes to prefill chunks in arrival order: at most one chunk per request
  per step, at most ``prefill_chunk_size`` tokens, clipped by what is left of the budget;
* KV blocks are allocated on demand, as tokens are scheduled. A waiting request is admitted
  when its first chunk's blocks are available (plus ``watermark_blocks`` kept free while others
  run) and fewer than ``max_num_seqs`` requests run; the first request that cannot be admitted
  stops admission, so later ones never overtake it (first come, first served);
* when a running request needs a block and none is available, the most recently admitted
  running request is preempted: its KV is freed and it returns to the queue, to prefill its
  prompt and the tokens it already generated again (recompute, as vLLM v1 does). Because
  admission is first come first served, running requests are always older than waiting ones,
  so "most recently admitted" is the youngest running request, and the oldest always progresses;
* the chunk that completes a prompt samples the first token; a request finishes in the step
  that samples its ``max_new_tokens``-th token (or its EOS token) and frees its KV at once.

``policy="prefill_first"`` is the baseline of nano-vllm and of vLLM before chunked prefill: a
step with any prefill work does only prefill (the same chunks, under the same budget), and
only a step with no prefill work to do decodes the running requests. It never mixes the two,
so every prefill step stalls the decodes (Sarathi-Serve's "generation stalls").

With ``model=None`` the scheduler does all of this without computing anything (every sampled
token is ``NO_MODEL_TOKEN``, 0): a scheduling-only simulation for large workloads. It refuses a
request that would stop at that token, whose schedule would be meaningless.

The queues are kept as the policy reads them: ``_running`` (admitted, oldest first),
``_waiting`` (arrived, not admitted, oldest first; a preempted request goes back to its front)
and ``_future`` (not yet arrived, a heap by arrival). Running requests are always older than
waiting ones, so together they are the unfinished requests in arrival order.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field

import numpy as np

from .._validate import non_negative_int, one_of, optional_positive_int, positive_int
from ..plugins.base import PluginManager
from .batch_builder import RaggedBatch, build_batch
from .kv_cache import KV_LAYOUTS, DenseKVCache, KVCache, PagedKVCache
from .request import FinishReason, Request, RequestState
from .step_stats import Preemption, StepStats

# What a scheduling-only run (model=None) samples for every request.
NO_MODEL_TOKEN = 0

POLICIES = ("decode_first", "prefill_first")


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


@dataclass(slots=True)
class _Plan:
    """The work of one step, built up by :meth:`Scheduler._schedule`."""

    budget: int
    decodes: list[Request] = field(default_factory=list)
    chunks: list[tuple[Request, int]] = field(default_factory=list)   # (request, chunk length)
    preemptions: list[Preemption] = field(default_factory=list)
    zero_output: list[Request] = field(default_factory=list)          # max_new_tokens == 0
    cached_tokens: int = 0

    def drop(self, r: Request) -> None:
        """Take a preempted request out of this step, giving its tokens back to the budget."""
        if r in self.decodes:
            self.decodes.remove(r)
            self.budget += 1
        for item in [c for c in self.chunks if c[0] is r]:
            self.chunks.remove(item)
            self.budget += item[1]


class Scheduler:
    """Runs requests through a model step by step under a token budget.

    ``Scheduler(TinyLLM(), max_tokens_per_step=8, prefill_chunk_size=4)`` batches up to 8
    tokens per step, prefilling prompts 4 tokens at a time, with a paged KV cache of
    16-token blocks that grows to fit the workload. Give ``num_blocks`` for a fixed pool (then
    requests may be preempted), ``max_num_seqs`` to cap how many requests run at once,
    ``enable_prefix_caching=True`` to share cached prompt prefixes, and
    ``policy="prefill_first"`` for the no-mixing baseline.
    """

    def __init__(self, model, *, max_tokens_per_step: int, prefill_chunk_size: int,
                 kv_layout: str = "paged", block_size: int = 16, num_blocks: int | None = None,
                 enable_prefix_caching: bool = False, watermark_blocks: int = 0,
                 max_num_seqs: int | None = None, policy: str = "decode_first"):
        self.max_tokens_per_step = max_tokens_per_step
        self.prefill_chunk_size = prefill_chunk_size
        self.kv_layout = one_of("kv_layout", kv_layout, tuple(KV_LAYOUTS))
        self.policy = one_of("policy", policy, POLICIES)
        self.max_num_seqs = optional_positive_int("max_num_seqs", max_num_seqs)
        # Checked for both layouts, so a wrong value never hides behind kv_layout="dense".
        block_size = positive_int("block_size", block_size)
        if num_blocks is not None:
            num_blocks = positive_int("num_blocks", num_blocks)
        self.watermark_blocks = non_negative_int("watermark_blocks", watermark_blocks)
        if model is not None and not hasattr(model, "forward_step"):
            raise TypeError(f"model must be a TinyLLM-like model or None, got {model!r}")
        self.model = model
        shape = {} if model is None else dict(n_layers=model.n_layers, n_heads=model.n_heads,
                                              head_dim=model.head_dim, dtype=model.dtype)
        if kv_layout == "paged":
            self.kv_cache: KVCache = PagedKVCache(block_size, num_blocks, **shape,
                                                  enable_prefix_caching=enable_prefix_caching)
            if num_blocks is not None and self.watermark_blocks >= num_blocks:
                raise ValueError(f"watermark_blocks must be < num_blocks ({num_blocks}), "
                                 f"got {watermark_blocks}")
        else:
            if enable_prefix_caching:
                raise ValueError("enable_prefix_caching needs kv_layout='paged', got "
                                 f"kv_layout={kv_layout!r}")
            self.kv_cache = DenseKVCache(**shape)
        self.plugins = PluginManager()
        self.counters = SchedulerCounters()
        self.step_count = 0
        self.requests: dict[Hashable, Request] = {}      # every request held, by id
        self.finished: list[Request] = []                 # in the order they finished
        self._running: list[Request] = []                 # admitted, oldest first
        self._waiting: deque[Request] = deque()           # arrived, not admitted, oldest first
        self._future: list[tuple[int, int, Request]] = []  # heap: (arrival_step, seq, request)
        self._seq = itertools.count()                     # tie-break for equal arrival steps

    # ------------------------------------------------------------------ knobs
    @property
    def max_tokens_per_step(self) -> int:
        """The token budget of one step."""
        return self._max_tokens_per_step

    @max_tokens_per_step.setter
    def max_tokens_per_step(self, value: int) -> None:
        self._max_tokens_per_step = positive_int("max_tokens_per_step", value)

    @property
    def prefill_chunk_size(self) -> int:
        """Most tokens of one request prefilled in one step."""
        return self._prefill_chunk_size

    @prefill_chunk_size.setter
    def prefill_chunk_size(self, value: int) -> None:
        self._prefill_chunk_size = positive_int("prefill_chunk_size", value)

    # ------------------------------------------------------------------ queues
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
    def add_request(self, req: Request) -> Request:
        """Queue a new request. All checks happen before anything changes: a rejected request
        leaves the scheduler exactly as it was."""
        self._validate(req)
        self.requests[req.req_id] = req
        heapq.heappush(self._future, (req.arrival_step, next(self._seq), req))
        self.plugins.dispatch("on_request_added", self, req)
        return req

    def _validate(self, req: Request) -> None:
        if not isinstance(req, Request):
            raise TypeError(f"req must be a Request, got {req!r}")
        if req.req_id in self.requests:
            raise ValueError(f"req_id {req.req_id!r} was already added")
        if req.state is not RequestState.WAITING or req.num_computed_tokens or req.generated:
            raise ValueError(f"req {req.req_id!r} has already run (state {req.state.name})")
        if self.model is None and req.sampling.eos_token_id == NO_MODEL_TOKEN:
            raise ValueError(f"request {req.req_id!r} stops at eos_token_id "
                             f"{NO_MODEL_TOKEN}, the token every request samples when model is "
                             f"None, so it would end after one token: give the scheduler a "
                             f"model, or the request sampling without that EOS")
        if self.model is not None:
            self.model.check_tokens("prompt", req.prompt)
            limit = self.model.max_seq_len
            if req.prompt_len > limit:
                raise ValueError(f"prompt length {req.prompt_len} exceeds the model's "
                                 f"max_seq_len {limit}")
            if req.max_kv_tokens > limit:
                raise ValueError(f"max_new_tokens {req.max_new_tokens} with prompt length "
                                 f"{req.prompt_len} exceeds the model's max_seq_len {limit}")
        cache = self.kv_cache
        if isinstance(cache, PagedKVCache) and cache.allocator.bounded:
            need = cache.blocks_for(req.max_kv_tokens)
            if need > cache.num_blocks:
                raise ValueError(f"request {req.req_id!r} can never fit: it needs {need} blocks "
                                 f"(prompt {req.prompt_len} + max_new_tokens {req.max_new_tokens}"
                                 f" - 1 tokens) but num_blocks is {cache.num_blocks}")
        if req.arrival_step < self.step_count:
            raise ValueError(f"arrival_step {req.arrival_step} is in the past: the scheduler is "
                             f"at step {self.step_count}")

    # ------------------------------------------------------------------ one step
    def step(self) -> StepStats:
        """Schedule, run and commit one step; returns its :class:`StepStats`."""
        step_id = self.step_count
        self.plugins.dispatch("before_step", self)
        plan = self._schedule()
        logits, num_tokens = None, len(plan.decodes) + sum(n for _, n in plan.chunks)
        if self.model is not None and num_tokens:
            batch = self._build(plan)
            logits = self.model.forward_step(batch, self.kv_cache, self.plugins.attention_fn)
        prefill_chunks = tuple((r.req_id, r.num_computed_tokens, n) for r, n in plan.chunks)
        sampled, finished = self._commit(plan, logits)
        stats = StepStats(
            step_id=step_id,
            decode_ids=tuple(r.req_id for r in plan.decodes),
            prefill_chunks=prefill_chunks,
            num_tokens=num_tokens, sampled=tuple(sampled),
            finished_ids=tuple(r.req_id for r in finished),
            num_waiting=len(self.waiting_after(step_id)), num_running=len(self._running),
            kv=self.kv_cache.usage(), preemptions=tuple(plan.preemptions),
            cached_tokens=plan.cached_tokens,
            decode_context_lens=tuple(r.num_computed_tokens for r in plan.decodes))
        self.step_count += 1
        self.plugins.dispatch("after_step", self, stats)
        return stats

    def run(self, max_steps: int | None = None) -> list[StepStats]:
        """Step until every added request has finished (or ``max_steps`` steps were taken)."""
        if max_steps is not None:
            max_steps = non_negative_int("max_steps", max_steps)
        history = []
        while self.has_unfinished and (max_steps is None or len(history) < max_steps):
            history.append(self.step())
        return history

    def drain_finished(self) -> list[Request]:
        """Return the finished requests and forget them, so a long-running server's memory
        stays flat. Their ids may then be reused."""
        done, self.finished = self.finished, []
        for r in done:
            del self.requests[r.req_id]
        return done

    # ------------------------------------------------------------------ the policy
    def _schedule(self) -> _Plan:
        plan = _Plan(budget=self.max_tokens_per_step, zero_output=self._take_arrivals())
        if self.policy == "decode_first":
            self._schedule_decodes(plan)
            self._schedule_prefills(plan)
        else:                                       # prefill_first: never mix the two
            self._schedule_prefills(plan)
            if not plan.chunks:
                self._schedule_decodes(plan)
        return plan

    def _take_arrivals(self) -> list[Request]:
        """Move requests arriving by this step to the waiting queue; return those that ask for
        no token at all (they finish in this step without running)."""
        zero_output = []
        while self._future and self._future[0][0] <= self.step_count:
            r = heapq.heappop(self._future)[2]
            (self._waiting if r.max_new_tokens > 0 else zero_output).append(r)
        return zero_output

    def _schedule_decodes(self, plan: _Plan) -> None:
        """One token for each decoding request, oldest first, while the budget lasts."""
        decode, allocate = RequestState.DECODE, self._allocate     # (this loop is the hot path)
        for r in list(self._running):
            if plan.budget == 0:
                break
            if r.state is decode and allocate(r, 1, plan):
                plan.decodes.append(r)
                plan.budget -= 1

    def _schedule_prefills(self, plan: _Plan) -> None:
        """One chunk for each prefilling request, then admit waiting requests, in arrival order."""
        for r in list(self._running):
            if plan.budget == 0:
                return
            if r.state is RequestState.PREFILL and not self._add_chunk(r, plan):
                return
        # No admissions in a step that had to preempt: memory is short.
        while self._waiting and plan.budget > 0 and not plan.preemptions:
            if self.max_num_seqs is not None and len(self._running) >= self.max_num_seqs:
                return
            r = self._waiting[0]
            if not self._admit(r, plan):
                return
            self._waiting.popleft()
            self._running.append(r)
            if not self._add_chunk(r, plan):
                return

    def _add_chunk(self, r: Request, plan: _Plan) -> bool:
        """Schedule ``r``'s next prompt chunk; False if ``r`` itself had to be preempted."""
        n = min(self.prefill_chunk_size, r.tokens_to_compute, plan.budget)
        if not self._allocate(r, n, plan):
            return False
        plan.chunks.append((r, n))
        plan.budget -= n
        return True

    def _admit(self, r: Request, plan: _Plan) -> bool:
        """Start ``r`` if its first chunk's blocks are available; reuse its cached prefix."""
        tokens = r.all_tokens
        hit = self.kv_cache.cached_prefix_len(tokens)
        first = hit + min(self.prefill_chunk_size, len(tokens) - hit, plan.budget)
        keep_free = self.watermark_blocks if self._running else 0
        if not self.kv_cache.can_admit(tokens, first, keep_free):
            return False
        hit = self.kv_cache.admit(r.req_id, tokens)
        r.num_computed_tokens = hit
        r.state = RequestState.PREFILL
        if r.admitted_step is not None:             # back after a preemption
            r.resumed_steps.append(self.step_count)
        else:
            r.admitted_step = self.step_count
            r.num_cached_prompt_tokens = hit
            self.counters.prompt_tokens += r.prompt_len
            self.counters.cached_prompt_tokens += hit
        plan.cached_tokens += hit
        return True

    def _allocate(self, r: Request, n: int, plan: _Plan) -> bool:
        """Extend ``r``'s KV by ``n`` tokens, preempting the youngest running requests while
        blocks are short. False if ``r`` itself had to be preempted."""
        cache = self.kv_cache
        while not cache.can_extend(r.req_id, n):
            victim = self._running[-1]
            plan.preemptions.append(Preemption(
                victim.req_id, r.req_id, cache.blocks_to_extend(r.req_id, n),
                cache.allocator.num_available, victim.num_computed_tokens))
            self._preempt(victim, plan)
            if victim is r:
                return False
        cache.extend(r.req_id, n)
        return True

    def _preempt(self, victim: Request, plan: _Plan) -> None:
        self.kv_cache.free(victim.req_id)
        plan.drop(victim)
        self._running.pop()                         # the victim is always the youngest
        self._waiting.appendleft(victim)            # ... and older than every waiting request
        self.counters.preemptions += 1
        self.counters.recomputed_tokens += victim.preempt(self.step_count)

    def _build(self, plan: _Plan) -> RaggedBatch:
        parts = [(r.req_id, r.generated[-1:], r.num_computed_tokens, True) for r in plan.decodes]
        parts += [(r.req_id, r.get_prefill_chunk(n), r.num_computed_tokens,
                   n == r.tokens_to_compute) for r, n in plan.chunks]
        return build_batch(parts)

    def _commit(self, plan: _Plan, logits: np.ndarray | None):
        """Advance every scheduled request; sample for those whose cache is now complete (every
        decode, and the chunk that completes a prompt), in batch order; finish and free."""
        for r in plan.decodes:
            r.mark_computed(1)
        for r, n in plan.chunks:
            r.mark_computed(n)
        samplers = plan.decodes + [r for r, _ in plan.chunks if not r.tokens_to_compute]
        sampled, finished, step = [], list(plan.zero_output), self.step_count
        decode = RequestState.DECODE
        for r, token in zip(samplers, self._sample(samplers, logits)):
            r.append_token(token, step)
            r.state = decode
            sampled.append((r.req_id, token))
            if r.is_done:
                finished.append(r)
        if self.kv_cache.caches_prefixes:
            for r in plan.decodes + [r for r, _ in plan.chunks]:
                if r.req_id in self.kv_cache:
                    self.kv_cache.cache_full_blocks(r.req_id, r.all_tokens)
        for r in finished:
            self._finish(r)
        return sampled, finished

    def _sample(self, samplers: list[Request], logits: np.ndarray | None) -> list[int]:
        """One token per sampler from its row of ``logits (S, vocab)`` (0 without a model).

        Greedy rows without logits processors take one ``argmax`` over the whole matrix: the
        same tokens as sampling each row alone, without a Python call per request."""
        if logits is None:
            return [NO_MODEL_TOKEN] * len(samplers)
        processors = self.plugins.logits_processors
        greedy = logits.argmax(axis=1).tolist() if not processors else None
        return [greedy[i] if greedy is not None and r.sampling.greedy
                else r.sample(self.plugins.process_logits(r.all_tokens, logits[i]))
                for i, r in enumerate(samplers)]

    def _finish(self, r: Request) -> None:
        if r.state is not RequestState.WAITING:     # zero-output requests never ran
            self._running.remove(r)
        if r.req_id in self.kv_cache:
            self.kv_cache.free(r.req_id)
        eos = r.sampling.eos_token_id
        stopped = r.generated and eos is not None and r.generated[-1] == eos
        r.finish_reason = FinishReason.STOP if stopped else FinishReason.LENGTH
        r.state, r.finish_step = RequestState.FINISHED, self.step_count
        self.finished.append(r)
        self.plugins.dispatch("on_request_finished", self, r)
