"""Soak: a long scheduling-only run with continuous Poisson arrivals.

100 000 steps of a server that never stops receiving requests (about 0.3 per step, prompts of
1-64 tokens, 1-32 new tokens, a bounded pool of 64 blocks of 16 slots). At the end the pool
must be completely free and the Python heap no larger than it was after warm-up: finished
requests are drained every step, so nothing may accumulate. Marked slow; CI still runs it.
"""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np
import pytest

from cblab_src import Request, Scheduler

STEPS = 100_000
WARMUP = 10_000
RATE = 0.3             # mean arrivals per step
HEAP_SLACK = 64_000    # bytes of allowed noise (small dict resizes)


def live_heap() -> int:
    """Bytes traced now, after a full collection (which also empties CPython's free lists,
    so what remains is memory something still holds)."""
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def arrivals(rng: np.random.Generator, step: int, next_id: int) -> list[Request]:
    """This step's new requests: a Poisson number of them, random lengths."""
    n = int(rng.poisson(RATE))
    return [Request(next_id + i, rng.integers(0, 128, rng.integers(1, 65)).tolist(),
                    int(rng.integers(1, 33)), arrival_step=step) for i in range(n)]


@pytest.mark.slow
def test_long_run_returns_every_block_and_keeps_memory_flat():
    rng = np.random.default_rng(0)
    sched = Scheduler(None, max_tokens_per_step=64, prefill_chunk_size=32, block_size=16,
                      num_blocks=64)
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
            sched.step()
            finished += len(sched.drain_finished())
        heap_at_end = live_heap()
    finally:
        tracemalloc.stop()
    usage = sched.kv_cache.usage()
    assert not sched.has_unfinished and finished == next_id > 20_000
    assert usage.used_blocks == 0 and usage.reserved_blocks == 0
    assert usage.free_blocks == usage.total_blocks == 64
    assert heap_at_end - heap_after_warmup < HEAP_SLACK, (heap_after_warmup, heap_at_end)
