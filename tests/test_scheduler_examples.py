"""Small schedules traced by hand from the policy in ``cblab_src.core.scheduler``'s docstring."""

import pytest

from cblab_src import LoggingPlugin, Preemption, Request, RequestState, Scheduler, SchedulerPlugin
from cblab_src.core.null_model import NO_MODEL_TOKEN
from cblab_src.monitoring import block_owners

from conftest import MODEL, RecordingLLM, make_workload, reference_tokens, run_workload

A_PROMPT = [11, 22, 33, 44, 55]
B_PROMPT = [7, 8, 9, 10]


def two_request_scheduler(model=MODEL, **kwargs):
    """A: prompt 5, max_new 3; B: prompt 4, max_new 2; both at step 0; budget 6, chunk 3."""
    sched = Scheduler(model, max_tokens_per_step=6, prefill_chunk_size=3, **kwargs)
    a = sched.add_request(Request("A", A_PROMPT, max_new_tokens=3))
    b = sched.add_request(Request("B", B_PROMPT, max_new_tokens=2))
    return sched, a, b


# By hand (decodes first, then chunks of <= 3 in arrival order, <= 6 tokens a step):
# step 0: no decodes; A chunk 0..2 (3), B chunk 0..2 (3): budget used up.
# step 1: no decodes; A chunk 3..4 (2) completes A -> A's token 1;
#         B chunk 3 (1) completes B -> B's token 1.
# step 2: decodes A, B -> A's token 2, B's token 2: B has its 2 tokens and finishes.
# step 3: decode A -> A's token 3: A finishes.
EXPECTED_SCHEDULE = [
    # (decode_ids, prefill_chunks as (req_id, start, length), finished_ids, num_tokens)
    ((), (("A", 0, 3), ("B", 0, 3)), (), 6),
    ((), (("A", 3, 2), ("B", 3, 1)), (), 3),
    (("A", "B"), (), ("B",), 2),
    (("A",), (), ("A",), 1),
]


@pytest.mark.parametrize("kv_layout", ["dense", "paged"])
def test_hand_traced_two_request_schedule(kv_layout):
    sched, a, b = two_request_scheduler(kv_layout=kv_layout, block_size=2)
    history = sched.run()
    got = [(s.decode_ids, s.prefill_chunks, s.finished_ids, s.num_tokens) for s in history]
    assert got == EXPECTED_SCHEDULE
    assert [s.step_id for s in history] == [0, 1, 2, 3]
    assert [[rid for rid, _ in s.sampled] for s in history] == [[], ["A", "B"], ["A", "B"], ["A"]]
    assert a.generated == reference_tokens(A_PROMPT, 3)
    assert b.generated == reference_tokens(B_PROMPT, 2)
    assert (a.admitted_step, a.first_token_step, a.token_steps, a.finish_step) == (0, 1, [1, 2, 3], 3)
    assert (b.admitted_step, b.first_token_step, b.token_steps, b.finish_step) == (0, 1, [1, 2], 2)
    assert [r.req_id for r in sched.finished] == ["B", "A"]
    assert [(s.num_waiting, s.num_running) for s in history] == [(0, 2), (0, 2), (0, 1), (0, 0)]


def test_hand_traced_schedule_step_by_step_states():
    sched, a, b = two_request_scheduler()
    assert (a.state, b.state) == (RequestState.WAITING, RequestState.WAITING)
    sched.step()
    assert (a.state, b.state) == (RequestState.PREFILL, RequestState.PREFILL)
    assert (a.prefill_pos, b.prefill_pos) == (3, 3)
    sched.step()
    assert (a.state, b.state) == (RequestState.DECODE, RequestState.DECODE)
    sched.step()
    assert (a.state, b.state) == (RequestState.DECODE, RequestState.FINISHED)
    assert [r.req_id for r in sched.active] == ["A"] and [r.req_id for r in sched.running] == ["A"]
    sched.step()
    assert a.state is RequestState.FINISHED and not sched.has_unfinished


def test_kv_holds_the_prompt_after_prefill_and_p_plus_n_minus_1_at_the_end():
    recorder = RecordingLLM(seed=0)
    sched, a, b = two_request_scheduler(recorder, kv_layout="paged", block_size=2)
    sched.run()
    # KV lengths right after each forward pass (before finished requests free their memory).
    assert recorder.kv_lens == [
        {"A": 3, "B": 3},
        {"A": 5, "B": 4},          # prompts complete: len(prompt) each
        {"A": 6, "B": 5},          # B's last step: 4 + 2 - 1
        {"A": 7},                  # A's last step: 5 + 3 - 1
    ]
    assert len(sched.kv_cache) == 0
    usage = sched.kv_cache.usage()
    assert usage.used_blocks == 0 and usage.free_blocks == usage.total_blocks
    assert usage.cached_blocks == 0                     # prefix caching is off by default


def test_kv_after_prefill_seen_between_steps():
    sched, a, b = two_request_scheduler()
    sched.run(max_steps=2)
    cache = sched.kv_cache
    assert (cache.num_computed_tokens("A"), cache.num_computed_tokens("B")) == (5, 4)
    sched.run(max_steps=1)                 # B finished and freed its memory
    assert "B" not in sched.kv_cache and sched.kv_cache.num_computed_tokens("A") == 6


def test_arrival_step_is_respected_and_idle_steps_are_empty():
    sched = Scheduler(MODEL, max_tokens_per_step=8, prefill_chunk_size=8)
    late = sched.add_request(Request("late", [1, 2, 3], max_new_tokens=2, arrival_step=3))
    history = sched.run()
    assert [s.num_tokens for s in history] == [0, 0, 0, 3, 1]
    assert all(s.decode_ids == () and s.prefill_chunks == () for s in history[:3])
    assert [s.num_waiting for s in history] == [0, 0, 0, 0, 0]
    assert history[3].prefill_chunks == (("late", 0, 3),)
    assert (late.admitted_step, late.first_token_step, late.finish_step) == (3, 3, 4)
    assert late.generated == reference_tokens([1, 2, 3], 2)


def test_a_late_request_is_not_scheduled_before_it_arrives():
    sched = Scheduler(MODEL, max_tokens_per_step=8, prefill_chunk_size=2)
    sched.add_request(Request("early", [5] * 6, max_new_tokens=4))
    late = sched.add_request(Request("late", [6, 7], max_new_tokens=1, arrival_step=3))
    history = sched.run()
    seen = [s.step_id for s in history
            if "late" in s.decode_ids or any(rid == "late" for rid, _, _ in s.prefill_chunks)]
    assert seen == [3]
    assert late.generated == reference_tokens([6, 7], 1)


class KVWatcher(SchedulerPlugin):
    """Records, before and after every step, which requests hold KV memory."""

    def __init__(self):
        self.holders = []

    def before_step(self, scheduler):
        self.holders.append(set(scheduler.kv_cache.req_ids))

    def after_step(self, scheduler, stats):
        self.holders.append(set(scheduler.kv_cache.req_ids))


@pytest.mark.parametrize("arrival", [0, 2])
def test_zero_new_tokens_finishes_with_no_output_and_no_kv(arrival):
    watcher = KVWatcher()
    recorder = RecordingLLM(seed=0)
    sched = Scheduler(recorder, max_tokens_per_step=4, prefill_chunk_size=4)
    sched.plugins.register_scheduler_plugin(watcher)
    other = sched.add_request(Request("other", [1, 2, 3, 4, 5], max_new_tokens=3))
    zero = sched.add_request(Request("zero", [9, 9, 9], max_new_tokens=0, arrival_step=arrival))
    history = sched.run()
    assert zero.generated == [] and zero.state is RequestState.FINISHED
    assert zero.finish_step == arrival and zero.first_token_step is None
    assert [s.finished_ids for s in history].count(("zero",)) == 1
    assert "zero" in history[arrival].finished_ids
    assert all("zero" not in h for h in watcher.holders)
    assert all("zero" not in lens for lens in recorder.kv_lens)    # never computed
    assert all(rid != "zero" for s in history for rid, _ in s.sampled)
    assert other.generated == reference_tokens([1, 2, 3, 4, 5], 3)


def test_all_blocks_free_at_the_end_of_a_random_workload():
    sched, _ = run_workload(make_workload(3), max_tokens_per_step=5, prefill_chunk_size=3,
                            block_size=4, num_blocks=12)
    usage = sched.kv_cache.usage()
    assert (usage.tokens, usage.used_blocks, usage.cached_blocks, usage.shared_blocks) == \
           (0, 0, 0, 0)
    assert usage.free_blocks == usage.total_blocks == 12
    assert sched.kv_cache.block_tables == {}
    assert all(owner is None for owner in block_owners(sched.kv_cache))
    assert set(sched.kv_cache.block_pool.ref_counts) == {0}


def test_step_stats_is_a_mapping():
    sched, _, _ = two_request_scheduler()
    stats = sched.step()
    as_dict = dict(**stats)
    assert list(as_dict) == ["step_id", "decode_ids", "prefill_chunks", "num_tokens", "sampled",
                             "finished_ids", "num_waiting", "num_running", "kv", "preemptions",
                             "cached_tokens", "decode_context_lens", "batch_order",
                             "scheduled", "preempted_ids", "num_decode_tokens",
                             "num_prefill_tokens"]
    assert as_dict["num_tokens"] == stats["num_tokens"] == stats.num_tokens == 6
    assert stats["prefill_chunks"] == (("A", 0, 3), ("B", 0, 3))
    assert stats["scheduled"] == (("A", 3), ("B", 3))
    assert stats["batch_order"] == ("A", "B")
    assert len(stats) == 17 and "kv" in stats
    # Every public name reads the same both ways, the derived ones included.
    assert all(stats[name] == getattr(stats, name) for name in stats)
    assert (stats["num_decode_tokens"], stats["num_prefill_tokens"]) == (0, 6)
    assert (stats.preemptions, stats["preempted_ids"], stats.cached_tokens) == ((), (), 0)
    with pytest.raises(KeyError):
        stats["nope"]


def fcfs_scheduler(**kwargs):
    """Pool: 4 blocks of 4 slots; budget 64, chunk 16; all three requests arrive at step 0.

    big0: prompt 8, 5 new -> at most 8 + 5 - 1 = 12 tokens (3 blocks);
    big1: prompt 8, 2 new -> at most 9 tokens (3 blocks); small: prompt 2, 2 new -> 3 tokens.
    """
    sched = Scheduler(MODEL, max_tokens_per_step=64, prefill_chunk_size=16, block_size=4,
                      num_blocks=4, **kwargs)
    log = sched.plugins.register_scheduler_plugin(LoggingPlugin())
    reqs = [sched.add_request(Request("big0", list(range(8)), max_new_tokens=5)),
            sched.add_request(Request("big1", list(range(10, 18)), max_new_tokens=2)),
            sched.add_request(Request("small", [1, 2], max_new_tokens=2))]
    return sched, log, reqs


def test_fcfs_a_small_later_request_does_not_overtake_a_blocked_one():
    # By hand, blocks allocated on demand (lowest free id first):
    # step 0: big0 admitted, its first chunk (8 tokens) takes blocks 0, 1; big1 likewise takes
    #         2, 3; small's chunk needs 1 block, 0 available: admission stops. Both big
    #         requests sample their first token.
    # step 1: big0's decode writes token 8 and needs a 3rd block; none is free, so the youngest
    #         running request, big1, is preempted (8 cached tokens thrown away); big0 takes
    #         block 2. No admission in a step that had to preempt.
    # steps 2-4: big0 decodes (tokens 9-11 fit its 3rd block) and finishes in step 4. big1 is
    #         first in the queue again: re-admitting it means recomputing its prompt and its
    #         token, 9 tokens = 3 blocks, but only 1 is free; small (1 block) would fit, yet
    #         must not overtake big1 (first come, first served).
    # step 5: big1 is admitted and recomputes 9 tokens in one chunk, which samples its 2nd and
    #         last token; small is admitted after it (1 of 4 - 3 blocks left) and prefills.
    # step 6: small decodes its last token.
    sched, log, (big0, big1, small) = fcfs_scheduler()
    history = sched.run()
    assert log.lines == [
        "[step 0] decode=0 prefill=16 reqs=['big0', 'big1']",
        "[step 1] decode=1 prefill=0 reqs=['big0'] "
        "preempted=[big1 (req big0 needed 1 block, 0 available)]",
        "[step 2] decode=1 prefill=0 reqs=['big0']",
        "[step 3] decode=1 prefill=0 reqs=['big0']",
        "[step 4] decode=1 prefill=0 reqs=['big0'] finished=['big0']",
        "[step 5] decode=0 prefill=11 reqs=['big1', 'small'] finished=['big1']",
        "[step 6] decode=1 prefill=0 reqs=['small'] finished=['small']",
    ]
    assert [s.num_waiting for s in history] == [1, 2, 2, 2, 2, 0, 0]
    assert [s.kv.used_blocks for s in history] == [4, 3, 3, 3, 0, 1, 0]    # after each step
    assert history[1].preemptions == (Preemption("big1", "big0", 1, 0, 8),)
    assert (big0.admitted_step, big1.admitted_step, small.admitted_step) == (0, 0, 5)
    assert (big1.preempted_steps, big1.resumed_steps, big1.token_steps) == ([1], [5], [0, 5])
    assert (sched.counters.preemptions, sched.counters.recomputed_tokens) == (1, 8)
    for r in (big0, big1, small):
        assert r.generated == reference_tokens(r.prompt, r.max_new_tokens)


def test_watermark_admits_later_instead_of_preempting():
    # The same workload keeping 1 block free at admission while others run:
    # step 0: big0 admitted (nothing runs yet: no watermark), blocks 0, 1. big1 needs 2 blocks
    #         + 1 kept free = 3 > 2 available: it waits, and small behind it.
    # steps 1-4: big0 decodes, taking block 2 in step 1, and finishes in step 4; big1 keeps
    #         waiting (2 + 1 > 1 available).
    # step 5: big1 admitted into the empty pool (blocks 0, 1); small needs 1 + 1 <= 2: admitted.
    # step 6: big1's decode takes block 3 (the one kept free); both finish. No preemption,
    #         nothing recomputed, same number of steps; big1's first token came 5 steps later.
    sched, log, (big0, big1, small) = fcfs_scheduler(watermark_blocks=1)
    history = sched.run()
    assert log.lines == [
        "[step 0] decode=0 prefill=8 reqs=['big0']",
        "[step 1] decode=1 prefill=0 reqs=['big0']",
        "[step 2] decode=1 prefill=0 reqs=['big0']",
        "[step 3] decode=1 prefill=0 reqs=['big0']",
        "[step 4] decode=1 prefill=0 reqs=['big0'] finished=['big0']",
        "[step 5] decode=0 prefill=10 reqs=['big1', 'small']",
        "[step 6] decode=2 prefill=0 reqs=['big1', 'small'] finished=['big1', 'small']",
    ]
    assert [s.kv.used_blocks for s in history] == [2, 3, 3, 3, 0, 3, 0]
    assert (sched.counters.preemptions, sched.counters.recomputed_tokens) == (0, 0)
    assert (big0.admitted_step, big1.admitted_step, small.admitted_step) == (0, 5, 5)
    assert big1.first_token_step == 5
    for r in (big0, big1, small):
        assert r.generated == reference_tokens(r.prompt, r.max_new_tokens)


def test_scheduling_only_mode_runs_and_frees_everything():
    specs = make_workload(7)
    sched, history = run_workload(specs, None, max_tokens_per_step=4, prefill_chunk_size=2,
                                  block_size=4, num_blocks=16)
    assert len(sched.finished) == len(specs) and not sched.has_unfinished
    for rid, prompt, n, _ in specs:
        assert sched.requests[rid].generated == [NO_MODEL_TOKEN] * n    # no token id
    assert all(s.num_tokens <= 4 for s in history)
    usage = sched.kv_cache.usage()
    assert (usage.tokens, usage.used_blocks, usage.cached_blocks) == (0, 0, 0)
    assert usage.free_blocks == usage.total_blocks == 16
    assert not sched.kv_cache.has_storage


def test_scheduling_only_mode_follows_the_same_schedule():
    sched, _, _ = two_request_scheduler(model=None)
    got = [(s.decode_ids, s.prefill_chunks, s.finished_ids, s.num_tokens) for s in sched.run()]
    assert got == EXPECTED_SCHEDULE
