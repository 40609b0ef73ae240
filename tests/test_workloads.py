"""Seeded workload generators: lengths, arrivals, paper shapes."""

import math

import numpy as np
import pytest

from cblab_src.workloads import (SHAREGPT, SHAREGPT4_SARATHI, LengthDist, Workload,
                                 anyscale_shape, poisson_arrivals, random_workload,
                                 sample_lengths, synthetic_workload)


def test_same_seed_same_workload_other_seed_other_workload():
    a = synthetic_workload(50, SHAREGPT, arrival_rate=2.0, seed=3)
    b = synthetic_workload(50, SHAREGPT, arrival_rate=2.0, seed=3)
    c = synthetic_workload(50, SHAREGPT, arrival_rate=2.0, seed=4)
    assert a == b
    assert a.prompt_lens != c.prompt_lens


@pytest.mark.parametrize("dist, mean", [
    (LengthDist.fixed(7), 7),
    (LengthDist.uniform(10, 30), 20),
    (LengthDist.exponential(100), 100),
    (LengthDist.lognormal(200, sigma=0.8), 200),
    (LengthDist.lognormal(median=100, sigma=1.0), 100 * math.exp(0.5)),
])
def test_means_within_tolerance(dist, mean):
    x = sample_lengths(dist, 40_000, seed=1)
    assert x.dtype == np.int64 and x.min() >= dist.low
    assert x.mean() == pytest.approx(mean, rel=0.03)


def test_uniform_covers_both_ends():
    x = sample_lengths(LengthDist.uniform(3, 5), 1000)
    assert set(x.tolist()) == {3, 4, 5}


def test_lognormal_has_a_long_tail():
    x = sample_lengths(LengthDist.lognormal(161, sigma=1.0), 20_000)
    assert np.median(x) < 0.7 * x.mean()          # median exp(-1/2) of the mean
    assert np.percentile(x, 99) > 5 * np.median(x)


def test_clip_and_resample_caps():
    clipped = sample_lengths(LengthDist.exponential(128, high=32), 5000)
    resampled = sample_lengths(LengthDist.exponential(128, high=32, truncate="resample"), 5000)
    assert clipped.max() == resampled.max() == 32
    assert (clipped == 32).mean() > 0.7            # most draws exceed 32 and are clipped
    assert resampled.mean() < 20                   # truncated exponential: mean ~ 15


def test_anyscale_shape_matches_their_generator():
    w = synthetic_workload(2000, anyscale_shape(1536))
    assert set(w.prompt_lens) == {512}
    assert max(w.output_lens) <= 1536
    assert np.mean(w.output_lens) == pytest.approx(128, rel=0.06)
    small = synthetic_workload(2000, anyscale_shape(32))
    assert np.mean(small.output_lens) == pytest.approx(15.5, rel=0.08)


def test_sharegpt_shape_is_near_the_published_means_and_fits_the_context():
    w = synthetic_workload(20_000, SHAREGPT)
    total = np.add(w.prompt_lens, w.output_lens)
    assert total.max() <= 2048 and min(w.output_lens) >= 1
    assert np.mean(w.prompt_lens) == pytest.approx(161.31, rel=0.06)
    assert np.mean(w.output_lens) == pytest.approx(337.99, rel=0.06)


def test_sarathi_shape_matches_median_and_p90():
    w = synthetic_workload(20_000, SHAREGPT4_SARATHI)
    assert np.median(w.prompt_lens) == pytest.approx(1730, rel=0.08)
    assert np.percentile(w.prompt_lens, 90) == pytest.approx(5696, rel=0.08)
    assert np.median(w.output_lens) == pytest.approx(415, rel=0.05)
    assert max(np.add(w.prompt_lens, w.output_lens)) <= 8192


def test_poisson_arrivals_rate_and_start():
    t = poisson_arrivals(20_000, rate=4.0, seed=2)
    assert t[0] == 0 and np.all(np.diff(t) >= 0)
    assert (len(t) - 1) / t[-1] == pytest.approx(4.0, rel=0.03)
    gaps = np.diff(t)
    assert gaps.std() == pytest.approx(gaps.mean(), rel=0.05)    # exponential gaps


def test_arrivals_in_seconds_or_steps():
    timed = synthetic_workload(100, SHAREGPT, arrival_rate=10.0, seed=0)
    assert timed.arrival_ms is not None and timed.arrival_ms[0] == 0
    assert timed.arrival_ms[-1] == pytest.approx(99 / 10 * 1000, rel=0.3)
    assert all(s.arrival_step == 0 for s in timed.specs)
    stepped = synthetic_workload(100, SHAREGPT, arrival_rate=0.5, arrival_unit="step", seed=0)
    assert stepped.arrival_ms is None
    steps = [s.arrival_step for s in stepped.specs]
    assert steps == sorted(steps) and steps[-1] > 100
    assert synthetic_workload(5, SHAREGPT).arrival_ms is None


def test_tokens_are_seeded_and_inside_the_vocabulary():
    w = synthetic_workload(20, SHAREGPT, vocab_size=7, seed=5)
    assert all(0 <= t < 7 for s in w.specs for t in s.prompt)
    assert w.requests()[0].prompt == w.specs[0].prompt


def test_existing_api_still_works():
    w = random_workload(4, seed=1)
    assert len(w) == 4 and w.arrival_ms is None
    v = Workload.from_lengths([3, 4], 2, [0, 1], seed=0, arrival_ms=[0.0, 12.5])
    assert v.arrival_ms.tolist() == [0.0, 12.5] and v.output_lens == [2, 2]


def test_bad_input_names_the_parameter():
    with pytest.raises(ValueError, match="kind"):
        LengthDist("gamma")
    with pytest.raises(ValueError, match="high"):
        LengthDist.uniform(5, 3)
    with pytest.raises(ValueError, match="sigma"):
        LengthDist.lognormal(100, sigma=-1)
    with pytest.raises(ValueError, match="exactly one of mean and median"):
        LengthDist.lognormal(100, median=50)
    with pytest.raises(ValueError, match="rate"):
        poisson_arrivals(3, rate=0)
    with pytest.raises(ValueError, match="arrival_unit"):
        synthetic_workload(3, SHAREGPT, arrival_rate=1.0, arrival_unit="minutes")
    with pytest.raises(ValueError, match="shape"):
        synthetic_workload(3)
    with pytest.raises(TypeError, match="dist"):
        sample_lengths("fixed", 3)
    with pytest.raises(ValueError, match="arrival_ms"):
        Workload.from_lengths([3], 1, arrival_ms=[-1.0])


def test_from_texts_encodes_prompts_and_stops_at_eos_by_default():
    from cblab_src import CharTokenizer, SamplingParams
    tok = CharTokenizer()
    w = Workload.from_texts({"a": "Hi", "b": "A"}, tok, max_new_tokens=[3, 4], arrival_steps=2)
    assert [s.req_id for s in w.specs] == ["a", "b"]
    assert w.specs[0].prompt == (42, 75) and w.specs[1].prompt == (35,)
    assert [s.max_new_tokens for s in w.specs] == [3, 4] and w.specs[0].arrival_step == 2
    assert w.specs[0].sampling == SamplingParams(eos_token_id=tok.eos_id)
    plain = Workload.from_texts(["x", "y"], tok, 1, sampling=SamplingParams())
    assert plain.req_ids == [0, 1] and plain.specs[0].sampling.eos_token_id is None
    with pytest.raises(ValueError, match="prompts must not be empty"):
        Workload.from_texts([], tok, 1)
    with pytest.raises(ValueError, match="max_new_tokens must have 2 entries"):
        Workload.from_texts(["x", "y"], tok, [1])
    with pytest.raises(ValueError, match=r"text\[0\]"):
        Workload.from_texts(["\u00e9"], tok, 1)
