"""Property-based tests: the engine's invariants over random workloads (Hypothesis).

Each property is its own test, run over workloads Hypothesis draws: 1-6 requests arriving at
steps 0-5, prompts from 1 token to the model's limit, ``max_new_tokens`` 0-6, budgets from 1,
chunk sizes above and below the budget, both KV layouts, block sizes 1-64, and pools from
exactly tight (the largest request just fits) to unbounded.

No starvation, the bound: every step in which some arrived request is unfinished makes at
least one token of progress (a decode, or a prefill chunk of >= 1 token; with no request
running the pool is empty, and every request fits the pool, so the head of the queue can
always be admitted). A request therefore finishes at most ``W`` steps after it arrives,
where ``W = sum(P + N - 1)`` over the requests with ``N > 0`` is the workload's total work in
tokens; a request with ``N = 0`` finishes in its arrival step.

Profiles: ``ci`` (default, quick: 60 examples per property) and ``long``
(``HYPOTHESIS_PROFILE=long``: 3000 per property, 1000 for the token-equality property).

Long profile run, 2026-11-28, on the 2-core development machine: all 7 properties passed
(about 19 000 workloads, 92 s), no falsifying example. Mutations checked by hand: serving
decodes youngest-first fails ``test_decode_first``; miscounting a prefill chunk against the
budget fails ``test_step_never_exceeds_budget``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cblab_src import PagedKVCache, RequestState, Scheduler, SchedulerPlugin, TinyLLM
from cblab_src.workloads import RequestSpec, Workload

settings.register_profile("ci", max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=3000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# A small model keeps thousands of reference generations cheap; its limit bounds the prompts.
MODEL = TinyLLM(seed=1, vocab_size=32, d_model=16, n_layers=1, n_heads=2, max_seq_len=48)


@st.composite
def workloads(draw, max_prompt: int = MODEL.max_seq_len - 6) -> Workload:
    n = draw(st.integers(1, 6))
    specs = []
    for i in range(n):
        plen = draw(st.integers(1, max_prompt))
        prompt = tuple(draw(st.lists(st.integers(0, MODEL.vocab_size - 1), min_size=plen,
                                     max_size=plen)))
        specs.append(RequestSpec(i, prompt, draw(st.integers(0, 6)), draw(st.integers(0, 5))))
    return Workload(tuple(specs))


@st.composite
def configs(draw, workload: Workload) -> dict:
    layout = draw(st.sampled_from(["paged", "dense"]))
    config = dict(max_tokens_per_step=draw(st.integers(1, 40)),
                  prefill_chunk_size=draw(st.integers(1, 48)), kv_layout=layout)
    if layout == "paged":
        block_size = draw(st.integers(1, 64))
        biggest = max(-(-max(len(s.prompt) + s.max_new_tokens - 1, 1) // block_size)
                      for s in workload.specs)
        pool = draw(st.one_of(st.none(), st.integers(biggest, biggest + 3),
                              st.integers(biggest, 4 * biggest + 8)))
        config.update(block_size=block_size, num_blocks=pool)
    return config


class Watcher(SchedulerPlugin):
    """Checks the per-step invariants as the run goes and keeps what the tests need."""

    def __init__(self):
        self.history = []
        self.decoding_before = []   # ids in DECODE state at the start of each step

    def before_step(self, scheduler):
        self.decoding_before.append([r.req_id for r in scheduler.active
                                     if r.state is RequestState.DECODE
                                     and r.arrival_step <= scheduler.step_count])

    def after_step(self, scheduler, stats):
        self.history.append(stats)
        check_kv_accounting(scheduler)


def check_kv_accounting(scheduler) -> None:
    cache = scheduler.kv_cache
    usage = cache.usage()
    assert usage.tokens == sum(cache.seq_len(r) for r in cache.req_ids)
    if isinstance(cache, PagedKVCache):
        tables = list(cache.block_tables.values())
        owned = [b for t in tables for b in t]
        assert len(owned) == len(set(owned)), "a block is owned by two live requests"
        assert usage.used_blocks == len(owned)
        assert usage.used_blocks + usage.free_blocks == usage.total_blocks
        assert 0 <= usage.reserved_blocks <= usage.free_blocks or not cache.allocator.bounded
        for rid in cache.req_ids:
            assert len(cache.block_tables[rid]) == cache.blocks_for(cache.seq_len(rid))
    live = {r.req_id for r in scheduler.running}
    assert set(cache.req_ids) == live, "KV held by exactly the admitted, unfinished requests"


def run(workload: Workload, config: dict, model=None):
    sched = Scheduler(model, **config)
    watcher = sched.plugins.register_scheduler_plugin(Watcher())
    requests = workload.requests()
    for r in requests:
        sched.add_request(r)
    total_work = sum(r.max_kv_tokens for r in requests)
    sched.run(max_steps=max(r.arrival_step for r in requests) + total_work + 2)
    return sched, requests, watcher


@st.composite
def scenarios(draw):
    workload = draw(workloads())
    return workload, draw(configs(workload))


@given(scenarios())
def test_step_never_exceeds_budget(scenario):
    workload, config = scenario
    _, _, watcher = run(workload, config)
    for stats in watcher.history:
        assert stats.num_tokens <= config["max_tokens_per_step"]
        assert stats.num_tokens == stats.num_decode_tokens + stats.num_prefill_tokens


@given(scenarios())
def test_decode_first(scenario):
    workload, config = scenario
    _, _, watcher = run(workload, config)
    for stats, decoding in zip(watcher.history, watcher.decoding_before):
        # Decodes are served oldest first; prefill gets only what decodes leave.
        assert list(stats.decode_ids) == decoding[:config["max_tokens_per_step"]]
        if stats.prefill_chunks:
            assert len(stats.decode_ids) == len(decoding)


@given(scenarios())
def test_every_request_finishes_within_the_bound(scenario):
    workload, config = scenario
    sched, requests, _ = run(workload, config)
    total_work = sum(r.max_kv_tokens for r in requests)
    assert not sched.has_unfinished
    for r in requests:
        assert r.finished and r.num_generated == r.max_new_tokens
        if r.max_new_tokens == 0:
            assert r.finish_step == r.arrival_step
        else:
            assert r.finish_step - r.arrival_step < total_work


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


@given(scenarios())
def test_blocks_conserved_and_all_returned(scenario):
    workload, config = scenario
    sched, _, _ = run(workload, config)   # the Watcher checks accounting after every step
    usage = sched.kv_cache.usage()
    assert usage.tokens == 0 and usage.used_blocks == 0 and usage.reserved_blocks == 0
    assert usage.free_blocks == usage.total_blocks


@given(scenarios())
def test_metrics_agree_with_the_step_log(scenario):
    workload, config = scenario
    _, requests, watcher = run(workload, config)
    for r in requests:
        steps = [s.step_id for s in watcher.history for rid, _ in s.sampled if rid == r.req_id]
        assert steps == r.token_steps and len(steps) == r.max_new_tokens
        if steps:
            assert r.first_token_step == steps[0]
            prefilled = sum(n for s in watcher.history for rid, _, n in s.prefill_chunks
                            if rid == r.req_id)
            assert prefilled == r.prompt_len
            decodes = sum(s.decode_ids.count(r.req_id) for s in watcher.history)
            assert decodes == r.max_new_tokens - 1


@settings(max_examples=max(10, settings.default.max_examples // 3))
@given(scenarios())
def test_generated_tokens_equal_the_request_alone(scenario):
    workload, config = scenario
    _, requests, _ = run(workload, config, model=MODEL)
    for r in requests:
        assert r.generated == MODEL.generate(r.prompt, r.max_new_tokens), r.req_id
