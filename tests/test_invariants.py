"""Batch invariance: whatever the budget, chunk size, KV layout or block size, every request
gets exactly the tokens of ``model.generate`` run on it alone — and every step keeps the
scheduler's promises (budget, decode-first, one chunk per request, KV accounting)."""

import numpy as np
import pytest

from cblab_src import PagedKVCache, RequestState, SchedulerPlugin

from conftest import make_workload, reference_tokens, run_workload

WORKLOAD_SEEDS = list(range(8))
BUDGETS = [1, 3, 8, 64]
CHUNKS = [1, 4, 16]
CACHES = {
    "dense": dict(kv_layout="dense"),
    "paged-bs1": dict(kv_layout="paged", block_size=1),
    "paged-bs4": dict(kv_layout="paged", block_size=4),
    "paged-bs16": dict(kv_layout="paged", block_size=16),
    "paged-bs1-tight": dict(kv_layout="paged", block_size=1, num_blocks="tight"),
    "paged-bs4-tight": dict(kv_layout="paged", block_size=4, num_blocks="tight"),
}


def tight_pool(specs, block_size):
    """The smallest pool that can hold the largest request: requests must take turns."""
    return max([1] + [-(-(len(p) + n - 1) // block_size) for _, p, n, _ in specs if n > 0])


class InvariantChecker(SchedulerPlugin):
    """Checks every step against the state the scheduler was in when the step began."""

    def __init__(self):
        self.num_steps = 0

    def before_step(self, sched):
        self.step_id = sched.step_count
        self.budget = sched.max_tokens_per_step
        self.chunk = sched.prefill_chunk_size
        self.order = [r.req_id for r in sched.active]                 # arrival order
        self.decoding = [r.req_id for r in sched.active if r.state is RequestState.DECODE]
        self.prefilling = [r.req_id for r in sched.active if r.state is RequestState.PREFILL]
        self.prefill_pos = {r.req_id: r.prefill_pos for r in sched.active}

    def after_step(self, sched, stats):
        self.num_steps += 1
        chunk_ids = [rid for rid, _, _ in stats.prefill_chunks]
        in_step = list(stats.decode_ids) + chunk_ids
        assert stats.step_id == self.step_id
        # The budget, counted the same way twice.
        assert stats.num_tokens == len(stats.decode_ids) + sum(n for _, _, n in stats.prefill_chunks)
        assert stats.num_tokens <= self.budget
        # No request twice in a step; nobody before its arrival.
        assert len(set(in_step)) == len(in_step), in_step
        assert all(sched.requests[rid].arrival_step <= stats.step_id for rid in in_step)
        # Decode-first: the oldest running decodes, one token each; a prefill chunk only
        # when no decoding request was left out.
        assert list(stats.decode_ids) == self.decoding[:self.budget]
        if stats.prefill_chunks:
            assert set(self.decoding) <= set(stats.decode_ids)
        # Prefill chunks: arrival order, at most chunk tokens, continuing where the last ended.
        assert chunk_ids == sorted(chunk_ids, key=self.order.index)
        for rid, start, n in stats.prefill_chunks:
            assert 0 < n <= self.chunk
            assert start == self.prefill_pos[rid]
        # Budget left over means every prompt being prefilled got its chunk.
        if stats.num_tokens < self.budget:
            assert set(self.prefilling) <= set(chunk_ids)
        # KV accounting.
        kv, cache = stats.kv, sched.kv_cache
        assert kv.used_blocks + kv.free_blocks == kv.total_blocks
        assert kv.wasted_slots >= 0 and kv.reserved_blocks >= 0
        assert kv.tokens == len(cache)
        if isinstance(cache, PagedKVCache):
            assert kv.wasted_slots < max(1, len(cache.block_tables)) * cache.block_size
            if cache.allocator.bounded:
                assert kv.reserved_blocks <= kv.free_blocks
        for rid in cache.req_ids:
            r = sched.requests[rid]
            assert cache.seq_len(rid) == r.prefill_pos + max(r.num_generated - 1, 0)
            assert cache.seq_len(rid) <= r.max_kv_tokens


def cache_kwargs(name, specs):
    kwargs = dict(CACHES[name])
    if kwargs.get("num_blocks") == "tight":
        kwargs["num_blocks"] = tight_pool(specs, kwargs["block_size"])
    return kwargs


GRID = [pytest.param(seed, budget, chunk, name, id=f"w{seed}-budget{budget}-chunk{chunk}-{name}")
        for seed in WORKLOAD_SEEDS for budget in BUDGETS for chunk in CHUNKS for name in CACHES]


@pytest.mark.parametrize("seed, budget, chunk, cache", GRID)
def test_scheduled_tokens_equal_generating_each_request_alone(seed, budget, chunk, cache):
    specs = make_workload(seed)
    checker = InvariantChecker()
    sched, history = run_workload(specs, plugins=[checker], max_tokens_per_step=budget,
                                  prefill_chunk_size=chunk, **cache_kwargs(cache, specs))
    check_run(specs, sched, history)
    assert checker.num_steps == len(history) > 0


def check_run(specs, sched, history):
    """Every request finished once with the reference tokens; all KV memory returned."""
    assert not sched.has_unfinished
    assert sorted(r.req_id for r in sched.finished) == [rid for rid, _, _, _ in specs]
    finished_in_steps = [rid for s in history for rid in s.finished_ids]
    assert sorted(finished_in_steps) == sorted(r.req_id for r in sched.finished)
    for rid, prompt, n, arrival in specs:
        r = sched.requests[rid]
        assert r.generated == reference_tokens(prompt, n), (rid, prompt, n)
        assert r.token_steps == sorted(set(r.token_steps))         # one token per step at most
        assert r.finish_step == (r.token_steps[-1] if n else arrival)
    # All memory back.
    kv = sched.kv_cache.usage()
    assert (kv.tokens, kv.used_blocks, kv.reserved_blocks) == (0, 0, 0)
    assert kv.free_blocks == kv.total_blocks


def test_the_workloads_cover_the_interesting_cases():
    # The grid above is only as good as its workloads: check they contain what it must exercise.
    specs = [s for seed in WORKLOAD_SEEDS for s in make_workload(seed)]
    prompt_lens = {len(p) for _, p, _, _ in specs}
    max_new = {n for _, _, n, _ in specs}
    arrivals = {a for _, _, _, a in specs}
    assert min(prompt_lens) <= 2 and max(prompt_lens) > 16        # one-token-ish and > one chunk
    assert 0 in max_new and 1 in max_new and max(max_new) >= 5
    assert 0 in arrivals and max(arrivals) > 0
    for seed in WORKLOAD_SEEDS:
        assert 3 <= len(make_workload(seed)) <= 6


class KnobShaker(SchedulerPlugin):
    """Changes the budget and chunk size before every step (plugins may do that)."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)

    def before_step(self, sched):
        sched.max_tokens_per_step = int(self.rng.integers(1, 12))
        sched.prefill_chunk_size = int(self.rng.integers(1, 8))


@pytest.mark.parametrize("cache", ["dense", "paged-bs4", "paged-bs1-tight"])
@pytest.mark.parametrize("seed", WORKLOAD_SEEDS)
def test_tokens_unchanged_when_knobs_change_every_step(seed, cache):
    specs = make_workload(seed)
    checker = InvariantChecker()
    # The shaker runs first, so the checker sees the knobs the step really uses.
    sched, history = run_workload(specs, plugins=[KnobShaker(seed), checker], max_tokens_per_step=4,
                                  prefill_chunk_size=4, **cache_kwargs(cache, specs))
    check_run(specs, sched, history)
    assert len({s.num_tokens for s in history}) > 2


def test_tight_pools_really_make_requests_wait():
    # In a tight pool some request must wait for memory although the budget has room.
    waited = 0
    for seed in WORKLOAD_SEEDS:
        specs = make_workload(seed)
        sched, _ = run_workload(specs, max_tokens_per_step=64, prefill_chunk_size=16,
                                **cache_kwargs("paged-bs4-tight", specs))
        waited += sum(r.admitted_step > r.arrival_step for r in sched.finished if r.max_new_tokens)
    assert waited >= len(WORKLOAD_SEEDS)
