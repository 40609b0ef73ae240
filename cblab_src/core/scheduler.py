"""The continuous-batching scheduler: the mechanism every policy runs on.

One step, as :meth:`Scheduler.step` reads::

    plan = self._schedule(undo)               # the policy picks requests and token counts
    logits = self._forward(plan)              # lay them out ragged; one forward pass
    tokens = self._sample(samplers, logits)   # a token for each request whose cache is complete
    self._commit(plan, samplers, tokens, ...) # advance progress, record tokens, finish and free

and if anything raises before the commit, ``undo`` puts everything back (:mod:`.step_undo`).

*Which* requests get how many tokens is the policy's decision (:mod:`cblab_src.core.policies`:
``decode_first`` by default, ``prefill_first``, ``vllm_v1``). The rest is here and in
:mod:`~cblab_src.core.step_plan`, the same for every policy: queues, admission, KV allocation
and preemption, sampling, finishing, :class:`StepStats`. :mod:`cblab_src.core.basic_scheduler`
is the same engine without options, to read first.

The queues (``_running``, ``_waiting``, ``_future``) are in :mod:`~cblab_src.core.queues`. A
request finishes in the step that samples its ``max_new_tokens``-th token (or its EOS token)
and frees its KV at once; one asking for no token finishes in its arrival step, unrun.
``Scheduler(None, ...)`` runs the same schedule with a :class:`~.null_model.NullModel`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable

import numpy as np

from .._gc import cycle_collector_paused
from .._validate import non_negative_int
from .batch_builder import RaggedBatch, build_batch
from .config import SchedulerConfig, knob
from .handoff import KVHandoff, export_kv
from .history import History
from .hooks import PluginManager
from .kv_cache import DenseKVCache, KVCache
from .paged_kv_cache import PagedKVCache
from .null_model import NO_MODEL_TOKEN, NullModel
from .policies import resolve_policy
from .queues import RequestQueues
from .request import FinishReason, Request, RequestState, append_tokens
from .step_plan import SchedulerCounters, StepPlan
from .step_stats import StepStats
from .step_undo import HeldInterrupts, StepUndo

__all__ = ["Scheduler", "SchedulerCounters", "StepStats", "NO_MODEL_TOKEN"]


class Scheduler(RequestQueues):
    """Runs requests through a model step by step under a token budget.

    ``Scheduler(TinyLLM(), max_tokens_per_step=8, prefill_chunk_size=4)`` batches up to 8
    tokens per step, prefilling prompts 4 tokens at a time, with a paged KV cache of 16-token
    blocks that grows to fit the workload. Every knob of :class:`SchedulerConfig` can be given
    by name, or pass ``config=SchedulerConfig(...)``: ``num_blocks`` for a fixed pool (then
    requests may be preempted), ``max_num_seqs`` to cap how many run at once,
    ``enable_prefix_caching=True`` to share cached prompt prefixes, ``policy="vllm_v1"``.
    """

    max_tokens_per_step = knob("max_tokens_per_step", settable=True)
    prefill_chunk_size = knob("prefill_chunk_size", settable=True)
    max_num_seqs = knob("max_num_seqs", settable=True)
    watermark_blocks = knob("watermark_blocks", settable=True)
    policy = knob("policy", settable=True)
    kv_layout = knob("kv_layout", settable=False)
    block_size = knob("block_size", settable=False)
    num_blocks = knob("num_blocks", settable=False)
    enable_prefix_caching = knob("enable_prefix_caching", settable=False)

    def __init__(self, model, config: SchedulerConfig | None = None, **knobs):
        self.config = SchedulerConfig.of(config, **knobs)
        if isinstance(model, type) or not (model is None or hasattr(model, "forward_step")):
            raise TypeError(f"model must be a TinyLLM-like model instance or None, got {model!r}")
        super().__init__()
        self._model = NullModel() if model is None else model
        self._kv_cache = self._make_kv_cache()
        self._plugins = PluginManager()
        self._counters = SchedulerCounters()
        self._step_count = 0
        self._requests: dict[Hashable, Request] = {}     # every request held, by id
        self._finished: deque[Request] = deque()          # in the order they finished
        self._held: dict[Hashable, Request] = {}          # finished, KV kept for hand_off()

    # What the scheduler is made of, and its record: read-only (make a new scheduler instead).
    model = property(lambda self: self._model, doc="The model (NullModel for None).")
    kv_cache = property(lambda self: self._kv_cache)
    plugins = property(lambda self: self._plugins)
    counters = property(lambda self: self._counters, doc="Running totals: SchedulerCounters.")
    step_count = property(lambda self: self._step_count, doc="The id of the next step.")
    requests = property(lambda self: self._requests, doc="Every request held, by id.")
    finished = property(lambda self: self._finished, doc="Finished requests, oldest first.")

    @property
    def config(self) -> SchedulerConfig:
        """The knobs in force (replace it, or set a knob, to change them between steps)."""
        return self._config

    @config.setter
    def config(self, config: SchedulerConfig) -> None:
        if not isinstance(config, SchedulerConfig):
            raise TypeError(f"config must be a SchedulerConfig, got {config!r}")
        old = getattr(self, "_config", None)
        fixed = ("kv_layout", "block_size", "num_blocks", "enable_prefix_caching")
        if old is not None and any(getattr(old, k) != getattr(config, k) for k in fixed):
            raise ValueError(f"{fixed} are fixed once the KV cache exists, got {config!r}")
        self._config, self._policy = config, resolve_policy(config.policy)

    def _make_kv_cache(self) -> KVCache:
        c, m, keep = self.config, self.model, self._policy.keep_duplicate_blocks
        shape = dict(n_layers=m.n_layers, n_heads=m.n_heads, head_dim=m.head_dim, dtype=m.dtype)
        if c.kv_layout == "dense":
            return DenseKVCache(**shape)
        return PagedKVCache(c.block_size, c.num_blocks, **shape, keep_duplicate_blocks=keep,
                            enable_prefix_caching=c.enable_prefix_caching)

    # ------------------------------------------------------------------ one step
    def step(self) -> StepStats:
        """Schedule, run and commit one step; returns its :class:`StepStats`.

        All or nothing: if anything raises before the commit (the policy, the model, an
        attention plugin, a logits processor), the scheduler, its KV cache and every request
        are put back as they were, and the exception goes on. Ctrl-C waits for the step to end
        (pressed twice, it interrupts at once and the step is undone): :mod:`.step_undo`."""
        self.plugins.dispatch("before_step", self)
        with HeldInterrupts() as interrupts:    # Ctrl-C waits for the end of the step
            with StepUndo(self, interrupts) as undo:    # a fault in here undoes the step
                zero_output = self._take_arrivals(undo.arrived)
                plan = self._schedule(undo)
                logits = self._forward(plan) if plan.items else None
                samplers = [r for r, _, _, _, samples in plan.items if samples]
                undo.keep_generators(samplers, logits)
                tokens = self._sample(samplers, logits)
            sampled, finished = self._commit(plan, samplers, tokens, zero_output)
            stats = self._stats(plan, sampled, finished)
            self._step_count += 1
        for r in finished:
            self.plugins.dispatch("on_request_finished", self, r)
        self.plugins.dispatch("after_step", self, stats)
        return stats

    def run(self, max_steps: int | None = None) -> History:
        """Step until every added request has finished (or ``max_steps`` steps were taken).

        Idle steps (nothing running or waiting, the next request arriving later) are skipped
        in one move, unless a scheduler plugin watches every step: their step ids still count,
        and the returned :class:`~cblab_src.core.history.History` holds them as one record."""
        if max_steps is not None:
            max_steps = non_negative_int("max_steps", max_steps)
        history = History()
        with cycle_collector_paused():          # (performance: see cblab_src/_gc.py)
            while self.has_unfinished and (max_steps is None or len(history) < max_steps):
                idle = self._idle_steps()
                if idle:
                    idle = idle if max_steps is None else min(idle, max_steps - len(history))
                    history.append_idle(self.step_count, idle, self.kv_cache.usage())
                    self._step_count += idle
                    continue
                stats = self.step()
                history.append(stats)
                self._check_progress(stats)
        return history

    def _idle_steps(self) -> int:
        """Steps from now in which nothing can run (none while a scheduler plugin watches
        every step)."""
        return 0 if self.plugins.scheduler_plugins else self._steps_until_arrival()

    def _check_progress(self, stats: StepStats) -> None:
        """A step that scheduled nothing while arrived requests wait can only repeat forever
        (a bug in a policy, a plugin or the cache: nothing is running, so the whole pool is
        free and the head of the queue must fit): raise instead of hanging."""
        if not stats.num_tokens and not stats.finished_ids and self._waiting:
            raise RuntimeError(f"no progress in step {stats.step_id}: {len(self._waiting)} "
                               f"request(s) wait, none was scheduled (livelock); KV {stats.kv}")

    def hand_off(self, req_id: Hashable) -> KVHandoff:
        """Take a finished request's KV out of this prefill instance (``kv_hand_off=True``):
        a copy for the decode instance; its blocks return to the pool (core/handoff.py)."""
        if req_id not in self._held:
            raise ValueError(f"req_id {req_id!r} holds no KV to hand off (kv_hand_off="
                             f"{self.config.kv_hand_off}; it must have finished here)")
        handoff = export_kv(self.kv_cache, self._held.pop(req_id))
        self.kv_cache.free(req_id)
        return handoff

    def drain_finished(self) -> list[Request]:
        """Return the finished requests and forget them, so a long-running server's memory
        stays flat. Their ids may then be reused."""
        done, self._finished = list(self._finished), deque()
        for r in done:
            del self.requests[r.req_id]
        return done

    def _schedule(self, undo: StepUndo) -> StepPlan:
        """A new plan for this step (logged in ``undo`` before any move), filled by the policy."""
        plan = undo.plan = StepPlan(
            self.config, self.step_count, self.config.max_tokens_per_step, self._running,
            self._waiting, self.kv_cache, self.counters,
            cache_when_scheduled=self._policy.cache_blocks_when_scheduled
            and self.kv_cache.caches_prefixes)
        self._policy.schedule(plan)
        return plan

    def _forward(self, plan: StepPlan) -> np.ndarray | None:
        """One forward pass over the step's ragged batch: ``(S, vocab)`` logits, one row per
        request that samples, in batch order."""
        if isinstance(self.model, NullModel):   # (performance: it computes nothing: no batch,
            return None                         # no logits; _sample gives the placeholder)
        return self.model.forward_step(self._build(plan), self.kv_cache, self.plugins.attention_fn)

    def _build(self, plan: StepPlan) -> RaggedBatch:
        """Each scheduled request's tokens, from ``start``; the last ones sample."""
        # (performance: a decode feeds just its newest token without building all_tokens)
        return build_batch([(r.req_id, r.generated[-1:] if decode else r.all_tokens[start:start + n],
                             start, samples) for r, start, n, decode, samples in plan.items])

    def _commit(self, plan: StepPlan, samplers: list[Request], tokens: list[int],
                zero_output: list[Request]):
        """Advance every scheduled request; give each sampler its token, in batch order;
        finish and free those done."""
        for r, _, n, _, _ in plan.items:
            r.num_computed_tokens += n          # (their K/V were written in this step)
        finished = list(zero_output) + append_tokens(samplers, tokens, self.step_count)
        sampled = list(zip([r.req_id for r in samplers], tokens))
        if self.kv_cache.caches_prefixes:           # full blocks become reusable prefixes
            for r, *_ in plan.items:
                self.kv_cache.cache_full_blocks(r.req_id, r.all_tokens)
        for r in finished:
            self._finish(r)
        if len(finished) > len(zero_output):        # one pass, however many finished
            self._running[:] = [r for r in self._running if r.state is not RequestState.FINISHED]
        return sampled, finished

    def _sample(self, samplers: list[Request], logits: np.ndarray | None) -> list[int]:
        """One token per sampler from its row of ``logits (S, vocab)``.

        Greedy rows without logits processors take one ``argmax`` over the whole matrix: the
        same tokens as sampling each row alone, without a Python call per request."""
        if logits is None:                          # a scheduling-only run (NullModel)
            return [NO_MODEL_TOKEN] * len(samplers)
        processors = self.plugins.logits_processors
        greedy = logits.argmax(axis=1).tolist() if not processors else None
        return [greedy[i] if greedy is not None and r.sampling.greedy
                else r.sample(self.plugins.process_logits(r.all_tokens, logits[i]))
                for i, r in enumerate(samplers)]

    def _finish(self, r: Request) -> None:
        if self.config.kv_hand_off and r.req_id in self.kv_cache:
            self._held[r.req_id] = r                # its KV waits for hand_off()
        elif r.req_id in self.kv_cache:             # (zero-output requests never ran)
            self.kv_cache.free(r.req_id)
        eos = r.sampling.eos_token_id
        stopped = r.generated and eos is not None and r.generated[-1] == eos
        r.finish_reason = FinishReason.STOP if stopped else FinishReason.LENGTH
        r.state, r.finish_step = RequestState.FINISHED, self.step_count
        self.finished.append(r)
        keep = self.config.keep_finished
        if keep is not None and len(self.finished) > keep:    # forget the oldest (flat memory)
            del self.requests[self.finished.popleft().req_id]

    def _stats(self, plan: StepPlan, sampled: list, finished: list[Request]) -> StepStats:
        return StepStats(**plan.work(), sampled=tuple(sampled),
                         finished_ids=tuple(r.req_id for r in finished),
                         num_waiting=len(self._waiting),     # (this step's arrivals are in)
                         num_running=len(self._running), kv=self.kv_cache.usage())
