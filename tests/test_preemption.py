"""Allocation on demand and preemption by recompute, traced by hand and checked on random
workloads: the youngest running request is preempted when a block is missing, its KV is freed,
it goes back to the front of the queue, and it later recomputes its prompt *and* the tokens it
had generated; its final tokens equal generating it alone."""

import pytest

from cblab_src import (LoggingPlugin, Preemption, Request, RequestState, Scheduler, StepStats,
                       KVUsage, format_step)

from conftest import (MODEL, check_block_accounting, check_work, make_prefix_workload,
                      make_workload, reference_tokens, run_workload)

A_PROMPT, B_PROMPT, C_PROMPT = [11, 22, 33, 44], [7, 8, 9, 10], [5, 6]


def abc_scheduler(**kwargs):
    """Pool of 4 blocks of 4 slots, budget 8, chunk 4.

    A: prompt 4, 6 new (at most 4 + 6 - 1 = 9 tokens, 3 blocks), at step 0;
    B: prompt 4, 6 new (3 blocks), at step 0; C: prompt 2, 2 new (1 block), at step 3.
    """
    sched = Scheduler(MODEL, max_tokens_per_step=8, prefill_chunk_size=4, block_size=4,
                      num_blocks=4, **kwargs)
    log = sched.plugins.register_scheduler_plugin(LoggingPlugin())
    reqs = [sched.add_request(Request("A", A_PROMPT, 6)),
            sched.add_request(Request("B", B_PROMPT, 6)),
            sched.add_request(Request("C", C_PROMPT, 2, arrival_step=3))]
    return sched, log, reqs


# By hand (decodes first, oldest first; a missing block preempts the youngest running request):
# step 0: A admitted, its 4-token prompt takes block 0; B likewise block 1; both sample token 1.
# step 1: A's decode writes its 5th token: a 2nd block (2); B's takes block 3. Pool full.
# steps 2-4: tokens 6, 7, 8 of each fit their 2 blocks. C arrives in step 3, but its first
#         chunk needs a block and none is free: it waits.
# step 5: A's decode needs a 3rd block, none is available: B, the youngest running request, is
#         preempted (its 8 cached tokens are thrown away, its 5 generated tokens kept). A takes
#         block 1, samples its 6th token and finishes. No admission in a step that preempted.
# step 6: B is first in the queue (it arrived before C): re-admitted, it must recompute its
#         prompt and 5 generated tokens, 9 tokens, chunk 4 at a time: (B, 0, 4). C admitted
#         behind it, prefills its 2 tokens and samples its first token. 6 tokens.
# step 7: C decodes its last token; B's 2nd recompute chunk (B, 4, 4).
# step 8: B's last chunk (B, 8, 1) completes what it had, so it samples its 6th token.
ABC_LOG = [
    "[step 0] decode=0 prefill=8 reqs=['A', 'B']",
    "[step 1] decode=2 prefill=0 reqs=['A', 'B']",
    "[step 2] decode=2 prefill=0 reqs=['A', 'B']",
    "[step 3] decode=2 prefill=0 reqs=['A', 'B']",
    "[step 4] decode=2 prefill=0 reqs=['A', 'B']",
    "[step 5] decode=1 prefill=0 reqs=['A'] finished=['A'] "
    "preempted=[B (req A needed 1 block, 0 available)]",
    "[step 6] decode=0 prefill=6 reqs=['B', 'C']",
    "[step 7] decode=1 prefill=4 reqs=['C', 'B'] finished=['C']",
    "[step 8] decode=0 prefill=1 reqs=['B'] finished=['B']",
]


def test_hand_traced_preemption():
    sched, log, (a, b, c) = abc_scheduler()
    history = sched.run()
    assert log.lines == ABC_LOG
    assert [s.prefill_chunks for s in history[6:]] == [(("B", 0, 4), ("C", 0, 2)),
                                                      (("B", 4, 4),), (("B", 8, 1),)]
    assert [s.preempted_ids for s in history] == [()] * 5 + [("B",)] + [()] * 3
    assert history[5].preemptions == (Preemption("B", "A", blocks_needed=1, blocks_available=0,
                                                 recomputed_tokens=8),)
    assert [s.num_waiting for s in history] == [0, 0, 0, 1, 1, 2, 0, 0, 0]
    assert [s.kv.used_blocks for s in history] == [2, 4, 4, 4, 4, 0, 2, 2, 0]
    assert (b.admitted_step, b.preempted_steps, b.resumed_steps) == (0, [5], [6])
    assert b.token_steps == [0, 1, 2, 3, 4, 8] and c.token_steps == [6, 7]
    assert (sched.counters.preemptions, sched.counters.recomputed_tokens) == (1, 8)
    for r in (a, b, c):
        assert r.generated == reference_tokens(r.prompt, r.max_new_tokens)
        assert r.finish_reason.value == "length"
    # B was given 4 + 4 (decodes) + 4 + 4 + 1 = 17 tokens: the 4 + 6 - 1 = 9 it finally holds,
    # plus the 8 thrown away.
    b_tokens = sum(n for s in history for rid, _, n in s.prefill_chunks if rid == "B")
    b_tokens += sum(s.decode_ids.count("B") for s in history)
    assert b_tokens == b.max_kv_tokens + 8 == 17
    check_work(history, sched)


def test_hand_traced_states_and_kv_around_the_preemption():
    sched, _, (a, b, c) = abc_scheduler()
    sched.run(max_steps=5)
    assert (sched.kv_cache.block_tables, b.num_computed_tokens) == ({"A": [0, 2], "B": [1, 3]}, 8)
    stats = sched.step()                                    # step 5: B preempted, A finishes
    assert b.state is RequestState.WAITING and "B" not in sched.kv_cache
    assert (b.num_computed_tokens, b.num_generated, b.tokens_to_compute) == (0, 5, 9)
    assert [r.req_id for r in sched.waiting] == ["B", "C"]  # B at the front of the queue
    assert stats.kv.used_blocks == 0 and a.finished
    sched.step()                                            # step 6
    assert sched.kv_cache.block_tables == {"B": [0], "C": [1]}
    assert (b.state, b.num_computed_tokens, c.state) == (RequestState.PREFILL, 4,
                                                         RequestState.DECODE)
    assert sched.kv_cache.num_computed_tokens("B") == b.num_computed_tokens == 4


def self_preemption_scheduler():
    """Pool of 3 blocks of 4, budget 8, chunk 4. A: prompt 4, 4 new; B: prompt 4, 3 new."""
    sched = Scheduler(MODEL, max_tokens_per_step=8, prefill_chunk_size=4, block_size=4,
                      num_blocks=3)
    log = sched.plugins.register_scheduler_plugin(LoggingPlugin())
    a = sched.add_request(Request("A", A_PROMPT, 4))
    b = sched.add_request(Request("B", B_PROMPT, 3))
    return sched, log, a, b


def test_hand_traced_request_preempting_itself():
    # step 0: A takes block 0, B block 1; both sample token 1. One block (2) is free.
    # step 1: A's decode takes block 2. B's decode needs a block, none is left, and the
    #         youngest running request is B itself: B is preempted for its own token.
    # step 2: A decodes (its 3rd token fits block 2). B is re-admitted: its first chunk (4 of
    #         its 5 tokens: prompt + 1 generated) needs 1 block and block 1 is free.
    # step 3: A decodes its 4th token and finishes, but its blocks come back only after the
    #         step; B's last recompute token needs a 2nd block now: B preempts itself again.
    # step 4: B re-admitted into the empty pool: (B, 0, 4); step 5: (B, 4, 1) samples its 2nd
    #         token; step 6: it decodes its 3rd.
    sched, log, a, b = self_preemption_scheduler()
    history = sched.run()
    assert log.lines == [
        "[step 0] decode=0 prefill=8 reqs=['A', 'B']",
        "[step 1] decode=1 prefill=0 reqs=['A'] preempted=[B (req B needed 1 block, 0 available)]",
        "[step 2] decode=1 prefill=4 reqs=['A', 'B']",
        "[step 3] decode=1 prefill=0 reqs=['A'] finished=['A'] "
        "preempted=[B (req B needed 1 block, 0 available)]",
        "[step 4] decode=0 prefill=4 reqs=['B']",
        "[step 5] decode=0 prefill=1 reqs=['B']",
        "[step 6] decode=1 prefill=0 reqs=['B'] finished=['B']",
    ]
    assert b.preempted_steps == [1, 3] and b.resumed_steps == [2, 4]
    # Thrown away: 4 tokens in step 1 (B's prompt), 4 in step 3 (its first recompute chunk).
    assert [p.recomputed_tokens for s in history for p in s.preemptions] == [4, 4]
    assert (sched.counters.preemptions, sched.counters.recomputed_tokens) == (2, 8)
    assert a.generated == reference_tokens(A_PROMPT, 4)
    assert b.generated == reference_tokens(B_PROMPT, 3)
    check_work(history, sched)


def test_preempted_ids_and_the_log_line():
    p = Preemption(req_id=2, for_req_id=0, blocks_needed=2, blocks_available=1,
                   recomputed_tokens=5)
    assert p.reason() == "req 0 needed 2 blocks, 1 available"
    assert Preemption(3, 3, 1, 0, 7).reason() == "req 3 needed 1 block, 0 available"
    stats = StepStats(step_id=3, decode_ids=(0,), prefill_chunks=(), num_tokens=1, sampled=(),
                      finished_ids=(), num_waiting=2, num_running=1,
                      kv=KVUsage(0, 0, 0, 0, 0, 0), preemptions=(p, Preemption(1, 0, 1, 0, 4)))
    assert stats.preempted_ids == (2, 1)
    assert format_step(stats) == ("[step 3] decode=1 prefill=0 reqs=[0] "
                                  "preempted=[2 (req 0 needed 2 blocks, 1 available), "
                                  "1 (req 0 needed 1 block, 0 available)]")


# ---------------------------------------------------------------------- random workloads
def tight_runs(**kwargs):
    """Every workload of the invariance grid, with the smallest pool its largest request fits."""
    for seed in range(12):
        specs = make_workload(seed) if seed < 8 else make_prefix_workload(seed)
        for budget, chunk in ((8, 4), (3, 1), (64, 16)):
            pool = max([1] + [-(-(len(p) + n - 1) // 4) for _, p, n, _ in specs if n > 0])
            yield run_workload(specs, max_tokens_per_step=budget, prefill_chunk_size=chunk,
                               block_size=4, num_blocks=pool, **kwargs)


@pytest.mark.parametrize("prefix_caching", [False, True])
def test_preempted_requests_generate_what_they_would_alone(prefix_caching):
    preempted = 0
    for sched, history in tight_runs(enable_prefix_caching=prefix_caching):
        for r in sched.finished:
            preempted += r.num_preemptions > 0
            assert r.generated == reference_tokens(r.prompt, r.max_new_tokens), r.req_id
        check_block_accounting(sched.kv_cache)
        assert sched.kv_cache.usage().used_blocks == 0
    assert preempted >= 40                       # the check above really covers preemption


def test_recompute_counter_equals_the_tokens_thrown_away():
    # Without prefix caching every token a request was given is computed once more for each
    # preemption that threw it away: tokens given - tokens finally held == tokens recomputed.
    for sched, history in tight_runs():
        extra = 0
        for r in sched.finished:
            given = sum(n for s in history for rid, _, n in s.prefill_chunks if rid == r.req_id)
            given += sum(s.decode_ids.count(r.req_id) for s in history)
            extra += given - r.max_kv_tokens
            thrown = sum(p.recomputed_tokens for s in history for p in s.preemptions
                         if p.req_id == r.req_id)
            assert given - r.max_kv_tokens == thrown, r.req_id
        assert sched.counters.recomputed_tokens == extra
        assert sched.counters.preemptions == sum(len(s.preemptions) for s in history)


# ---------------------------------------------------------------------- never fits
def test_a_request_that_can_never_fit_is_rejected_naming_num_blocks():
    sched = Scheduler(MODEL, max_tokens_per_step=8, prefill_chunk_size=4, block_size=4,
                      num_blocks=2)
    with pytest.raises(ValueError) as err:
        sched.add_request(Request("x", list(range(8)), 2))            # 9 tokens: 3 blocks
    assert str(err.value) == ("request 'x' can never fit: it needs 3 blocks (prompt 8 + "
                              "max_new_tokens 2 - 1 tokens) but num_blocks is 2")
    assert sched.requests == {} and not sched.has_unfinished
    fits = sched.add_request(Request("y", list(range(8)), 1))           # 8 tokens: 2 blocks
    sched.run()
    assert fits.generated == reference_tokens(list(range(8)), 1)


def test_the_watermark_never_stops_a_request_running_alone():
    # The watermark keeps blocks free only while others run: a request needing the whole pool
    # still runs (it alone can never be preempted).
    sched = Scheduler(MODEL, max_tokens_per_step=8, prefill_chunk_size=4, block_size=4,
                      num_blocks=3, watermark_blocks=2)
    big = sched.add_request(Request("big", list(range(9)), 4))          # 12 tokens: 3 blocks
    small = sched.add_request(Request("small", [1, 2], 2))
    history = sched.run()
    # Step 0: big's first chunk takes 1 block; small would need 1 + 2 kept free > 2 left.
    assert history[0].prefill_chunks == (("big", 0, 4),)
    assert small.admitted_step == big.finish_step + 1
    assert sched.counters.preemptions == 0
    assert big.generated == reference_tokens(list(range(9)), 4)
    assert small.generated == reference_tokens([1, 2], 2)
