"""Shared fixtures and helpers: one small model, seeded random workloads, recording plugins,
and the KV-pool and work-accounting checks every scheduler test can apply.

A *workload* is a list of request specs ``(req_id, prompt, max_new_tokens, arrival_step)``;
:func:`make_requests` turns it into fresh :class:`Request` objects for each scheduler run, and
:func:`reference_tokens` gives what ``model.generate`` says each request must produce.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from cblab_src import (PagedKVCache, Request, Scheduler, SchedulerPlugin, TinyLLM,
                       masked_attention)
from cblab_src.costmodel import CostModel, StepArrays

# One model for the whole run: TinyLLM(seed=0) is d_model 64, 2 layers, 4 heads, vocab 128.
MODEL = TinyLLM(seed=0)

_REFERENCE: dict[tuple[tuple[int, ...], int], list[int]] = {}


class PerToken(CostModel):
    """1 ms per step plus 0.5 ms per token (a toy: easy to add up by hand)."""

    name = "per token"

    def parts(self, steps: StepArrays):
        zero = np.zeros(len(steps))
        return {"dense": 1.0 + 0.5 * steps.num_tokens, "attention": zero, "lm_head": zero,
                "allreduce": zero, "overhead": zero}


def reference_tokens(prompt: Sequence[int], max_new_tokens: int, model: TinyLLM = MODEL) -> list[int]:
    """``model.generate(prompt, max_new_tokens)``, computed once per (prompt, n) for MODEL."""
    if model is not MODEL:
        return model.generate(prompt, max_new_tokens)
    key = (tuple(prompt), max_new_tokens)
    if key not in _REFERENCE:
        _REFERENCE[key] = model.generate(list(prompt), max_new_tokens)
    return list(_REFERENCE[key])


def make_workload(seed: int, *, num_requests=(3, 6), prompt_len=(1, 20), max_new=(0, 6),
                  max_arrival: int = 6, vocab_size: int = MODEL.vocab_size) -> list[tuple]:
    """A seeded random workload: ``[(req_id, prompt, max_new_tokens, arrival_step), ...]``.

    Ranges are inclusive. About half the requests arrive at step 0, the rest later.
    """
    rng = np.random.default_rng(seed)
    n = int(rng.integers(num_requests[0], num_requests[1] + 1))
    specs = []
    for i in range(n):
        length = int(rng.integers(prompt_len[0], prompt_len[1] + 1))
        prompt = tuple(int(t) for t in rng.integers(0, vocab_size, length))
        n_new = int(rng.integers(max_new[0], max_new[1] + 1))
        arrival = 0 if rng.random() < 0.5 else int(rng.integers(1, max_arrival + 1))
        specs.append((i, prompt, n_new, arrival))
    return specs


def make_prefix_workload(seed: int, *, num_requests=(3, 6), prefix_len=(4, 24), suffix_len=(0, 6),
                         max_new=(1, 6), max_arrival: int = 6,
                         vocab_size: int = MODEL.vocab_size) -> list[tuple]:
    """Like :func:`make_workload`, but prompts share prefixes, so prefix caching has hits.

    Each prompt is the first ``k`` tokens of one of two seeded "system prompts" (``k`` drawn
    from ``prefix_len``) followed by ``suffix_len`` random tokens (at least one token in all);
    now and then a prompt repeats an earlier one exactly.
    """
    rng = np.random.default_rng(10_000 + seed)
    systems = [rng.integers(0, vocab_size, prefix_len[1]).tolist() for _ in range(2)]
    n = int(rng.integers(num_requests[0], num_requests[1] + 1))
    specs = []
    for i in range(n):
        if specs and rng.random() < 0.2:
            prompt = specs[int(rng.integers(len(specs)))][1]          # an exact repeat
        else:
            k = int(rng.integers(prefix_len[0], prefix_len[1] + 1))
            n_suffix = int(rng.integers(suffix_len[0], suffix_len[1] + 1))
            suffix = rng.integers(0, vocab_size, n_suffix)
            prompt = tuple(systems[int(rng.integers(2))][:k]) + tuple(int(t) for t in suffix)
        n_new = int(rng.integers(max_new[0], max_new[1] + 1))
        arrival = 0 if rng.random() < 0.4 else int(rng.integers(1, max_arrival + 1))
        specs.append((i, tuple(prompt), n_new, arrival))
    return specs


def make_requests(specs) -> list[Request]:
    """Fresh :class:`Request` objects for a workload (a request can run only once)."""
    return [Request(rid, list(prompt), n, arrival_step=arrival) for rid, prompt, n, arrival in specs]


def run_workload(specs, model=MODEL, *, plugins=(), **scheduler_kwargs):
    """Add every request of ``specs`` to a new scheduler, run it to the end.

    Returns ``(scheduler, history)`` where ``history`` is the list of :class:`StepStats`.
    """
    sched = Scheduler(model, **scheduler_kwargs)
    for plugin in plugins:
        sched.plugins.register_scheduler_plugin(plugin)
    for req in make_requests(specs):
        sched.add_request(req)
    history = sched.run(max_steps=10_000)
    return sched, history


def check_block_accounting(cache) -> None:
    """The paged pool's books balance: every block is exactly one of used / free / cached.

    * ``used + free + cached == total``;
    * a block's reference count equals the number of live block tables holding it (and no
      table holds a block twice); ``used_blocks`` counts blocks with a count >= 1,
      ``shared_blocks`` those with a count >= 2;
    * an ownerless block is cached exactly when it still holds a registered full block;
    * each table has exactly the blocks its tokens need; ``tokens`` sums the lengths.
    """
    usage = cache.usage()
    assert usage.tokens == len(cache) == sum(cache.num_computed_tokens(r) for r in cache.req_ids)
    if not isinstance(cache, PagedKVCache):
        assert (usage.used_blocks, usage.free_blocks, usage.cached_blocks) == (0, 0, 0)
        return
    alloc = cache.block_pool
    assert usage.used_blocks + usage.free_blocks + usage.cached_blocks == usage.total_blocks
    assert usage.total_blocks == cache.num_blocks == len(alloc.ref_counts)
    owners = np.zeros(cache.num_blocks, dtype=np.int64)
    for rid, table in cache.block_tables.items():
        assert len(table) == len(set(table)), (rid, table)
        assert len(table) == cache.blocks_for(cache.num_computed_tokens(rid)), (rid, table)
        owners[table] += 1
    assert owners.tolist() == list(alloc.ref_counts), "reference counts != live owners"
    assert usage.used_blocks == int((owners > 0).sum())
    assert usage.shared_blocks == int((owners > 1).sum())
    cached = [b for b in range(cache.num_blocks) if owners[b] == 0 and alloc.hash_of(b) is not None]
    assert usage.cached_blocks == len(cached) == alloc.num_cached
    assert usage.free_blocks == alloc.num_free
    if not cache.enable_prefix_caching:
        assert usage.cached_blocks == 0 and usage.shared_blocks == 0
    assert 0 <= usage.wasted_slots < max(1, len(cache.block_tables)) * cache.block_size


def replay_work(history, requests, block_size=None) -> dict:
    """Rebuild each request's KV length from the step log alone and check it is consistent.

    A request's cached length grows by its chunk or decode token in each step it is in, drops
    to 0 when it is preempted (the ``Preemption`` record must say how many tokens were thrown
    away), and restarts at a (re-)admission from its prefix-cache hit (a whole number of
    blocks; 0 without prefix caching). Returns, per request, ``(scheduled, thrown_away, hits)``:
    the tokens it was given in the log, the tokens preemption discarded, and the tokens prefix
    caching supplied; the caller checks ``scheduled + hits == final length + thrown_away``.
    """
    length = {r.req_id: None for r in requests}           # None: holds no KV
    out = {r.req_id: [0, 0, 0] for r in requests}
    for stats in history:
        for p in stats.preemptions:
            assert length[p.req_id] is not None and p.recomputed_tokens == length[p.req_id], p
            out[p.req_id][1] += p.recomputed_tokens
            length[p.req_id] = None
        for rid in stats.decode_ids:
            assert length[rid] is not None
            length[rid] += 1
            out[rid][0] += 1
        for rid, start, n in stats.prefill_chunks:
            if length[rid] is None:                        # (re-)admitted in this step
                if block_size is None:
                    assert start == 0, (rid, start)
                else:
                    assert start % block_size == 0, (rid, start)
                out[rid][2] += start
                length[rid] = start
            assert start == length[rid] and n > 0, (rid, start, length[rid])
            length[rid] += n
            out[rid][0] += n
        for rid in stats.finished_ids:
            length[rid] = None
    return {rid: tuple(v) for rid, v in out.items()}


def check_work(history, sched) -> None:
    """Every request's tokens are accounted for: what the log scheduled plus what the prefix
    cache supplied equals what it finally held (``P + generated - 1``) plus what preemption
    threw away; the scheduler's counters agree with the log."""
    requests = list(sched.requests.values())
    cache = sched.kv_cache
    block_size = cache.block_size if getattr(cache, "enable_prefix_caching", False) else None
    work = replay_work(history, requests, block_size)
    for r in requests:
        scheduled, thrown, hits = work[r.req_id]
        final = r.prompt_len + r.num_generated - 1 if r.num_generated else 0
        assert scheduled + hits == final + thrown, (r.req_id, scheduled, hits, final, thrown)
        assert r.num_preemptions == sum(p.req_id == r.req_id for s in history
                                        for p in s.preemptions)
    preemptions = [p for s in history for p in s.preemptions]
    assert sched.counters.preemptions == len(preemptions)
    assert sched.counters.recomputed_tokens == sum(p.recomputed_tokens for p in preemptions)
    assert sum(s.cached_tokens for s in history) == sum(w[2] for w in work.values())


class RecordingLLM(TinyLLM):
    """TinyLLM that remembers, for every ``forward_step``, the logits it returned and the
    length of each request's KV cache right after the forward pass (before any free)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.step_logits: list[dict] = []      # per forward pass: {req_id: (vocab,) logits}
        self.kv_lens: list[dict] = []          # per forward pass: {req_id: tokens cached}

    def forward_step(self, batch, cache, attend=masked_attention):
        logits = super().forward_step(batch, cache, attend)
        samplers = [s.req_id for s in batch.segments if s.samples]
        self.step_logits.append(dict(zip(samplers, logits)))
        self.kv_lens.append({s.req_id: cache.num_computed_tokens(s.req_id) for s in batch.segments})
        return logits


class EventRecorder(SchedulerPlugin):
    """Records every hook call as a tuple, in the order the scheduler makes them."""

    def __init__(self):
        self.events: list[tuple] = []

    def on_request_added(self, scheduler, request):
        self.events.append(("added", request.req_id))

    def before_step(self, scheduler):
        self.events.append(("before_step", scheduler.step_count))

    def on_request_finished(self, scheduler, request):
        self.events.append(("finished", request.req_id))

    def after_step(self, scheduler, stats):
        self.events.append(("after_step", stats.step_id))


@pytest.fixture(scope="session")
def model() -> TinyLLM:
    return MODEL


# ------------------------------------------------------------------ the browser suite's switch
def pytest_addoption(parser):
    parser.addoption("--browser", action="store_true",
                     help="also collect tests/browser: the built book in headless Chromium "
                          "(`make test` runs it after building the book)")


def pytest_ignore_collect(collection_path, config):
    """Keep tests/browser out of a plain `pytest` run: it needs the built book and Chromium."""
    if collection_path == Path(__file__).parent / "browser" and not config.getoption("--browser"):
        return True
    return None
