"""The four reproductions, small: each runs and points the way the papers found."""

import numpy as np
import pytest
from matplotlib.figure import Figure

from cblab_src.reproductions import (budget_knee, chunked_prefill_tradeoff, continuous_vs_static,
                                     kv_memory_waste, paper_gain)
from cblab_src.reproductions.papers import ANYSCALE_CLAIMS, VLLM_FIG2


@pytest.fixture(scope="module")
def batching():
    return continuous_vs_static(quick=True)


def test_continuous_beats_static_and_paging_gains_more_as_outputs_vary(batching):
    rows = batching.rows
    assert [r.cap for r in rows] == [32, 128, 512, 1536]
    assert all(r.gain_continuous > 1.3 and r.gain_paged >= r.gain_continuous * 0.99 for r in rows)
    paged = [r.gain_paged for r in rows]
    assert paged == sorted(paged) and paged[-1] > 2.5 * paged[0]
    assert rows[-1].gain_continuous > rows[0].gain_continuous
    assert paper_gain("paged") == ANYSCALE_CLAIMS["paged"].value / 4


def test_batching_tables_and_figure(batching):
    text = batching.table()
    assert "gain paged" in text and len(text.splitlines()) == 5
    assert "23x" in batching.paper() and "5.75x" in batching.paper()
    assert isinstance(batching.figure(), Figure)


def test_paging_wastes_under_four_percent_and_contiguous_far_more():
    r = kv_memory_waste(quick=True)
    by = {row.scheme: row for row in r.schemes}
    assert by["paged"].internal_frag < 4
    assert by["max"].token_states < by["pow2"].token_states < by["oracle"].token_states < 70
    assert by["max"].paper_token_states == VLLM_FIG2["max"]["token_states"]
    waste = [row.internal_frag for row in r.block_sweep]
    assert waste == sorted(waste) and waste[0] == 0
    assert "Orca (Max)" in r.table() and "block size" in r.sweep_table()
    assert isinstance(r.figure(), Figure)


def test_chunking_bounds_decode_stalls_and_delays_first_tokens():
    r = chunked_prefill_tradeoff(quick=True)
    by = {row.name: row for row in r.configs}
    whole, chunked = by["decode-first, whole prompts"], by["decode-first, chunked"]
    assert chunked.itl_p99_ms < whole.itl_p99_ms / 2
    assert chunked.ttft_p50_ms > whole.ttft_p50_ms
    assert by["prefill-first, whole prompts"].itl_max_ms > 3 * chunked.itl_max_ms
    itl = [row.itl_p99_ms for row in r.sweep]
    assert itl == sorted(itl)
    ratios = r.ratios()
    assert ratios["itl_reduction"] > 1 and ratios["paper_itl_reduction"] == pytest.approx(0.68 / 0.14)
    assert whole.paper_itl_p99_ms == 680
    assert isinstance(r.figure(), Figure)


def test_budget_knee_throughput_saturates_while_latency_grows():
    r = budget_knee(quick=True)
    tput = [row.throughput_tok_s for row in r.rows]
    assert tput[-1] > 1.2 * tput[0]
    assert max(tput) < 1.1 * tput[-2]                # the last doubling buys little
    assert r.rows[2].itl_p99_ms > r.rows[0].itl_p99_ms
    assert r.knee_budget in [row.budget for row in r.rows]
    assert 150 < r.ridge_tokens < 300
    assert "budget" in r.table() and isinstance(r.figure(), Figure)


def test_reproductions_are_deterministic():
    a, b = kv_memory_waste(quick=True), kv_memory_waste(quick=True)
    assert a.table() == b.table()
    assert np.isclose(a.mean_prompt, b.mean_prompt)


def test_retimed_equals_running_again_under_the_other_cost_model():
    from cblab_src.costmodel import H200_LLAMA3_8B, H200_LLAMA3_8B_ROOFLINE
    from cblab_src.reproductions.common import retimed
    from cblab_src.timing import simulate_timed
    from cblab_src.workloads import SHAREGPT, synthetic_workload
    w = synthetic_workload(40, SHAREGPT, seed=3)
    knobs = dict(max_tokens_per_step=256, prefill_chunk_size=256)
    again = simulate_timed(w, H200_LLAMA3_8B_ROOFLINE, **knobs)
    moved = retimed(simulate_timed(w, H200_LLAMA3_8B, **knobs), H200_LLAMA3_8B_ROOFLINE)
    assert np.allclose(moved.step_ms, again.step_ms) and moved.summary() == again.summary()
    spread = synthetic_workload(10, SHAREGPT, arrival_rate=5.0, seed=3)
    with pytest.raises(ValueError, match="all arrive at 0"):
        retimed(simulate_timed(spread, H200_LLAMA3_8B, **knobs), H200_LLAMA3_8B_ROOFLINE)


def test_the_multi_model_runs_equal_one_run_per_model():
    from cblab_src.costmodel import H200_LLAMA3_8B, H200_LLAMA3_8B_ROOFLINE
    from cblab_src.reproductions.budget_knee import budget_knees
    from cblab_src.reproductions.continuous_vs_static import continuous_vs_static_under
    models = (H200_LLAMA3_8B, H200_LLAMA3_8B_ROOFLINE)
    knees = budget_knees(models, quick=True)
    assert knees[1] == budget_knee(cost_model=H200_LLAMA3_8B_ROOFLINE, quick=True)
    batching = continuous_vs_static_under(models, caps=(32, 512), batch_sizes=(16, 8), quick=True)
    assert batching[1] == continuous_vs_static(cost_model=H200_LLAMA3_8B_ROOFLINE, caps=(32, 512),
                                               batch_sizes=(16, 8), quick=True)


def test_cost_model_comparison_puts_each_finding_under_each_model():
    from cblab_src.reproductions import cost_model_comparison
    c = cost_model_comparison(quick=True)
    assert len(c.cost_models) == 3 and all(len(f.values) == 3 for f in c.findings)
    measured, one_launch, roofline = (dict((f.what, f.values[i]) for f in c.findings)
                                      for i in range(3))
    waste = c.get("paged, block 16")
    assert len(set(waste.values)) == 1 and waste.values[0] < 4       # no cost model involved
    # without launch overhead small steps are cheaper: the knee comes no later
    knee = c.get("knee").values
    assert knee[2] <= knee[0]
    # continuous batching beats static, and chunking cuts decode stalls, under every model
    assert all(v > 1 for v in c.get("continuous / static").values)
    assert all(v > 1 for v in c.get("p99 ITL, whole prompts / chunked").values)
    # one attention launch only helps the policy that mixes decodes and prefill chunks
    gap = c.get("decode-first / prefill-first").values
    assert gap[1] >= gap[0] > 1
    text = c.table(["measured", "one launch", "roofline"])
    assert "budget knee" in text and "roofline" in text.splitlines()[0]
    with pytest.raises(ValueError, match="labels"):
        c.table(["just one"])
