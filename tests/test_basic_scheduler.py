"""The basic scheduler, tested against the full one and against ``generate``.

:class:`BasicScheduler` is the engine without options (a fixed paged pool, decode-first, no
prefix caching). Like minbpe's tokenizers, the simple version and the full one are checked
against each other: on the same workload with the same knobs they must take exactly the same
steps (every :class:`StepStats` equal, KV usage and preemption records included), and both
must give every request the tokens of generating it alone.
"""

from __future__ import annotations

import pytest

from cblab_src import Request, Scheduler, TinyLLM
from cblab_src.core.basic_scheduler import BasicScheduler

from conftest import MODEL, make_prefix_workload, make_requests, make_workload
from test_invariants import InvariantChecker, check_run, tight_pool

KNOBS = [(budget, chunk, block_size, pool)
         for budget, chunk in [(1, 1), (3, 4), (8, 4), (8, 16), (64, 16)]
         for block_size in (1, 4, 16) for pool in ("tight", "roomy")]


def num_blocks(specs, block_size, pool):
    return tight_pool(specs, block_size) if pool == "tight" else 64


def run(scheduler, specs, checker=None):
    """Add the workload, then step to the end, checking every step if a checker is given."""
    for r in make_requests(specs):
        scheduler.add_request(r)
    history = []
    while scheduler.has_unfinished:
        if checker:
            checker.before_step(scheduler)
        history.append(scheduler.step())
        if checker:
            checker.after_step(scheduler, history[-1])
    return history


def workload(seed):
    return make_workload(seed) if seed < 8 else make_prefix_workload(seed)


@pytest.mark.parametrize("budget, chunk, block_size, pool", KNOBS,
                         ids=[f"b{b}-c{c}-bs{s}-{p}" for b, c, s, p in KNOBS])
def test_basic_and_full_schedulers_take_the_same_steps(budget, chunk, block_size, pool):
    for seed in range(12):
        specs = workload(seed)
        knobs = dict(max_tokens_per_step=budget, prefill_chunk_size=chunk, block_size=block_size,
                     num_blocks=num_blocks(specs, block_size, pool))
        basic, full = BasicScheduler(MODEL, **knobs), Scheduler(MODEL, **knobs)
        assert run(basic, specs) == run(full, specs), (seed, knobs)
        assert [r.generated for r in basic.finished] == [r.generated for r in full.finished]


@pytest.mark.parametrize("budget, chunk, block_size, pool", KNOBS[::3])
def test_basic_scheduler_keeps_every_invariant_and_matches_generate(budget, chunk, block_size,
                                                                    pool):
    for seed in range(12):
        specs = workload(seed)
        sched = BasicScheduler(MODEL, max_tokens_per_step=budget, prefill_chunk_size=chunk,
                               block_size=block_size, num_blocks=num_blocks(specs, block_size, pool))
        checker = InvariantChecker()
        history = run(sched, specs, checker)
        check_run(specs, sched, history)          # tokens == generate alone, work, memory
        assert checker.num_steps == len(history) > 0


def test_basic_scheduler_hand_traced():
    # A: prompt 5, 3 new; B: prompt 3, 2 new; budget 6, chunk 3, blocks of 2. Step 0: both
    # prefill 3 (B's prompt is complete: its first token). Step 1: B decodes first (its second
    # and last token), then A's last 2 prompt tokens (A's first token). Steps 2-3: A decodes.
    sched = BasicScheduler(TinyLLM(seed=0), max_tokens_per_step=6, prefill_chunk_size=3,
                           block_size=2, num_blocks=8)
    a = sched.add_request(Request("A", [1, 2, 3, 4, 5], 3))
    b = sched.add_request(Request("B", [6, 7, 8], 2))
    history = sched.run()
    assert [s.scheduled for s in history] == [(("A", 3), ("B", 3)), (("B", 1), ("A", 2)),
                                              (("A", 1),), (("A", 1),)]
    assert [s.finished_ids for s in history] == [(), ("B",), (), ("A",)]
    assert (a.num_generated, b.num_generated, sched.kv_cache.usage().used_blocks) == (3, 2, 0)


def test_a_request_that_can_never_fit_is_refused():
    sched = BasicScheduler(MODEL, max_tokens_per_step=4, prefill_chunk_size=4, block_size=2,
                           num_blocks=2)
    with pytest.raises(ValueError, match="can never fit"):
        sched.add_request(Request("big", list(range(6)), 2))
    assert not sched.has_unfinished
