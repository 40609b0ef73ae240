"""A step is all or nothing: a fault anywhere before the commit leaves no trace.

Faults are injected at every hook point and at every call, in turn, of the functions a step
runs through (KV allocation and release, block-pool moves, admission, the model, K/V writes,
attention, logits processing), raising ``RuntimeError`` or ``KeyboardInterrupt`` (what
Jupyter's "interrupt kernel" raises). After each fault the whole state — queues, counters,
every request, block tables, the block pool with its prefix table and LRU order, the stored
keys and values — must equal what it was before the step; then the run resumes and every
request must produce exactly what it produces alone (``generate``), with every block returned.
"""

from __future__ import annotations

import numpy as np
import pytest

from cblab_src import (AttentionPlugin, LogitsProcessor, Request, SamplingParams, Scheduler,
                       SchedulerPlugin, masked_attention)
from cblab_src.core.policies.decode_first import DecodeFirst

from conftest import MODEL, check_block_accounting, make_prefix_workload, make_workload


class Fault(Exception):
    """The injected bug."""


def fingerprint(s: Scheduler) -> tuple:
    """Everything a step may change, as comparable values."""
    reqs = tuple((r.req_id, r.num_computed_tokens, r.state, tuple(r.generated),
                  tuple(r.token_steps), r.admitted_step, r.num_cached_prompt_tokens,
                  tuple(r.preempted_steps), tuple(r.resumed_steps), r.finish_step,
                  None if r._rng is None else str(r._rng.bit_generator.state))
                 for r in s.requests.values())
    cache = s.kv_cache
    kv = (tuple(cache._lengths.items()), len(cache))
    if cache.layout == "paged":
        pool = cache.block_pool
        kv += (tuple((k, tuple(t)) for k, t in cache.block_tables.items()),
               tuple(cache._chains.items()), tuple(pool.ref_counts), tuple(sorted(pool._free)),
               tuple(pool._lru), tuple(sorted((h, e.key, e.block, e.children, tuple(e.copies))
                                              for h, e in pool._table.items())),
               tuple(sorted(pool._hash_of.items())), pool.num_evictions, pool.num_shared,
               tuple(a.tobytes() for a in cache.k_pool + cache.v_pool))
    else:
        kv += (tuple((k, tuple(a.tobytes() for a in cache._k[k] + cache._v[k]))
                     for k in sorted(cache._k)),)
    queues = (tuple(r.req_id for r in s._running), tuple(r.req_id for r in s._waiting),
              tuple((a, q, r.req_id) for a, q, r in sorted(s._future)),
              tuple(r.req_id for r in s.finished))
    return reqs, kv, queues, s.step_count, vars(s.counters).copy()


def specs_for(case: int):
    """Small workloads, half with shared prefixes, some requests sampling at random."""
    if case % 2:
        return make_prefix_workload(case, num_requests=(3, 5), max_new=(1, 5))
    return make_workload(case, num_requests=(3, 5), prompt_len=(1, 14), max_new=(0, 5))


def requests_for(specs, case: int) -> list[Request]:
    out = []
    for rid, prompt, n, arrival in specs:
        sampling = SamplingParams(temperature=0.8, top_k=20, seed=rid) if (rid + case) % 3 == 0 \
            else SamplingParams()
        out.append(Request(rid, list(prompt), n, arrival_step=arrival, sampling=sampling))
    return out


CONFIGS = [
    dict(policy="decode_first", max_tokens_per_step=8, prefill_chunk_size=4, block_size=2,
         num_blocks=12),
    dict(policy="vllm_v1", max_tokens_per_step=8, prefill_chunk_size=4, block_size=2,
         num_blocks=14, enable_prefix_caching=True),
    dict(policy="prefill_first", max_tokens_per_step=6, prefill_chunk_size=3, block_size=4,
         enable_prefix_caching=True),
    dict(policy="decode_first", max_tokens_per_step=7, prefill_chunk_size=3, kv_layout="dense"),
]


class Injector:
    """Counts calls through the wrapped functions while a step is uncommitted (``live()``) and
    raises at call number ``at``. (Nothing in the commit can raise but Ctrl-C, which it holds:
    see the last test.)"""

    def __init__(self, at: int, error: type[BaseException], live=lambda: True):
        self.at, self.error, self.live, self.calls, self.fired = at, error, live, 0, False

    def tick(self) -> None:
        if not self.live():
            return
        self.calls += 1
        if self.calls == self.at and not self.fired:
            self.fired = True
            raise self.error("injected")

    def wrap(self, obj, name: str) -> None:
        inner = getattr(obj, name)

        def wrapped(*args, **kwargs):
            self.tick()
            return inner(*args, **kwargs)
        setattr(obj, name, wrapped)


class FaultyAttention(AttentionPlugin):
    def __init__(self, injector: Injector):
        self.injector = injector

    def compute_attention(self, q, k, v, mask):
        self.injector.tick()
        return masked_attention(q, k, v, mask)


class FaultyProcessor(LogitsProcessor):
    def __init__(self, injector: Injector):
        self.injector = injector

    def process_logits(self, tokens, logits):
        self.injector.tick()
        return logits


def run_with_faults(config: dict, case: int, injector: Injector, *, attention: bool,
                    processor: bool) -> tuple[Scheduler, list[Request], int]:
    """Run one workload, stepping by hand; at a fault, check the state is what it was."""
    s = Scheduler(MODEL, **config)
    reqs = [s.add_request(r) for r in requests_for(specs_for(case), case)]
    cache = s.kv_cache
    injector.live = lambda: cache.has_checkpoint       # inside a step, before its commit
    for name in ("try_extend", "try_extend_decodes", "admit", "free", "cache_full_blocks"):
        injector.wrap(cache, name)
    if cache.layout == "paged":
        injector.wrap(cache, "write_slots")
        for name in ("allocate", "release", "retain", "register"):
            injector.wrap(cache.block_pool, name)
    injector.wrap(s, "_forward")
    if attention:
        s.plugins.register_attention_plugin(FaultyAttention(injector))
    if processor:
        s.plugins.register_logits_processor(FaultyProcessor(injector))
    faults = 0
    while s.has_unfinished:
        before = fingerprint(s)
        try:
            s.step()
        except (Fault, KeyboardInterrupt):
            faults += 1
            assert fingerprint(s) == before, f"step {s.step_count} left a trace"
        assert s.step_count < 500
    return s, reqs, faults


def check_outputs(s: Scheduler, reqs: list[Request]) -> None:
    for r in reqs:
        assert r.generated == MODEL.generate(list(r.prompt), r.max_new_tokens, r.sampling), r
    check_block_accounting(s.kv_cache)
    assert s.kv_cache.usage().used_blocks == 0 and len(s.kv_cache) == 0


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c['policy']}-{c.get('kv_layout', 'paged')}"
                         f"{'-prefix' if c.get('enable_prefix_caching') else ''}")
@pytest.mark.parametrize("case", range(2))
@pytest.mark.parametrize("attention, processor", [(False, False), (True, False), (False, True)],
                         ids=["engine", "attention-plugin", "logits-processor"])
def test_a_fault_at_any_call_inside_a_step_leaves_no_trace(config, case, attention, processor):
    """Call after call, one raises (``RuntimeError``-like or ``KeyboardInterrupt``): each fault
    leaves the state as it was, and the resumed run gives every request its tokens alone."""
    dry = Injector(0, Fault)                           # at 0: never fires, counts the calls
    run_with_faults(config, case, dry, attention=attention, processor=processor)
    for i, at in enumerate(sorted(set(np.linspace(1, dry.calls, 10).astype(int)))):
        injector = Injector(at, KeyboardInterrupt if i % 2 else Fault)
        s, reqs, faults = run_with_faults(config, case, injector, attention=attention,
                                          processor=processor)
        assert faults == 1
        check_outputs(s, reqs)


@pytest.mark.parametrize("hook", ["before_step", "after_step", "on_request_finished"])
def test_a_raising_hook_is_a_whole_step_or_none(hook):
    """``before_step`` raises before anything changes; ``on_request_finished`` and
    ``after_step`` after the step is committed (``step_count`` advanced)."""

    class Bomb(SchedulerPlugin):
        armed = True

        def _maybe(self):
            if Bomb.armed:
                Bomb.armed = False
                raise Fault(hook)

    setattr(Bomb, hook, lambda self, *args: self._maybe())
    s = Scheduler(MODEL, max_tokens_per_step=6, prefill_chunk_size=3, block_size=2)
    reqs = [s.add_request(Request(i, list(p), n)) for i, p, n, _ in
            make_workload(7, num_requests=(3, 3), max_new=(1, 3))]
    s.plugins.register_scheduler_plugin(Bomb())
    committed = False
    while s.has_unfinished:
        before, count = fingerprint(s), s.step_count
        try:
            s.step()
        except Fault:
            committed = s.step_count == count + 1
            assert committed or fingerprint(s) == before
    assert committed == (hook != "before_step")
    check_outputs(s, reqs)


def test_a_policy_that_raises_half_way_leaves_no_trace():
    """A policy (chapter 8 lets a learner write one) that raises after some of its moves."""

    class Flaky(DecodeFirst):
        name = "flaky"
        calls = 0

        def schedule(self, plan):
            super().schedule(plan)
            Flaky.calls += 1
            if Flaky.calls in (2, 5, 9):
                raise Fault("policy bug")

    s = Scheduler(MODEL, max_tokens_per_step=6, prefill_chunk_size=3, block_size=2,
                  num_blocks=10)
    s._policy = Flaky()
    reqs = [s.add_request(r) for r in requests_for(specs_for(2), 2)]
    faults = 0
    while s.has_unfinished:
        before = fingerprint(s)
        try:
            s.step()
        except Fault:
            faults += 1
            assert fingerprint(s) == before
    assert faults == 3
    check_outputs(s, reqs)


def test_keyboard_interrupt_during_the_commit_is_held_until_it_ends(monkeypatch):
    """Ctrl-C that arrives while a step commits is raised once the commit is done."""
    import os
    import signal
    s = Scheduler(MODEL, max_tokens_per_step=6, prefill_chunk_size=3, block_size=2)
    r = s.add_request(Request(0, [1, 2, 3], 3))
    commit = s._commit

    def interrupted_commit(*args):
        os.kill(os.getpid(), signal.SIGINT)           # arrives in the middle of the commit
        return commit(*args)
    monkeypatch.setattr(s, "_commit", interrupted_commit)
    # Python's own handler, as in a terminal or a notebook (a process started in the
    # background may inherit SIGINT ignored: then there is nothing to raise).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            s.step()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert s.step_count == 1 and r.num_computed_tokens == 3 and len(r.generated) == 1
    monkeypatch.undo()
    s.run()
    assert r.generated == MODEL.generate([1, 2, 3], 3)


def test_storage_written_by_a_failed_step_is_put_back():
    """A preempting step reuses the victim's blocks for the preemptor's K/V; if the step then
    fails, the victim's keys and values are there again, bit for bit."""
    s = Scheduler(MODEL, max_tokens_per_step=4, prefill_chunk_size=4, block_size=2,
                  num_blocks=4)
    a = s.add_request(Request("A", [1, 2, 3, 4], 3))
    s.step()
    b = s.add_request(Request("B", [5, 6, 7], 3))
    s.step()
    pools = [p.copy() for p in s.kv_cache.k_pool]
    s.plugins.register_attention_plugin(FaultyAttention(Injector(1, Fault)))
    with pytest.raises(Fault):
        s.step()
    assert all(np.array_equal(p, q) for p, q in zip(pools, s.kv_cache.k_pool))
    s.plugins.register_attention_plugin(None)
    s.run()
    assert a.generated == MODEL.generate([1, 2, 3, 4], 3)
    assert b.generated == MODEL.generate([5, 6, 7], 3)


def test_a_failed_step_that_received_a_hand_off_leaves_no_trace():
    """Admitting a handed-off request writes its received keys and values into the pool: a
    fault later in that step takes them out again, and the retried step writes them anew."""
    from cblab_src.core.handoff import continuation
    prefill = Scheduler(MODEL, max_tokens_per_step=8, prefill_chunk_size=8, block_size=2,
                        kv_hand_off=True)
    first = prefill.add_request(Request("a", [5, 6, 7, 8, 9], 1,
                                        sampling=SamplingParams(temperature=0.8, seed=3)))
    prefill.run()
    decode = Scheduler(MODEL, max_tokens_per_step=8, prefill_chunk_size=8, block_size=2,
                       num_blocks=6)
    rest = decode.add_request(continuation(first, 4), kv=prefill.hand_off("a"))
    decode.plugins.register_attention_plugin(FaultyAttention(Injector(1, KeyboardInterrupt)))
    before = fingerprint(decode)
    with pytest.raises(KeyboardInterrupt):
        decode.step()
    assert fingerprint(decode) == before
    decode.run()
    assert first.generated + rest.generated == MODEL.generate([5, 6, 7, 8, 9], 4, first.sampling)
    assert decode.kv_cache.usage().used_blocks == 0
