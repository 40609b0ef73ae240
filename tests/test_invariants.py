"""Batch invariance: whatever the budget, chunk size, KV layout, block size, pool size (tight
pools preempt), prefix caching or admission watermark, every request gets exactly the tokens of
``model.generate`` run on it alone — and every step keeps the scheduler's promises (budget,
decode-first, one chunk per request, first come first served, youngest-first preemption, KV
accounting)."""

import numpy as np
import pytest

from cblab_src import RequestState, SchedulerPlugin

from conftest import (check_block_accounting, check_work, make_prefix_workload, make_workload,
                      reference_tokens, run_workload)

# Seeds 0-7: random prompts; seeds 8-11: prompts sharing prefixes (prefix-cache hits).
WORKLOAD_SEEDS = list(range(12))
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
# The serving features, run on fewer random workloads (the run time) and every prefix one.
SERVING_CACHES = {
    "paged-bs4-prefix": dict(kv_layout="paged", block_size=4, enable_prefix_caching=True),
    "paged-bs2-tight-prefix": dict(kv_layout="paged", block_size=2, num_blocks="tight",
                                   enable_prefix_caching=True),
    "paged-bs4-tight-watermark": dict(kv_layout="paged", block_size=4, num_blocks="tight",
                                      watermark_blocks="one"),
}
SERVING_SEEDS = [0, 1, 2, 3, 8, 9, 10, 11]
CACHES.update(SERVING_CACHES)


def workload(seed):
    return make_workload(seed) if seed < 8 else make_prefix_workload(seed)


def tight_pool(specs, block_size):
    """The smallest pool that can hold the largest request: requests are preempted and wait."""
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
        self.running = [r.req_id for r in sched.running]             # oldest first
        self.waiting = [r.req_id for r in sched.waiting if r.max_new_tokens > 0]
        self.computed = {r.req_id: r.num_computed_tokens for r in sched.active}

    def after_step(self, sched, stats):
        self.num_steps += 1
        chunk_ids = [rid for rid, _, _ in stats.prefill_chunks]
        in_step = list(stats.decode_ids) + chunk_ids
        preempted = list(stats.preempted_ids)
        assert stats.step_id == self.step_id
        # The budget, counted the same way twice.
        assert stats.num_tokens == len(stats.decode_ids) + sum(n for _, _, n in stats.prefill_chunks)
        assert stats.num_tokens <= self.budget
        # No request twice in a step; nobody before its arrival.
        assert len(set(in_step)) == len(in_step), in_step
        assert all(sched.requests[rid].arrival_step <= stats.step_id for rid in in_step)
        # Preemption: the youngest running request goes first, then the next youngest...;
        # a preempted request does no work in the step, and its record is exact.
        assert preempted == self.running[::-1][:len(preempted)]
        assert not set(preempted) & set(in_step)
        for p in stats.preemptions:
            assert p.for_req_id in self.running and p.blocks_available < p.blocks_needed
            assert p.recomputed_tokens == self.computed[p.req_id]
            assert sched.requests[p.req_id].state is RequestState.WAITING
        # Decode-first: the oldest decoding requests not preempted decode, one token each; a
        # prefill chunk only when no such request was left out.
        survivors = [rid for rid in self.decoding if rid not in preempted]
        assert list(stats.decode_ids) == survivors[:self.budget]
        if stats.prefill_chunks:
            assert set(survivors) <= set(stats.decode_ids)
        # Prefill chunks: arrival order, at most chunk tokens, continuing where the cache ends.
        assert chunk_ids == sorted(chunk_ids, key=self.order.index)
        admitted = [rid for rid in chunk_ids if rid not in self.running]
        for rid, start, n in stats.prefill_chunks:
            assert 0 < n <= self.chunk
            if rid in self.running:
                assert start == self.computed[rid]
            elif getattr(sched.kv_cache, "enable_prefix_caching", False):
                assert start % sched.kv_cache.block_size == 0    # after its cached prefix
            else:
                assert start == 0                                # admitted now: from scratch
        assert stats.cached_tokens == sum(start for rid, start, _ in stats.prefill_chunks
                                          if rid in admitted)
        # First come, first served: the admitted are the oldest waiting; none after a preemption.
        assert admitted == self.waiting[:len(admitted)]
        assert not (admitted and preempted)
        # Budget left over means every prompt being prefilled (and not preempted) got its chunk.
        if stats.num_tokens < self.budget:
            assert set(self.prefilling) - set(preempted) <= set(chunk_ids)
        # KV accounting: the pool balances, and the cache holds exactly what each request has
        # computed, for exactly the running requests.
        kv, cache = stats.kv, sched.kv_cache
        assert kv == cache.usage()
        check_block_accounting(cache)
        assert set(cache.req_ids) == {r.req_id for r in sched.running}
        for rid in cache.req_ids:
            r = sched.requests[rid]
            assert cache.num_computed_tokens(rid) == r.num_computed_tokens <= r.max_kv_tokens


def cache_kwargs(name, specs):
    kwargs = dict(CACHES[name])
    if kwargs.get("num_blocks") == "tight":
        kwargs["num_blocks"] = tight_pool(specs, kwargs["block_size"])
    if kwargs.get("watermark_blocks") == "one":        # keep one block free, if the pool allows
        kwargs["watermark_blocks"] = min(1, kwargs["num_blocks"] - 1)
    return kwargs


GRID = [pytest.param(seed, budget, chunk, name, id=f"w{seed}-budget{budget}-chunk{chunk}-{name}")
        for seed in WORKLOAD_SEEDS for budget in BUDGETS for chunk in CHUNKS for name in CACHES
        if seed in (SERVING_SEEDS if name in SERVING_CACHES else range(8))]


@pytest.mark.parametrize("seed, budget, chunk, cache", GRID)
def test_scheduled_tokens_equal_generating_each_request_alone(seed, budget, chunk, cache):
    specs = workload(seed)
    checker = InvariantChecker()
    sched, history = run_workload(specs, plugins=[checker], max_tokens_per_step=budget,
                                  prefill_chunk_size=chunk, **cache_kwargs(cache, specs))
    check_run(specs, sched, history)
    assert checker.num_steps == len(history) > 0


def check_run(specs, sched, history):
    """Every request finished once with the reference tokens (preempted or not); every token
    of work is accounted for; all KV memory returned (only prefix-cache blocks may stay)."""
    assert not sched.has_unfinished
    assert sorted(r.req_id for r in sched.finished) == [rid for rid, _, _, _ in specs]
    finished_in_steps = [rid for s in history for rid in s.finished_ids]
    assert sorted(finished_in_steps) == sorted(r.req_id for r in sched.finished)
    for rid, prompt, n, arrival in specs:
        r = sched.requests[rid]
        assert r.generated == reference_tokens(prompt, n), (rid, prompt, n)
        assert r.token_steps == sorted(set(r.token_steps))         # one token per step at most
        assert r.finish_step == (r.token_steps[-1] if n else arrival)
    check_work(history, sched)
    # All memory back: nothing used; with prefix caching some blocks stay cached for reuse.
    kv = sched.kv_cache.usage()
    check_block_accounting(sched.kv_cache)
    assert (kv.tokens, kv.used_blocks, kv.shared_blocks) == (0, 0, 0)
    assert kv.free_blocks + kv.cached_blocks == kv.total_blocks
    assert kv.cached_blocks == 0 or sched.kv_cache.enable_prefix_caching


def test_the_workloads_cover_the_interesting_cases():
    # The grid above is only as good as its workloads: check they contain what it must exercise.
    specs = [s for seed in WORKLOAD_SEEDS for s in workload(seed)]
    prompt_lens = {len(p) for _, p, _, _ in specs}
    max_new = {n for _, _, n, _ in specs}
    arrivals = {a for _, _, _, a in specs}
    assert min(prompt_lens) <= 2 and max(prompt_lens) > 16        # one-token-ish and > one chunk
    assert 0 in max_new and 1 in max_new and max(max_new) >= 5
    assert 0 in arrivals and max(arrivals) > 0
    for seed in WORKLOAD_SEEDS:
        assert 3 <= len(workload(seed)) <= 6
    # The prefix workloads really share prefixes (and repeat a prompt exactly).
    prefix_specs = [workload(seed) for seed in WORKLOAD_SEEDS[8:]]
    assert all(len({p[:4] for _, p, _, _ in w}) < len(w) for w in prefix_specs)
    assert any(len({p for _, p, _, _ in w}) < len(w) for w in prefix_specs)


class KnobShaker(SchedulerPlugin):
    """Changes the budget and chunk size before every step (plugins may do that)."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)

    def before_step(self, sched):
        sched.max_tokens_per_step = int(self.rng.integers(1, 12))
        sched.prefill_chunk_size = int(self.rng.integers(1, 8))


@pytest.mark.parametrize("cache", ["dense", "paged-bs4", "paged-bs1-tight",
                                   "paged-bs2-tight-prefix"])
@pytest.mark.parametrize("seed", WORKLOAD_SEEDS)
def test_tokens_unchanged_when_knobs_change_every_step(seed, cache):
    specs = workload(seed)
    checker = InvariantChecker()
    # The shaker runs first, so the checker sees the knobs the step really uses.
    sched, history = run_workload(specs, plugins=[KnobShaker(seed), checker], max_tokens_per_step=4,
                                  prefill_chunk_size=4, **cache_kwargs(cache, specs))
    check_run(specs, sched, history)
    assert len({s.num_tokens for s in history}) > 2


def grid_runs(cache, budget=8, chunk=4):
    for seed in WORKLOAD_SEEDS:
        specs = workload(seed)
        yield run_workload(specs, max_tokens_per_step=budget, prefill_chunk_size=chunk,
                           **cache_kwargs(cache, specs))


def test_tight_pools_really_preempt_and_make_requests_wait():
    # Allocation on demand admits a request as soon as its first chunk fits, so a tight pool
    # runs out mid-generation: the grid really exercises preemption (recomputing tokens, then
    # matching the reference all the same) and requests really wait for admission.
    preempted_runs = recomputed = waited = 0
    for sched, _ in grid_runs("paged-bs4-tight"):
        preempted_runs += sched.counters.preemptions > 0
        recomputed += sched.counters.recomputed_tokens
        waited += sum(r.admitted_step > r.arrival_step for r in sched.finished if r.max_new_tokens)
    assert preempted_runs == len(WORKLOAD_SEEDS) and recomputed > 0
    assert waited >= len(WORKLOAD_SEEDS)


def test_prefix_caching_grid_really_hits_and_unbounded_pools_never_preempt():
    hits = [sched.counters.cached_prompt_tokens for sched, _ in grid_runs("paged-bs4-prefix")]
    assert sum(h > 0 for h in hits[8:]) == 4 and sum(hits[:8]) == 0   # only shared prefixes hit
    assert all(sched.counters.preemptions == 0 for sched, _ in grid_runs("paged-bs4", budget=8))


def test_the_watermark_trades_preemptions_for_waiting():
    # Same workloads and tight pools: keeping a block free at admission never preempts more.
    plain = [s.counters.preemptions for s, _ in grid_runs("paged-bs4-tight")]
    kept = [s.counters.preemptions for s, _ in grid_runs("paged-bs4-tight-watermark")]
    assert sum(kept) < sum(plain)
