"""Soak: a long scheduling-only run with continuous Poisson arrivals.

100 000 steps of a server that never stops receiving requests (about 0.3 per step, prompts of
1-64 tokens, half of them starting with a shared 16-48 token "system prompt", 1-32 new tokens)
on a bounded pool of 24 blocks of 16 slots with prefix caching: the pool is small enough that
requests are preempted thousands of times, and cached prefixes are shared, kept after their
owners finish and evicted. At the end no block may be in use, the prefix cache's tables may
not hold more than the pool, and the Python heap must be no larger than it was after warm-up.
The scheduler runs in the default configuration a learner would leave running (nothing is
drained by hand): it remembers the last ``keep_finished`` (10 000) finished requests and
forgets older ones, so once that many have finished nothing may accumulate. Marked slow; CI
still runs it.
"""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np
import pytest

from cblab_src import Request, Scheduler

STEPS = 100_000
WARMUP = 40_000        # by then more than keep_finished (10 000) requests have finished
RATE = 0.3             # mean arrivals per step
NUM_BLOCKS = 24
HEAP_SLACK = 64_000    # bytes of allowed noise (small dict resizes)
SYSTEM_PROMPT = np.random.default_rng(1).integers(0, 128, 48).tolist()


def live_heap() -> int:
    """Bytes traced now, after a full collection (which also empties CPython's free lists,
    so what remains is memory something still holds)."""
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def arrivals(rng: np.random.Generator, step: int, next_id: int) -> list[Request]:
    """This step's new requests: a Poisson number of them, random lengths, half of them
    continuing a prefix of the shared system prompt."""
    out = []
    for i in range(int(rng.poisson(RATE))):
        prompt = rng.integers(0, 128, rng.integers(1, 65)).tolist()
        if rng.random() < 0.5:
            prompt = SYSTEM_PROMPT[:int(rng.integers(16, 49))] + prompt[:16]
        out.append(Request(next_id + i, prompt, int(rng.integers(1, 33)), arrival_step=step))
    return out


@pytest.mark.slow
def test_long_run_returns_every_block_and_keeps_memory_flat():
    rng = np.random.default_rng(0)
    sched = Scheduler(None, max_tokens_per_step=64, prefill_chunk_size=32, block_size=16,
                      num_blocks=NUM_BLOCKS, enable_prefix_caching=True)
    next_id, finished = 0, 0
    tracemalloc.start()
    try:
        for step in range(STEPS):
            if step == WARMUP:
                heap_after_warmup = live_heap()
            if step < STEPS - 2_000:        # stop arrivals near the end so the queue drains
                for r in arrivals(rng, step, next_id):
                    sched.add_request(r)
                    next_id += 1
            finished += len(sched.step().finished_ids)
        heap_at_end = live_heap()
    finally:
        tracemalloc.stop()
    cache, alloc = sched.kv_cache, sched.kv_cache.block_pool
    usage = cache.usage()
    assert not sched.has_unfinished and finished == next_id > 20_000
    assert len(sched.finished) == sched.config.keep_finished == len(sched.requests)
    # The run really exercised preemption and the prefix cache.
    assert sched.counters.preemptions > 1_000 and sched.counters.prefix_hit_rate > 0.1
    assert alloc.num_evictions > 10_000
    # Nothing in use; what is not free is cached, and the cache's tables hold no more.
    assert usage.used_blocks == 0 and set(alloc.ref_counts) == {0}
    assert usage.free_blocks + usage.cached_blocks == usage.total_blocks == NUM_BLOCKS
    assert cache.block_tables == {} and cache.req_ids == []
    assert sum(alloc.hash_of(b) is not None for b in range(NUM_BLOCKS)) == usage.cached_blocks
    assert heap_at_end - heap_after_warmup < HEAP_SLACK, (heap_after_warmup, heap_at_end)
