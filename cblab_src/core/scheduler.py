"""The continuous-batching scheduler: each step, decodes first, then prefill chunks, in a budget.

One step, as :meth:`Scheduler.step` reads::

    plan = self._schedule()         # which decodes and prefill chunks fit the token budget
    batch = self._build(plan)       # lay them out ragged; extend each request's KV
    logits = model.forward_step()   # one forward pass over every token of the step
    self._commit(plan, logits)      # advance prefill, sample tokens, finish and free

The policy (the design notes' §5, as in vLLM v1 and Sarathi-Serve):

* running decodes go first, one token each, oldest request first;
* the rest of the budget goes to prefill chunks in arrival order: at most one chunk per request
  per step, at most ``prefill_chunk_size`` tokens, clipped by what is left of the budget;
* a waiting request is admitted only when the KV cache can reserve every token it may hold
  (prompt + max_new_tokens - 1); the first request that cannot be admitted stops admission, so
  later ones never overtake it (first come, first served);
* the chunk that completes a prompt samples the first token; a request finishes in the step
  that samples its ``max_new_tokens``-th token and frees its KV memory at once.

With ``model=None`` the scheduler does all of this without computing anything (every sampled
token is 0): a scheduling-only simulation for large workloads.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass, fields

import numpy as np

from .._validate import non_negative_int, one_of, positive_int
from ..plugins.base import PluginManager
from .batch_builder import RaggedBatch, build_batch
from .kv_cache import KV_LAYOUTS, KVCache, KVUsage, PagedKVCache
from .request import Request, RequestState


@dataclass(frozen=True)
class StepStats(Mapping):
    """What one step did. Readable as attributes (``stats.num_tokens``) or as a mapping
    (``stats["num_tokens"]``, ``metrics.record_step(**stats)``)."""

    step_id: int
    decode_ids: tuple                  # requests that decoded one token, in batch order
    prefill_chunks: tuple              # (req_id, start, length) per prefill chunk
    num_tokens: int                    # tokens in the step's batch (<= the budget)
    sampled: tuple                     # (req_id, token) for every token sampled this step
    finished_ids: tuple                # requests that finished in this step
    num_waiting: int                   # arrived but not admitted, after the step
    num_running: int                   # admitted and unfinished, after the step
    kv: KVUsage                        # KV memory after the step

    @property
    def num_decode_tokens(self) -> int:
        return len(self.decode_ids)

    @property
    def num_prefill_tokens(self) -> int:
        return sum(length for _, _, length in self.prefill_chunks)

    def __getitem__(self, key: str):
        if key not in self._field_names():
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._field_names())

    def __len__(self) -> int:
        return len(self._field_names())

    @classmethod
    def _field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


@dataclass(frozen=True)
class _Plan:
    """The requests scheduled for one step."""

    decodes: list[Request]
    chunks: list[tuple[Request, int]]     # (request, chunk length)
    zero_output: list[Request]            # max_new_tokens == 0: finish without computing


class Scheduler:
    """Runs requests through a model step by step under a token budget.

    ``Scheduler(TinyLLM(), max_tokens_per_step=8, prefill_chunk_size=4)`` batches up to 8
    tokens per step, prefilling prompts 4 tokens at a time, with a paged KV cache of
    16-token blocks that grows to fit the workload.
    """

    def __init__(self, model, *, max_tokens_per_step: int, prefill_chunk_size: int,
                 kv_layout: str = "paged", block_size: int = 16, num_blocks: int | None = None):
        self.max_tokens_per_step = max_tokens_per_step
        self.prefill_chunk_size = prefill_chunk_size
        self.kv_layout = one_of("kv_layout", kv_layout, tuple(KV_LAYOUTS))
        if model is not None and not hasattr(model, "forward_step"):
            raise TypeError(f"model must be a TinyLLM-like model or None, got {model!r}")
        self.model = model
        shape = {} if model is None else dict(n_layers=model.n_layers, n_heads=model.n_heads,
                                              head_dim=model.head_dim, dtype=model.dtype)
        if kv_layout == "paged":
            self.kv_cache: KVCache = PagedKVCache(block_size, num_blocks, **shape)
        else:
            self.kv_cache = KV_LAYOUTS[kv_layout](**shape)
        self.plugins = PluginManager()
        self.step_count = 0
        self.requests: dict[Hashable, Request] = {}      # every request held, by id
        self.finished: list[Request] = []                 # in the order they finished
        self._queue: list[Request] = []                   # unfinished, in arrival order
        self._seq = itertools.count()                     # tie-break for equal arrival steps
        self._order: dict[Hashable, tuple[int, int]] = {}

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
        """Most prompt tokens of one request prefilled in one step."""
        return self._prefill_chunk_size

    @prefill_chunk_size.setter
    def prefill_chunk_size(self, value: int) -> None:
        self._prefill_chunk_size = positive_int("prefill_chunk_size", value)

    # ------------------------------------------------------------------ queues
    @property
    def active(self) -> list[Request]:
        """Every added request not yet finished, in arrival order."""
        return list(self._queue)

    @property
    def waiting(self) -> list[Request]:
        """Requests that have arrived but hold no KV cache yet."""
        return self.waiting_after(self.step_count)

    @property
    def running(self) -> list[Request]:
        """Admitted requests: prefilling or decoding."""
        return [r for r in self._queue if r.state in (RequestState.PREFILL, RequestState.DECODE)]

    @property
    def has_unfinished(self) -> bool:
        return bool(self._queue)

    # ------------------------------------------------------------------ adding work
    def add_request(self, req: Request) -> Request:
        """Queue a new request. All checks happen before anything changes: a rejected request
        leaves the scheduler exactly as it was."""
        self._validate(req)
        self.requests[req.req_id] = req
        self._order[req.req_id] = (req.arrival_step, next(self._seq))
        bisect.insort(self._queue, req, key=lambda r: self._order[r.req_id])
        self.plugins.dispatch("on_request_added", self, req)
        return req

    def _validate(self, req: Request) -> None:
        if not isinstance(req, Request):
            raise TypeError(f"req must be a Request, got {req!r}")
        if req.req_id in self.requests:
            raise ValueError(f"req_id {req.req_id!r} was already added")
        if req.state is not RequestState.WAITING or req.prefill_pos or req.generated:
            raise ValueError(f"req {req.req_id!r} has already run (state {req.state.name})")
        if req.arrival_step < self.step_count:
            raise ValueError(f"arrival_step {req.arrival_step} is in the past: the scheduler is "
                             f"at step {self.step_count}")
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
                raise ValueError(f"request {req.req_id!r} needs {need} blocks "
                                 f"(prompt {req.prompt_len} + max_new_tokens {req.max_new_tokens}"
                                 f" - 1 tokens) but num_blocks is {cache.num_blocks}")

    # ------------------------------------------------------------------ one step
    def step(self) -> StepStats:
        """Schedule, run and commit one step; returns its :class:`StepStats`."""
        step_id = self.step_count
        self.plugins.dispatch("before_step", self)
        plan = self._schedule()
        batch = self._build(plan)
        logits = None
        if self.model is not None and batch.num_tokens:
            logits = self.model.forward_step(batch, self.kv_cache, self.plugins.attention_fn)
        sampled, finished = self._commit(plan, batch, logits)
        stats = StepStats(
            step_id=step_id,
            decode_ids=tuple(r.req_id for r in plan.decodes),
            prefill_chunks=tuple((r.req_id, r.prefill_pos - n, n) for r, n in plan.chunks),
            num_tokens=batch.num_tokens, sampled=tuple(sampled),
            finished_ids=tuple(r.req_id for r in finished),
            num_waiting=len(self.waiting_after(step_id)), num_running=len(self.running),
            kv=self.kv_cache.usage())
        self.step_count += 1
        self.plugins.dispatch("after_step", self, stats)
        return stats

    def run(self, max_steps: int | None = None) -> list[StepStats]:
        """Step until every added request has finished (or ``max_steps`` steps were taken)."""
        if max_steps is not None:
            max_steps = non_negative_int("max_steps", max_steps)
        history = []
        while self._queue and (max_steps is None or len(history) < max_steps):
            history.append(self.step())
        return history

    def drain_finished(self) -> list[Request]:
        """Return the finished requests and forget them, so a long-running server's memory
        stays flat. Their ids may then be reused."""
        done, self.finished = self.finished, []
        for r in done:
            del self.requests[r.req_id]
        return done

    def waiting_after(self, step_id: int) -> list[Request]:
        """Requests arrived by ``step_id`` and still waiting."""
        return [r for r in self._queue
                if r.state is RequestState.WAITING and r.arrival_step <= step_id]

    # ------------------------------------------------------------------ the policy
    def _schedule(self) -> _Plan:
        arrived = [r for r in self._queue if r.arrival_step <= self.step_count]
        zero = [r for r in arrived if r.max_new_tokens == 0]
        budget = self.max_tokens_per_step
        decodes = [r for r in arrived if r.state is RequestState.DECODE][:budget]
        budget -= len(decodes)
        chunks = []
        for r in arrived:
            if budget == 0:
                break
            if r.state is RequestState.WAITING and r.max_new_tokens > 0:
                if not self.kv_cache.can_admit(r.max_kv_tokens):
                    break              # first come, first served: nobody overtakes it
                self.kv_cache.admit(r.req_id, r.max_kv_tokens)
                r.state, r.admitted_step = RequestState.PREFILL, self.step_count
            if r.state is RequestState.PREFILL:
                n = min(self.prefill_chunk_size, r.remaining_prefill, budget)
                chunks.append((r, n))
                budget -= n
        return _Plan(decodes, chunks, zero)

    def _build(self, plan: _Plan) -> RaggedBatch:
        parts = [(r.req_id, r.generated[-1:], r.prompt_len + r.num_generated - 1, True)
                 for r in plan.decodes]
        parts += [(r.req_id, r.get_prefill_chunk(n), r.prefill_pos, n == r.remaining_prefill)
                  for r, n in plan.chunks]
        batch = build_batch(parts)
        for seg in batch.segments:
            self.kv_cache.extend(seg.req_id, seg.length)
        return batch

    def _commit(self, plan: _Plan, batch: RaggedBatch, logits: np.ndarray | None):
        for r, n in plan.chunks:
            r.mark_prefilled(n)
        samplers = [self.requests[s.req_id] for s in batch.segments if s.samples]
        sampled, finished = [], list(plan.zero_output)
        for i, r in enumerate(samplers):
            token = 0 if logits is None else int(np.argmax(logits[i]))
            r.append_token(token, self.step_count)
            r.state = RequestState.DECODE
            sampled.append((r.req_id, token))
            if r.is_done:
                finished.append(r)
        for r in finished:
            self._finish(r)
        return sampled, finished

    def _finish(self, r: Request) -> None:
        if r.req_id in self.kv_cache:
            self.kv_cache.free(r.req_id)
        r.state, r.finish_step = RequestState.FINISHED, self.step_count
        self._queue.remove(r)
        del self._order[r.req_id]
        self.finished.append(r)
        self.plugins.dispatch("on_request_finished", self, r)
