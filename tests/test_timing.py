"""Runs in milliseconds: step clocks, arrivals in ms, latency summaries."""

import numpy as np
import pytest

from cblab_src.costmodel import H200_LLAMA3_8B, CostModel, StepArrays, StepComposition
from cblab_src.simulate import simulate_schedule
from cblab_src.timing import LatencySummary, RequestTimes, simulate_timed, timed
from cblab_src.workloads import SHAREGPT, Workload, synthetic_workload

from conftest import PerToken


def test_timed_run_adds_up_step_costs():
    w = Workload.from_lengths([4, 2], [3, 2], [0, 1])
    run = simulate_schedule(w, max_tokens_per_step=8, prefill_chunk_size=8)
    t = run.timed(PerToken())
    expected = [1 + 0.5 * s.num_tokens for s in run.history]
    assert t.step_ms.tolist() == expected
    assert t.step_end_ms.tolist() == np.cumsum(expected).tolist()
    a, b = t.request_times()
    ra, rb = run.requests
    assert a.unit == b.unit == "ms"
    assert a.token_times == tuple(t.step_end_ms[ra.token_steps])
    assert a.ttft == t.step_end_ms[ra.first_token_step]                    # arrived at 0
    assert b.arrival == t.step_end_ms[0]                                   # at step 1's start
    assert np.asarray(a.itl).tolist() == np.diff(a.token_times).tolist()
    assert a.tpot == pytest.approx((a.token_times[-1] - a.token_times[0]) / 2)


def test_idle_steps_last_idle_step_ms():
    w = Workload.from_lengths([2, 2], [1, 1], [0, 5])
    run = simulate_schedule(w, max_tokens_per_step=8, prefill_chunk_size=8)
    idle = [s.step_id for s in run.history if s.num_tokens == 0]
    assert idle
    t = timed(run.history, run.requests, PerToken(), idle_step_ms=7.0)
    assert all(t.step_ms[i] == 7.0 for i in idle)
    with pytest.raises(ValueError, match="idle_step_ms"):
        timed(run.history, run.requests, PerToken(), idle_step_ms=-1)


def test_simulate_timed_waits_for_the_step_in_flight_and_idles_to_arrivals():
    # A arrives at 0 (prompt 4: a 3 ms prefill step); B arrives at 1 ms, mid-step: it joins
    # the next step. C arrives at 100 ms when everything is done: the clock jumps there.
    w = Workload.from_lengths([4, 2, 2], [2, 1, 1], arrival_ms=[0.0, 1.0, 100.0])
    run = simulate_timed(w, PerToken(), max_tokens_per_step=8, prefill_chunk_size=8)
    a, b, c = run.request_times()
    assert a.unit == "ms" and a.token_times[0] == 3.0
    assert run.history[1].prefill_chunks[0][0] == 1                # B's prefill is step 1
    assert b.ttft == pytest.approx(3.0 + (1 + 0.5 * 3) - 1.0)      # step 1: A's decode + B
    assert c.arrival == 100.0 and c.ttft == pytest.approx(1 + 0.5 * 2)
    assert run.busy_ms < run.step_end_ms[-1]


def test_all_at_once_matches_the_step_clock():
    w = synthetic_workload(30, SHAREGPT, seed=4)
    knobs = dict(max_tokens_per_step=256, prefill_chunk_size=128)
    a = simulate_timed(w, H200_LLAMA3_8B, **knobs).summary()
    b = simulate_schedule(w, **knobs).timed(H200_LLAMA3_8B).summary()
    assert a == b


def test_latency_summary_by_hand():
    times = [RequestTimes("a", 5, 0.0, (10.0, 20.0, 40.0), 40.0),
             RequestTimes("b", 3, 5.0, (15.0,), 15.0)]
    s = LatencySummary.of(times, num_steps=4)
    assert s.makespan == 40.0 and s.output_tokens == 4 and s.prompt_tokens == 8
    assert s.throughput_tok_s == pytest.approx(100.0)
    assert s.total_tok_s == pytest.approx(300.0)
    assert s.ttft.p50 == pytest.approx(10.0) and s.ttft.mean == 10.0
    assert s.itl.max == 20.0 and s.itl.p50 == 15.0
    assert s.tpot.mean == 15.0
    assert s.e2e.p50 == 25.0 and s.unit == "ms"


class OneMsPerStep(CostModel):
    """Every step, empty or not, lasts 1 ms: the millisecond clock then reads like the step one."""

    name = "one ms per step"

    def parts(self, steps: StepArrays):
        zero = np.zeros(len(steps))
        return {"dense": np.ones(len(steps)), "attention": zero, "lm_head": zero,
                "allreduce": zero, "overhead": zero}


def test_a_run_in_steps_is_the_same_record_as_in_ms_with_1_ms_steps():
    # One latency model: step s ends at time s + 1 on the step clock, at step_end_ms[s] in ms.
    w = Workload.from_lengths([6, 3, 9, 2], [3, 1, 4, 0], [0, 1, 1, 5])
    run = simulate_schedule(w, max_tokens_per_step=6, prefill_chunk_size=4)
    in_ms = run.timed(OneMsPerStep(), idle_step_ms=1.0)
    steps, ms = run.request_times(), in_ms.request_times()
    assert [t.unit for t in steps] == ["step"] * 4 and [t.unit for t in ms] == ["ms"] * 4
    for a, b in zip(steps, ms):
        assert (a.arrival, a.token_times, a.finish) == (b.arrival, b.token_times, b.finish)
        assert (a.ttft, a.tpot, a.itl, a.e2e) == (b.ttft, b.tpot, b.itl, b.e2e)
    s, t = run.latency_summary(), in_ms.summary()
    assert (s.unit, t.unit) == ("step", "ms")
    assert (s.ttft, s.tpot, s.itl, s.e2e, s.makespan) == (t.ttft, t.tpot, t.itl, t.e2e, t.makespan)
    assert s.throughput == t.throughput == s.output_tokens / s.makespan


def test_rates_per_second_refuse_the_step_clock_and_units_do_not_mix():
    step = RequestTimes("a", 2, 0, (2, 3), 3, unit="step")
    assert (step.ttft, step.itl, step.tpot, step.e2e) == (2, (1,), 1.0, 3)
    with pytest.raises(ValueError, match="in steps, not ms"):
        LatencySummary.of([step], num_steps=3).throughput_tok_s
    with pytest.raises(ValueError, match="one unit"):
        LatencySummary.of([step, RequestTimes("b", 1, 0.0, (1.0,), 1.0)], num_steps=3)
    with pytest.raises(ValueError, match="unit must be one of"):
        RequestTimes("c", 1, 0, (1,), 1, unit="s")


def test_step_ms_under_h200_is_in_milliseconds():
    w = synthetic_workload(20, SHAREGPT, seed=1)
    run = simulate_schedule(w, max_tokens_per_step=512, prefill_chunk_size=512).timed()
    assert 8 < np.median(run.step_ms) < 40                      # a Llama-3-8B step on an H200
    assert run.summary().itl.p50 == pytest.approx(np.median(run.step_ms), rel=0.5)


def test_ms_workloads_refuse_the_step_simulator_and_vice_versa():
    timed_w = synthetic_workload(5, SHAREGPT, arrival_rate=1.0)
    with pytest.raises(ValueError, match="milliseconds"):
        simulate_schedule(timed_w, max_tokens_per_step=8, prefill_chunk_size=8)
    stepped = synthetic_workload(5, SHAREGPT, arrival_rate=1.0, arrival_unit="step", seed=2)
    with pytest.raises(ValueError, match="counted in steps"):
        simulate_timed(stepped, max_tokens_per_step=8, prefill_chunk_size=8)
    with pytest.raises(TypeError, match="cost_model"):
        simulate_timed(timed_w, "H200", max_tokens_per_step=8, prefill_chunk_size=8)


def test_composition_of_a_mixed_step_is_costed():
    comp = StepComposition((100, 200), ((0, 64),), 2)
    assert H200_LLAMA3_8B.step_ms(comp) > H200_LLAMA3_8B.step_ms(StepComposition((100,), (), 1))
