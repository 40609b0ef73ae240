"""Metrics with a fake clock, request latency summaries, and the memory profiler's KV bytes."""

import tracemalloc

import numpy as np
import pytest

from cblab_src import (DetailedMemoryProfiler, MetricsCollector, MetricsPlugin, Request,
                       RequestTimes, Scheduler)

from conftest import MODEL


class FakeClock:
    """Returns the given times one call at a time."""

    def __init__(self, *times):
        self.times = list(times)

    def __call__(self):
        return self.times.pop(0)


def record(collector, step_id, num_tokens, decodes=(), chunks=(), finished=()):
    return collector.record_step(step_id=step_id, num_tokens=num_tokens, decode_ids=decodes,
                                 prefill_chunks=chunks, finished_ids=finished, sampled=())


def test_tokens_per_second_with_a_fake_clock():
    # Created at t=10; steps of 6, 3, 2, 1 tokens recorded at t=10.5, 11, 11.5, 13.
    collector = MetricsCollector(clock=FakeClock(10.0, 10.5, 11.0, 11.5, 13.0))
    record(collector, 0, 6, chunks=(("A", 0, 3), ("B", 0, 3)))
    record(collector, 1, 3, chunks=(("A", 3, 2), ("B", 3, 1)))
    record(collector, 2, 2, decodes=("A", "B"), finished=("B",))
    record(collector, 3, 1, decodes=("A",), finished=("A",))
    assert collector.get_step_summary() == {
        "steps": 4, "total_tokens": 12, "decode_tokens": 3, "prefill_tokens": 9,
        "tokens_per_step": 3.0, "wall_seconds": 3.0, "tokens_per_second": 4.0,
    }
    assert [s.wall_time for s in collector.steps] == [10.5, 11.0, 11.5, 13.0]


def test_reset_restarts_the_clock_and_forgets_everything():
    collector = MetricsCollector(clock=FakeClock(0.0, 1.0, 5.0, 7.0))
    record(collector, 0, 8)
    collector.reset()                                   # t = 5
    assert collector.get_step_summary()["tokens_per_second"] == 0.0
    record(collector, 1, 4)                             # t = 7
    summary = collector.get_step_summary()
    assert (summary["total_tokens"], summary["wall_seconds"], summary["tokens_per_second"]) == (4, 2.0, 2.0)


def test_empty_summaries():
    collector = MetricsCollector(clock=FakeClock(0.0))
    assert collector.get_step_summary()["tokens_per_second"] == 0.0
    assert collector.get_request_summary() == {
        "requests": 0, "output_tokens": 0, "ttft": {"mean": None, "p90": None},
        "tpot": {"mean": None, "p90": None}, "e2e": {"mean": None, "p90": None}}


def test_request_summary_of_the_hand_traced_schedule():
    # A (prompt 5, 3 new) gets tokens in steps 1, 2, 3; B (prompt 4, 2 new) in steps 1, 2;
    # both arrived at step 0 (see test_scheduler_examples). B finishes first.
    plugin = MetricsPlugin(MetricsCollector())
    sched = Scheduler(MODEL, max_tokens_per_step=6, prefill_chunk_size=3)
    sched.plugins.register_scheduler_plugin(plugin)
    sched.add_request(Request("A", [11, 22, 33, 44, 55], 3))
    sched.add_request(Request("B", [7, 8, 9, 10], 2))
    sched.run()
    assert plugin.collector.requests == [       # tokens ready at the end of steps 1, 2 (and 3)
        RequestTimes("B", prompt_len=4, arrival=0, token_times=(2, 3), finish=3, unit="step"),
        RequestTimes("A", prompt_len=5, arrival=0, token_times=(2, 3, 4), finish=4, unit="step"),
    ]
    assert [(m.num_generated, m.ttft, m.tpot, m.itl, m.e2e) for m in plugin.collector.requests] == [
        (2, 2, 1.0, (1,), 3), (3, 2, 1.0, (1, 1), 4)]
    summary = plugin.collector.get_request_summary()
    assert summary["requests"] == 2 and summary["output_tokens"] == 5
    assert summary["ttft"] == {"mean": 2.0, "p90": 2.0}
    assert summary["tpot"] == {"mean": 1.0, "p90": 1.0}
    assert summary["e2e"]["mean"] == 3.5
    assert summary["e2e"]["p90"] == pytest.approx(3.9)         # 3 + 0.9 * (4 - 3)


def test_request_times_of_a_waiting_late_request():
    # Arrives at step 2, gets tokens in steps 4 and 7, finishes in step 7.
    r = Request("x", [1, 2], 2, arrival_step=2)
    r.append_token(5, step=4)
    r.append_token(6, step=7)
    r.finish_step = 7
    m = RequestTimes.from_request(r)
    assert (m.unit, m.arrival, m.token_times, m.finish) == ("step", 2, (5, 8), 8)
    assert (m.ttft, m.tpot, m.itl, m.e2e) == (3, 3.0, (3,), 6)


def test_request_times_without_tokens_and_unfinished():
    r = Request("z", [1], 0, arrival_step=4)
    with pytest.raises(ValueError, match="not finished"):
        RequestTimes.from_request(r)
    r.finish_step = 4
    m = RequestTimes.from_request(r)
    assert (m.num_generated, m.ttft, m.tpot, m.itl, m.e2e) == (0, None, None, (), 1)


def kv_bytes_per_token(model):
    # K and V, every layer and head, float64.
    return 2 * model.n_layers * model.n_heads * model.head_dim * 8


@pytest.mark.parametrize("kv_layout", ["dense", "paged"])
def test_memory_profiler_records_kv_bytes_around_steps(kv_layout):
    sched = Scheduler(MODEL, max_tokens_per_step=8, prefill_chunk_size=8, kv_layout=kv_layout)
    sched.add_request(Request("a", list(range(7)), 2))
    profiler = DetailedMemoryProfiler(sched)
    per_token = kv_bytes_per_token(MODEL)
    assert per_token == 2 * 2 * 4 * 16 * 8
    with profiler.profile_context("prefill"):
        sched.step()                                        # 7 prompt tokens cached
    with profiler.profile_context("decode"):
        sched.step()                                        # the last token: "a" finishes, frees
    prefill, decode = profiler.records
    assert (prefill.name, prefill.kv_bytes_before, prefill.kv_bytes_after) == ("prefill", 0, 7 * per_token)
    assert prefill.kv_bytes_after > prefill.kv_bytes_before and prefill.kv_delta == 7 * per_token
    assert (decode.kv_bytes_before, decode.kv_bytes_after) == (7 * per_token, 0)
    assert prefill.heap_peak >= 0 and isinstance(prefill.heap_delta, int)
    assert profiler.last is decode
    assert profiler.summary() == [
        {"name": "prefill", "heap_delta": prefill.heap_delta, "heap_peak": prefill.heap_peak,
         "kv_bytes": 7 * per_token, "kv_delta": 7 * per_token},
        {"name": "decode", "heap_delta": decode.heap_delta, "heap_peak": decode.heap_peak,
         "kv_bytes": 0, "kv_delta": -7 * per_token},
    ]


def test_memory_profiler_measures_the_heap_and_leaves_tracemalloc_as_it_found_it():
    profiler = DetailedMemoryProfiler()
    was_tracing = tracemalloc.is_tracing()
    with profiler.profile_context("allocate"):
        kept = np.ones(100_000)                             # 800 kB held after the block
        temp = np.ones(200_000)                             # 1.6 MB freed inside the block
        del temp
    assert tracemalloc.is_tracing() == was_tracing
    rec = profiler.last
    assert rec.heap_delta >= kept.nbytes
    assert rec.heap_peak >= kept.nbytes + 1_600_000
    assert (rec.kv_bytes_before, rec.kv_bytes_after) == (0, 0)    # no scheduler given
