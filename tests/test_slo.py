"""Serving under load: targets met, goodput, capacity (cblab_src.slo) and open-loop runs
(cblab_src.load), on hand-made runs first, then on simulated ones."""

from __future__ import annotations

import numpy as np
import pytest

from cblab_src.load import LoadPoint, open_loop
from cblab_src.monitoring.metrics import RequestTimes
from cblab_src.timing import capacity, goodput, meets_percentile_targets, met_targets

from conftest import PerToken


class Run:
    """A finished run as the slo functions read it: ``times``."""

    def __init__(self, times):
        self.times = times


def times(req_id, arrival, tokens, finish=None):
    """A request arriving at ``arrival`` ms whose tokens are ready at ``tokens`` (ms)."""
    return RequestTimes(req_id, 4, float(arrival), tuple(map(float, tokens)),
                        float(tokens[-1] if finish is None else finish), "ms")


# Three requests: TTFTs 10, 30, 5 ms; TPOTs 5, 20 and none (one token); from 0 ms (a arrives)
# to 60 ms (b's last token).
HAND = Run([times("a", 0, [10, 15, 20]), times("b", 10, [40, 60]), times("c", 45, [50])])


def test_which_requests_meet_their_targets_by_hand():
    assert met_targets(HAND, ttft_slo_ms=30, tpot_slo_ms=20) == [True, True, True]
    assert met_targets(HAND, ttft_slo_ms=20, tpot_slo_ms=20) == [True, False, True]
    assert met_targets(HAND, ttft_slo_ms=30, tpot_slo_ms=10) == [True, False, True]


def test_goodput_is_completed_over_duration_when_every_request_meets_its_targets():
    assert goodput(HAND, ttft_slo_ms=1e9, tpot_slo_ms=1e9) == pytest.approx(3 / 0.060)
    assert goodput(HAND, ttft_slo_ms=20, tpot_slo_ms=20) == pytest.approx(2 / 0.060)


def test_tightening_a_target_never_raises_goodput():
    rng = np.random.default_rng(0)
    run = Run([times(i, a, np.cumsum(rng.exponential(20, 1 + i % 5)) + a)
               for i, a in enumerate(np.cumsum(rng.exponential(10, 200)))])
    for _ in range(200):
        ttft, tpot = rng.uniform(0, 60, 2)
        base = goodput(run, ttft_slo_ms=ttft, tpot_slo_ms=tpot)
        assert goodput(run, ttft_slo_ms=ttft * rng.uniform(0, 1), tpot_slo_ms=tpot) <= base
        assert goodput(run, ttft_slo_ms=ttft, tpot_slo_ms=tpot * rng.uniform(0, 1)) <= base


def test_percentile_targets_by_hand():
    run = Run([times(i, 0, [i + 1]) for i in range(100)])       # TTFTs 1 .. 100 ms
    assert np.percentile(np.arange(1, 101), 99) == pytest.approx(99.01)
    assert not meets_percentile_targets(run, ttft_slo_ms=99, tpot_slo_ms=0)
    assert meets_percentile_targets(run, ttft_slo_ms=99.01, tpot_slo_ms=0)    # no TPOT at all
    assert meets_percentile_targets(run, ttft_slo_ms=50.5, tpot_slo_ms=0, percentile=50)


def test_capacity_is_where_the_percentile_crosses_the_target():
    """A server whose p99 TTFT is 10 ms per request/s: a 50 ms target holds up to 5/s."""
    probed = []

    def run_at(rate):
        probed.append(rate)
        return Run([times(i, 0, [10 * rate * (0.5 + i / 200)]) for i in range(100)])

    cap = capacity(run_at, ttft_slo_ms=50, tpot_slo_ms=1, rel_tol=0.01)
    p99_factor = float(np.percentile(0.5 + np.arange(100) / 200, 99))     # 0.995
    exact = 50 / (10 * p99_factor)
    assert exact * 0.99 <= cap <= exact
    assert meets_percentile_targets(run_at(cap), ttft_slo_ms=50, tpot_slo_ms=1)
    assert not meets_percentile_targets(run_at(cap * 1.01 + 1e-9), ttft_slo_ms=50, tpot_slo_ms=1)
    assert capacity(run_at, ttft_slo_ms=0, tpot_slo_ms=1) == 0.0


def test_capacity_takes_another_test_instead_of_the_targets():
    """Sarathi-Serve's rule is a p99 time between tokens and a median scheduling delay: any
    ``meets(run)`` works. Here a run "passes" below 3 requests/s."""
    cap = capacity(lambda rate: rate, meets=lambda rate: rate <= 3.0, rel_tol=0.01)
    assert 3.0 * 0.99 <= cap <= 3.0
    with pytest.raises(ValueError, match="meets"):
        capacity(lambda rate: rate, ttft_slo_ms=1.0)
    with pytest.raises(ValueError, match="not both"):
        capacity(lambda rate: rate, ttft_slo_ms=1.0, tpot_slo_ms=1.0, meets=lambda run: True)


KNOBS = dict(max_tokens_per_step=256, prefill_chunk_size=64, max_num_seqs=16, block_size=16)


@pytest.mark.parametrize("policy", ["static", "prefill_first", "decode_first", "vllm_v1"])
def test_an_open_loop_run_measures_the_middle_requests(policy):
    load = open_loop(policy, 20.0, num_requests=60, warmup=10, cost_model=PerToken(), **KNOBS)
    measured = load.request_times()
    assert len(measured) == 40
    everyone = sorted(load._all_times(), key=lambda t: t.arrival)
    assert measured == everyone[10:50]
    t, n = load.queue()
    assert n[0] == 1 and n[-1] == 0 and n.min() >= 0 and len(t) == 120 and np.all(np.diff(t) >= 0)
    point = LoadPoint.of(load)
    assert point.ttft.count == 40 and point.max_queue == n.max()
    assert open_loop(policy, 20.0, num_requests=60, warmup=10, cost_model=PerToken(),
                     **KNOBS).request_times() == measured            # seeded: the same run


def test_more_load_means_longer_waits_and_continuous_batching_sustains_more():
    """Past its capacity a policy's p99 TTFT explodes; static batching's capacity is lower."""
    def run_at(policy):
        return lambda rate: open_loop(policy, rate, num_requests=80, warmup=10,
                                      cost_model=PerToken(), **KNOBS)
    slow, fast = run_at("decode_first")(2.0), run_at("decode_first")(200.0)
    assert fast.summary().ttft.p99 > 5 * slow.summary().ttft.p99
    targets = dict(ttft_slo_ms=2000, tpot_slo_ms=50, rel_tol=0.1)
    assert capacity(run_at("decode_first"), **targets) > capacity(run_at("static"), **targets)


def test_static_batching_needs_a_batch_size():
    with pytest.raises(ValueError, match="max_num_seqs"):
        open_loop("static", 1.0, num_requests=10, warmup=0)
    with pytest.raises(ValueError, match="warmup"):
        open_loop("decode_first", 1.0, num_requests=10, warmup=5)
    with pytest.raises(ValueError, match="policy"):
        open_loop("decode-first", 1.0)
