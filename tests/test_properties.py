"""Property-based tests: the engine's invariants over random workloads (Hypothesis).

Each property is its own test, run over workloads Hypothesis draws: 1-6 requests arriving at
steps 0-5, prompts from 1 token to the model's limit (often starting with a shared prefix),
``max_new_tokens`` 0-6, budgets from 1, chunk sizes above and below the budget, both KV
layouts, block sizes 1-64, pools from exactly tight (the largest request just fits, so
requests are preempted) to unbounded, prefix caching on and off, admission watermarks 0-3.

No starvation, the bound. Call the *head* the oldest arrived, unfinished request with
``N > 0`` (a request with ``N = 0`` finishes in its arrival step and never runs).

1. Running requests are always the oldest ones: admission is first come, first served and
   preemption takes the youngest running request, so the running set is a prefix of the queue.
   Hence if the head is waiting nothing runs, the whole pool is available, no watermark applies
   (it only holds while others run), no decode takes budget, and the head is admitted at once.
2. The head is never preempted: a victim is the youngest running request, which is the head
   only when it runs alone, and alone it always fits (``add_request`` refuses a request needing
   more than ``num_blocks`` blocks; blocks cached for prefix reuse are evictable).
3. So in every step the head either computes >= 1 token that is never thrown away (an
   admission's first chunk, a later chunk, or its decode), or decodes of younger requests use
   up the whole budget. A decode samples a token that survives preemption (preemption throws
   away K/V, never generated tokens), and a request samples at most ``N - 1`` tokens by decoding
   (its last prefill chunk samples at least one), so the whole run has at most
   ``D = sum(N - 1)`` decodes.

A request ``r`` is the head or younger than the head from its arrival to its finish, and heads
change only when one finishes; so ``r`` finishes within
``B(r) = sum(P + N - 1 for the requests up to r in queue order) + D`` steps of its arrival:
``finish_step - arrival_step < B(r)``. Without preemption the old bound ``sum(P + N - 1)``
held, since every step made progress that was never undone. With preemption, work can be
thrown away and recomputed, so total work no longer bounds the steps; what still does is the
head's own work (never thrown away) plus the decodes that can starve it (never repeated).

Policies: the budget, bookkeeping, memory and token-equality properties hold for every
policy (``decode_first``, ``prefill_first``, ``vllm_v1``) and are drawn over all three; the
decode-first order, the head's progress and the bound above are decode-first's own.

Profiles: ``ci`` (default, quick: 60 examples per property) and ``long``
(``HYPOTHESIS_PROFILE=long``: 3000 per property, 1000 for the token-equality property).

About one drawn scenario in ten preempts and one in twenty gets prefix-cache hits (measured
over 1000 draws); the deterministic grid in ``test_invariants.py`` covers both on every run.

Long profile run, 2026-11-28, on the 2-core development machine, with preemption, prefix
caching and watermarks: all 8 properties passed (about 22 000 workloads, 108 s), no
falsifying example. (Before preemption existed, the 7 properties of the time passed 19 000
workloads in 92 s.) Mutations checked by hand: serving decodes youngest-first fails
``test_decode_first``; miscounting a prefill chunk against the budget fails
``test_step_never_exceeds_budget``; preempting the oldest running request instead of the
youngest fails ``test_the_head_is_never_preempted_and_always_progresses`` (and, as the runs
livelock, ``test_every_request_finishes_within_the_bound``); miscounting recomputed tokens
fails ``test_metrics_agree_with_the_step_log``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cblab_src import RequestState, Scheduler, SchedulerPlugin, TinyLLM
from cblab_src.core.policies import POLICIES
from cblab_src.workloads import RequestSpec, Workload

from conftest import check_block_accounting, check_work

settings.register_profile("ci", max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=3000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# A small model keeps thousands of reference generations cheap; its limit bounds the prompts.
MODEL = TinyLLM(seed=1, vocab_size=32, d_model=16, n_layers=1, n_heads=2, max_seq_len=48)


@st.composite
def workloads(draw, max_prompt: int = MODEL.max_seq_len - 6) -> Workload:
    # A shared "system prompt": each request starts with some of it (maybe none), so prefix
    # caching has something to find.
    size = draw(st.one_of(st.integers(8, 24), st.integers(0, 24)))
    shared = draw(st.lists(st.integers(0, MODEL.vocab_size - 1), min_size=size, max_size=size))
    n = draw(st.one_of(st.integers(1, 6), st.integers(3, 6)))     # several requests compete
    specs = []
    for i in range(n):
        cut = draw(st.sampled_from([len(shared), len(shared), len(shared) // 2, 0]))
        prefix = shared[:cut]
        plen = draw(st.integers(max(1, len(prefix)), max_prompt))
        tail = draw(st.lists(st.integers(0, MODEL.vocab_size - 1), min_size=plen - len(prefix),
                             max_size=plen - len(prefix)))
        specs.append(RequestSpec(i, tuple(prefix + tail), draw(st.integers(0, 6)),
                                 draw(st.integers(0, 5))))
    return Workload(tuple(specs))


@st.composite
def configs(draw, workload: Workload, policies=tuple(POLICIES)) -> dict:
    layout = draw(st.sampled_from(["paged", "dense"]))
    config = dict(max_tokens_per_step=draw(st.integers(1, 40)),
                  prefill_chunk_size=draw(st.integers(1, 48)), kv_layout=layout,
                  policy=draw(st.sampled_from(policies)))
    if layout == "paged":
        # Small blocks and tight pools are where preemption and prefix sharing happen.
        block_size = draw(st.one_of(st.integers(1, 8), st.integers(1, 64)))
        biggest = max(-(-max(len(s.prompt) + s.max_new_tokens - 1, 1) // block_size)
                      for s in workload.specs)
        tight = st.integers(biggest, biggest + 3)
        pool = draw(st.one_of(tight, st.integers(biggest, 4 * biggest + 8), st.none()))
        watermark = draw(st.integers(0, 3 if pool is None else min(3, pool - 1)))
        config.update(block_size=block_size, num_blocks=pool, watermark_blocks=watermark,
                      enable_prefix_caching=draw(st.booleans()))
    return config


class Watcher(SchedulerPlugin):
    """Checks the per-step invariants as the run goes and keeps what the tests need."""

    def __init__(self):
        self.history = []
        self.decoding_before = []   # ids in DECODE state at the start of each step
        self.head_before = []       # the head (see the module docstring) at each step's start

    def before_step(self, scheduler):
        self.decoding_before.append([r.req_id for r in scheduler.active
                                     if r.state is RequestState.DECODE
                                     and r.arrival_step <= scheduler.step_count])
        heads = [r.req_id for r in scheduler.active
                 if r.arrival_step <= scheduler.step_count and r.max_new_tokens > 0]
        self.head_before.append(heads[0] if heads else None)

    def after_step(self, scheduler, stats):
        self.history.append(stats)
        check_block_accounting(scheduler.kv_cache)
        live = {r.req_id for r in scheduler.running}
        assert set(scheduler.kv_cache.req_ids) == live, "KV held by exactly the running requests"
        for rid in live:
            assert (scheduler.kv_cache.num_computed_tokens(rid)
                    == scheduler.requests[rid].num_computed_tokens)


def queue_order(requests):
    """The scheduler's queue order: arrival step, then the order of ``add_request``."""
    return sorted(requests, key=lambda r: r.arrival_step)          # sorted() is stable


def finish_bounds(requests) -> dict:
    """``B(r)`` of the module docstring, for every request with ``N > 0``."""
    decodes = sum(max(r.max_new_tokens - 1, 0) for r in requests)
    bounds, work = {}, 0
    for r in queue_order(requests):
        work += r.max_kv_tokens
        if r.max_new_tokens:
            bounds[r.req_id] = work + decodes
    return bounds


def run(workload: Workload, config: dict, model=None):
    sched = Scheduler(model, **config)
    watcher = sched.plugins.register_scheduler_plugin(Watcher())
    requests = workload.requests()
    for r in requests:
        sched.add_request(r)
    bounds = finish_bounds(requests)
    last = max(r.arrival_step + bounds.get(r.req_id, 0) for r in requests)
    # The bound is decode-first's (see the module docstring); the others get room to spare.
    sched.run(max_steps=last + 2 if config["policy"] == "decode_first" else 4 * last + 10)
    return sched, requests, watcher


@st.composite
def scenarios(draw, policies=tuple(POLICIES)):
    """A workload and a config, under any of ``policies`` (every policy by default)."""
    workload = draw(workloads())
    return workload, draw(configs(workload, policies))


DECODE_FIRST = ("decode_first",)


@given(scenarios())
def test_step_never_exceeds_budget(scenario):
    workload, config = scenario
    _, _, watcher = run(workload, config)
    for stats in watcher.history:
        assert stats.num_tokens <= config["max_tokens_per_step"]
        assert stats.num_tokens == stats.num_decode_tokens + stats.num_prefill_tokens


@given(scenarios(DECODE_FIRST))
def test_decode_first(scenario):
    workload, config = scenario
    _, _, watcher = run(workload, config)
    for stats, decoding in zip(watcher.history, watcher.decoding_before):
        # Decodes are served oldest first, skipping requests preempted in the step; prefill
        # gets only what decodes leave.
        survivors = [rid for rid in decoding if rid not in stats.preempted_ids]
        assert list(stats.decode_ids) == survivors[:config["max_tokens_per_step"]]
        if stats.prefill_chunks:
            assert len(stats.decode_ids) == len(survivors)


@given(scenarios(DECODE_FIRST))
def test_every_request_finishes_within_the_bound(scenario):
    workload, config = scenario
    sched, requests, _ = run(workload, config)
    bounds = finish_bounds(requests)
    assert not sched.has_unfinished
    for r in requests:
        assert r.finished and r.num_generated == r.max_new_tokens
        if r.max_new_tokens == 0:
            assert r.finish_step == r.arrival_step
        else:
            assert r.finish_step - r.arrival_step < bounds[r.req_id]


@given(scenarios(DECODE_FIRST))
def test_the_head_is_never_preempted_and_always_progresses(scenario):
    # Steps 2 and 3 of the bound's proof, checked step by step.
    workload, config = scenario
    _, _, watcher = run(workload, config)
    for stats, head in zip(watcher.history, watcher.head_before):
        if head is None:
            continue
        assert head not in stats.preempted_ids
        progressed = head in stats.decode_ids or any(rid == head for rid, _, _ in
                                                     stats.prefill_chunks)
        assert progressed or stats.num_decode_tokens == config["max_tokens_per_step"]


@given(scenarios())
def test_no_request_lost_or_duplicated(scenario):
    workload, config = scenario
    sched, requests, watcher = run(workload, config)
    finished = [rid for s in watcher.history for rid in s.finished_ids]
    assert sorted(finished) == sorted(workload.req_ids)
    assert [r.req_id for r in sched.finished] == finished
    for stats in watcher.history:
        in_step = list(stats.decode_ids) + [rid for rid, _, _ in stats.prefill_chunks]
        assert len(in_step) == len(set(in_step))
        assert not set(in_step) & set(stats.preempted_ids)


@given(scenarios())
def test_blocks_conserved_and_all_returned(scenario):
    workload, config = scenario
    sched, _, _ = run(workload, config)   # the Watcher checks accounting after every step
    usage = sched.kv_cache.usage()
    assert usage.tokens == 0 and usage.used_blocks == 0 and usage.shared_blocks == 0
    assert usage.free_blocks + usage.cached_blocks == usage.total_blocks
    assert usage.cached_blocks == 0 or config.get("enable_prefix_caching")


@given(scenarios())
def test_metrics_agree_with_the_step_log(scenario):
    workload, config = scenario
    sched, requests, watcher = run(workload, config)
    for r in requests:
        steps = [s.step_id for s in watcher.history for rid, _ in s.sampled if rid == r.req_id]
        assert steps == r.token_steps and len(steps) == r.max_new_tokens
        if steps:
            assert r.first_token_step == steps[0]
        preempted = [s.step_id for s in watcher.history if r.req_id in s.preempted_ids]
        assert preempted == r.preempted_steps
    # Tokens scheduled + prefix-cache hits == tokens finally cached + tokens preemption threw
    # away, per request; the scheduler's counters equal the log's totals.
    check_work(watcher.history, sched)


@settings(max_examples=max(10, settings.default.max_examples // 3))
@given(scenarios())
def test_generated_tokens_equal_the_request_alone(scenario):
    workload, config = scenario
    _, requests, _ = run(workload, config, model=MODEL)
    for r in requests:
        assert r.generated == MODEL.generate(r.prompt, r.max_new_tokens), (r.req_id, config)
