"""Chapter 12's figures and rate explorer: every figure draws from plain numbers, knee_rate
reads a knee off a curve, and the explorer's static twin stores what ``set`` gives."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from cblab_src.load import POLICIES, open_loop  # noqa: E402
from cblab_src.viz.load_figures import (knee_rate, plot_capacity_goodput, plot_gains,  # noqa: E402
                                        plot_goodput_per_gpu,
                                        plot_latency_vs_load, plot_latency_vs_throughput,
                                        plot_queues, plot_rate_explorer, policy_style)
from cblab_src.viz.static_explorer import palette_png  # noqa: E402
from cblab_src.widgets import rate_explorer  # noqa: E402

from conftest import PerToken  # noqa: E402

KNOBS = dict(max_tokens_per_step=256, prefill_chunk_size=64, max_num_seqs=16, block_size=16)


def small_run(policy, rate):
    """A seeded open-loop run small enough for a unit test (toy cost model)."""
    return open_loop(policy, rate, num_requests=40, warmup=5, cost_model=PerToken(), **KNOBS)


# ------------------------------------------------------------------ knee_rate
def test_knee_is_read_between_the_two_points_around_the_threshold():
    rates = [1, 2, 3, 4]
    # p99 40 ms at low load; crosses 400 ms between 3 (100 ms) and 4 (1000 ms): log-linear
    knee = knee_rate(rates, [40, 50, 100, 1000], factor=10)
    assert knee == pytest.approx(3 + math.log(400 / 100) / math.log(1000 / 100))
    assert knee_rate(rates, [40, 50, 100, 1000], factor=2) == pytest.approx(
        2 + math.log(80 / 50) / math.log(100 / 50))


def test_no_knee_is_nan_and_bad_curves_are_refused():
    assert math.isnan(knee_rate([1, 2, 3], [10, 20, 30], factor=10))
    assert math.isnan(knee_rate([1, 2], [10, 100], factor=10))       # equal is not past
    with pytest.raises(ValueError, match="ascending"):
        knee_rate([2, 1], [1, 2])
    with pytest.raises(ValueError, match="same length"):
        knee_rate([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="factor"):
        knee_rate([1, 2], [1, 2], factor=1)
    with pytest.raises(ValueError, match="positive"):
        knee_rate([1, 2], [0, 2])


def test_a_knee_moves_little_with_its_factor_on_a_steep_curve():
    rates = [8, 16, 24, 32]
    p99 = [40, 45, 60, 6000]
    knees = [knee_rate(rates, p99, f) for f in (5, 10, 20)]
    assert knees == sorted(knees) and knees[-1] - knees[0] < 4


# ------------------------------------------------------------------ figures
def test_each_policy_keeps_its_style_and_other_names_get_series_colours():
    styles = {p: policy_style(p) for p in POLICIES}
    assert len({s[0] for s in styles.values()}) == len(POLICIES)        # one colour each
    assert styles["vllm_v1"][2] == "--" and styles["decode_first"][3] == "decode-first"
    assert policy_style("my server", 1)[3] == "my server"


def test_the_figures_draw_from_plain_numbers():
    rates = [8, 16, 24]
    series = {p: [20.0, 30.0, 400.0] for p in POLICIES}
    fig = plot_latency_vs_load(rates, {"p50 TTFT (ms)": series, "p99 TTFT (ms)": series},
                               knees={"decode_first": 20.0, "static": float("nan")})
    assert len(fig.axes) == 2
    assert len(fig.axes[0].lines) == len(POLICIES) + 1                  # one knee drawn
    t = np.array([0.0, 100.0, 250.0])
    fig = plot_queues({"16/s": {"decode_first": (t, np.array([1, 2, 0]))},
                       "32/s": {"prefill_first": (t, np.array([1, 0, 0]))}})
    assert len(fig.axes) == 2
    fig = plot_capacity_goodput({"tight": {"static": 0.01, "decode_first": 25.0},
                                 "loose": {"static": 0.02, "decode_first": 28.0}}, rates,
                                {"tight": {"decode_first": [8, 16, 10]}})
    assert len(fig.axes) == 2 and len(fig.axes[0].patches) == 4
    fig = plot_gains({"ours": 1.4, "paper": 2.6}, ours=["ours"])
    assert [round(p.get_width(), 1) for p in fig.axes[0].patches] == [1.4, 2.6]
    fig = plot_latency_vs_throughput({"static": ([10, 100], [3, 30]),
                                      "decode_first": ([1000, 4000], [2.7, 3.3])})
    assert len(fig.axes[0].lines) == 2
    fig = plot_rate_explorer(16, {"decode_first": (t, np.array([1, 2, 0]))}, rates,
                             {"decode_first": [20, 30, 400]}, {"decode_first": 30})
    assert len(fig.axes) == 2


# ------------------------------------------------------------------ the rate explorer
def test_the_rate_explorer_reports_every_policy_and_its_twin_is_what_set_gives():
    runs = {}

    def run_at(policy, rate):
        if (policy, rate) not in runs:
            runs[policy, rate] = small_run(policy, rate)
        return runs[policy, rate]

    explorer = rate_explorer(run_at, rates=(5, 20, 80), rate=20)
    assert explorer.params == {"rate": 20} and explorer.specs["rate"].grid_values() == (5, 20, 80)
    report = explorer.report()
    assert report.splitlines()[0] == "20 requests/s" and len(report.splitlines()) == 5
    s = small_run("decode_first", 20).summary()
    assert f"decode-first: TTFT p50 {s.ttft.p50:,.0f} ms" in report
    static = explorer.static()
    assert static.name == "rate_explorer" and static.num_settings == 3
    fresh = rate_explorer(run_at, rates=(5, 20, 80), rate=20)
    for setting in static.settings():
        fresh.set(**setting)
        assert static.report(**setting) == fresh.report(), setting
        assert static.png(**setting) == palette_png(fresh.figure()), setting


def test_the_rate_explorer_runs_open_loop_itself_when_given_no_runs():
    explorer = rate_explorer(rates=(10, 40), rate=10, policies=("static", "decode_first"),
                             num_requests=30, warmup=3, cost_model=PerToken(), **KNOBS)
    assert len(explorer.report().splitlines()) == 3
    explorer.set(rate=40)
    assert explorer.report().startswith("40 requests/s")
    with pytest.raises(TypeError, match="not both"):
        rate_explorer(small_run, num_requests=30)


def test_the_goodput_per_gpu_figure_has_a_panel_per_target_pair_and_a_line_per_layout():
    fig = plot_goodput_per_gpu([1.0, 2.0], {
        "tight": {"2 colocated": [1.0, 0.9], "1 prefill + 1 decode": [1.0, 1.8]},
        "loose": {"2 colocated": [1.0, 2.0], "1 prefill + 1 decode": [1.0, 1.9]}})
    assert len(fig.axes) == 2
    styles = [line.get_linestyle() for line in fig.axes[0].lines[1:]]
    assert styles == ["-", "--"]
