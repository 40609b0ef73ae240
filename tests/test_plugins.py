"""Plugins: hook order, the step log format, metrics, attention replacement, and the roadmap's
phase 8 and 9 snippets run as written."""

import logging
import re

import numpy as np
import pytest

from cblab_src import (AttentionPlugin, KVUsage, LoggingPlugin, MetricsPlugin, Request,
                       Scheduler, SchedulerPlugin, StepStats, format_step, masked_attention)

from conftest import MODEL, EventRecorder, make_workload, reference_tokens, run_workload


def small_run(*plugins):
    """A: prompt 3, 2 new tokens, at step 0; B: prompt 2, 1 new token, at step 1.

    step 0: A's prompt (3 tokens) -> A's token 1.
    step 1: A decodes -> token 2, A finishes; B arrives, its prompt (2) -> token 1, B finishes.
    """
    sched = Scheduler(MODEL, max_tokens_per_step=8, prefill_chunk_size=4)
    for plugin in plugins:
        sched.plugins.register_scheduler_plugin(plugin)
    sched.add_request(Request("A", [1, 2, 3], 2))
    sched.add_request(Request("B", [4, 5], 1, arrival_step=1))
    return sched, sched.run()


def test_hooks_are_called_once_per_step_in_order():
    recorder = EventRecorder()
    small_run(recorder)
    assert recorder.events == [
        ("added", "A"), ("added", "B"),
        ("before_step", 0), ("after_step", 0),
        ("before_step", 1), ("finished", "A"), ("finished", "B"), ("after_step", 1),
    ]


def test_plugins_run_in_registration_order():
    log = []

    class Named(SchedulerPlugin):
        def __init__(self, name):
            self.name = name

        def before_step(self, scheduler):
            log.append((self.name, "before", scheduler.step_count))

        def after_step(self, scheduler, stats):
            log.append((self.name, "after", stats.step_id))

    small_run(Named("first"), Named("second"))
    assert log == [("first", "before", 0), ("second", "before", 0),
                   ("first", "after", 0), ("second", "after", 0),
                   ("first", "before", 1), ("second", "before", 1),
                   ("first", "after", 1), ("second", "after", 1)]


def test_finished_hook_sees_the_request_done_and_its_memory_returned():
    seen = []

    class Check(SchedulerPlugin):
        def on_request_finished(self, scheduler, request):
            seen.append((request.req_id, request.finished, request.req_id in scheduler.kv_cache,
                         request.finish_step, scheduler.step_count))

    small_run(Check())       # the step that finished them is committed: step_count moved on
    assert seen == [("A", True, False, 1, 2), ("B", True, False, 1, 2)]


def test_unregistered_plugin_is_not_called():
    recorder = EventRecorder()
    sched = Scheduler(MODEL, max_tokens_per_step=8, prefill_chunk_size=4)
    sched.plugins.register_scheduler_plugin(recorder)
    sched.plugins.unregister_scheduler_plugin(recorder)
    sched.add_request(Request("A", [1], 1))
    sched.run()
    assert recorder.events == [] and sched.plugins.scheduler_plugins == ()


def test_format_step_docstring_example():
    kv = KVUsage(0, 0, 0, 0, 0, 0)
    stats = StepStats(step_id=3, decode_ids=(0, 1), prefill_chunks=((2, 0, 5),), num_tokens=7,
                      sampled=(), finished_ids=(0,), num_waiting=0, num_running=2, kv=kv)
    assert format_step(stats) == "[step 3] decode=2 prefill=5 reqs=[0, 1, 2] finished=[0]"


def test_logging_plugin_lines_on_a_known_run(caplog, capsys):
    # The hand-traced schedule of test_scheduler_examples, with int ids: 0 (prompt 5, 3 new),
    # 1 (prompt 4, 2 new), budget 6, chunk 3.
    plugin = LoggingPlugin()
    sched = Scheduler(MODEL, max_tokens_per_step=6, prefill_chunk_size=3)
    sched.plugins.register_scheduler_plugin(plugin)
    sched.add_request(Request(0, [11, 22, 33, 44, 55], 3))
    sched.add_request(Request(1, [7, 8, 9, 10], 2))
    with caplog.at_level(logging.INFO, logger="cblab_src.scheduler"):
        sched.run()
    expected = [
        "[step 0] decode=0 prefill=6 reqs=[0, 1]",
        "[step 1] decode=0 prefill=3 reqs=[0, 1]",
        "[step 2] decode=2 prefill=0 reqs=[0, 1] finished=[1]",
        "[step 3] decode=1 prefill=0 reqs=[0] finished=[0]",
    ]
    assert plugin.lines == expected
    assert [r.getMessage() for r in caplog.records if r.name == "cblab_src.scheduler"] == expected
    assert capsys.readouterr() == ("", "")                 # library code prints nothing


def test_metrics_plugin_agrees_with_the_step_log():
    specs = make_workload(2)
    plugin = MetricsPlugin()
    sched, history = run_workload(specs, plugins=[plugin], max_tokens_per_step=5,
                                  prefill_chunk_size=3)
    collector = plugin.collector
    # Steps: one record per step, with the step's counts.
    assert [(s.step_id, s.num_tokens, s.num_decode_tokens, s.num_prefill_tokens, s.num_finished)
            for s in collector.steps] == \
           [(s.step_id, s.num_tokens, len(s.decode_ids), sum(n for _, _, n in s.prefill_chunks),
             len(s.finished_ids)) for s in history]
    # Requests: in finishing order, latencies recomputed from the log alone.
    assert [m.req_id for m in collector.requests] == [rid for s in history for rid in s.finished_ids]
    arrival = {rid: a for rid, _, _, a in specs}
    for m in collector.requests:
        token_steps = [s.step_id for s in history for rid, _ in s.sampled if rid == m.req_id]
        finish = next(s.step_id for s in history if m.req_id in s.finished_ids)
        assert m.num_generated == len(token_steps)
        assert m.e2e == finish + 1 - arrival[m.req_id]
        assert m.itl == tuple(np.diff(token_steps))
        if token_steps:
            assert m.ttft == token_steps[0] + 1 - arrival[m.req_id]
        else:
            assert m.ttft is None
        if len(token_steps) > 1:
            assert m.tpot == (token_steps[-1] - token_steps[0]) / (len(token_steps) - 1)
        else:
            assert m.tpot is None
    summary = collector.get_step_summary()
    assert summary["total_tokens"] == sum(s.num_tokens for s in history)
    assert summary["steps"] == len(history)


class CountingAttention(AttentionPlugin):
    """Counts its calls and delegates to the default attention."""

    def __init__(self):
        self.calls = 0

    def compute_attention(self, q, k, v, mask):
        self.calls += 1
        return masked_attention(q, k, v, mask)


class SlidingWindowAttention(AttentionPlugin):
    """Each query sees only the last ``window`` positions up to itself."""

    def __init__(self, window):
        self.window = window

    def compute_attention(self, q, k, v, mask):
        T, S = mask.shape
        q_pos = np.arange(S - T, S)                                     # queries are the last T
        near = np.arange(S)[None, :] > q_pos[:, None] - self.window
        return masked_attention(q, k, v, mask & near)


def windowed_generate(prompt, n, attend):
    """Greedy generation recomputing the whole sequence with a given attention (the reference)."""
    out = []
    for _ in range(n):
        out.append(int(np.argmax(MODEL.forward_prefill_dense(list(prompt) + out, attend).logits[-1])))
    return out


def test_attention_plugin_is_called_and_leaves_tokens_unchanged():
    specs = make_workload(4)
    counter = CountingAttention()
    sched = Scheduler(MODEL, max_tokens_per_step=6, prefill_chunk_size=4)
    sched.plugins.register_attention_plugin(counter)
    assert sched.plugins.attention_plugin is counter
    for rid, prompt, n, arrival in specs:
        sched.add_request(Request(rid, prompt, n, arrival_step=arrival))
    history = sched.run()
    segments = sum(len(s.decode_ids) + len(s.prefill_chunks) for s in history)
    assert counter.calls == MODEL.n_layers * segments > 0       # once per segment and layer
    for rid, prompt, n, _ in specs:
        assert sched.requests[rid].generated == reference_tokens(prompt, n)


def test_sliding_window_plugin_changes_tokens_of_long_prompts():
    window = SlidingWindowAttention(window=2)
    long_prompt, short_prompt = list(range(40, 60)), [5, 6]
    sched = Scheduler(MODEL, max_tokens_per_step=8, prefill_chunk_size=4)
    sched.plugins.register_attention_plugin(window)
    long = sched.add_request(Request("long", long_prompt, 6))
    short = sched.add_request(Request("short", short_prompt, 1))
    sched.run()
    # Long prompt: the window matters, and chunked paged decoding follows the windowed reference.
    assert long.generated != reference_tokens(long_prompt, 6)
    assert long.generated == windowed_generate(long_prompt, 6, window.compute_attention)
    # Two tokens fit in a window of 2: nothing changes.
    assert short.generated == reference_tokens(short_prompt, 1)


def test_removing_the_attention_plugin_restores_the_default():
    sched = Scheduler(MODEL, max_tokens_per_step=8, prefill_chunk_size=4)
    sched.plugins.register_attention_plugin(SlidingWindowAttention(window=2))
    sched.plugins.register_attention_plugin(None)
    assert sched.plugins.attention_fn is masked_attention
    req = sched.add_request(Request("long", list(range(40, 60)), 4))
    sched.run()
    assert req.generated == reference_tokens(list(range(40, 60)), 4)


def test_registering_a_bad_plugin_is_refused():
    manager = Scheduler(MODEL, max_tokens_per_step=8, prefill_chunk_size=4).plugins
    for bad in (object(), LoggingPlugin, lambda scheduler: None, CountingAttention()):
        with pytest.raises(TypeError, match="plugin"):
            manager.register_scheduler_plugin(bad)
    for bad in (object(), LoggingPlugin(), masked_attention):
        with pytest.raises(TypeError, match="plugin"):
            manager.register_attention_plugin(bad)
    plugin = manager.register_scheduler_plugin(LoggingPlugin())
    with pytest.raises(ValueError, match="already registered"):
        manager.register_scheduler_plugin(plugin)
    with pytest.raises(ValueError, match="not registered"):
        manager.unregister_scheduler_plugin(LoggingPlugin())
    with pytest.raises(TypeError):
        AttentionPlugin()                                   # abstract: needs compute_attention
    assert manager.scheduler_plugins == (plugin,)


def roadmap_scheduler():
    """Two requests arriving at step 0: prompt 3 with 2 new tokens, prompt 2 with 1 new token."""
    scheduler = Scheduler(MODEL, max_tokens_per_step=8, prefill_chunk_size=4)
    scheduler.add_request(Request(0, [1, 2, 3], 2))
    scheduler.add_request(Request(1, [4, 5], 1))
    return scheduler


def test_roadmap_phase_8_snippet_runs_as_written(capsys):
    scheduler = roadmap_scheduler()
    manager = scheduler.plugins
    # ---- roadmap_zh.md, 阶段 8 (cb_lab -> cblab_src), verbatim ----
    from cblab_src.plugins.base import SchedulerPlugin
    from cblab_src.plugins.builtin import LoggingPlugin, MetricsPlugin

    class 自定义插件(SchedulerPlugin):
        def before_step(self, scheduler):
            print(f"步骤 {scheduler.step_count}: {len(scheduler.active)} 个活跃请求")

    # 在调度器中使用
    manager.register_scheduler_plugin(自定义插件())
    manager.register_scheduler_plugin(MetricsPlugin())
    # ---- end of snippet ----
    scheduler.run()
    # Step 0 prefills both requests and finishes request 1; step 1 finishes request 0.
    assert capsys.readouterr().out.splitlines() == ["步骤 0: 2 个活跃请求", "步骤 1: 1 个活跃请求"]
    collector = manager.scheduler_plugins[1].collector
    assert [m.req_id for m in collector.requests] == [1, 0]
    assert len(collector.steps) == 2


def test_roadmap_phase_9_snippet_runs_as_written(capsys):
    scheduler = roadmap_scheduler()
    # ---- roadmap_zh.md, 阶段 9 (cb_lab -> cblab_src), verbatim ----
    from cblab_src.monitoring.metrics import MetricsCollector
    from cblab_src.monitoring.memory_profiler import DetailedMemoryProfiler

    metrics = MetricsCollector()
    profiler = DetailedMemoryProfiler()

    with profiler.profile_context("调度器步骤"):
        stats = scheduler.step()
        metrics.record_step(**stats)

    summary = metrics.get_step_summary()
    print(f"吞吐量: {summary['tokens_per_second']:.2f} tok/s")
    # ---- end of snippet ----
    assert summary["tokens_per_second"] > 0
    assert summary["total_tokens"] == stats.num_tokens == 5
    assert re.fullmatch(r"吞吐量: \d+\.\d\d tok/s\n", capsys.readouterr().out)
    assert [r.name for r in profiler.records] == ["调度器步骤"]
