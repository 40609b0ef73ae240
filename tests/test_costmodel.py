"""Cost models: the measured H200 table and the analytic roofline."""

import numpy as np
import pytest

from cblab_src.costmodel import (GPUS, H200_LLAMA3_8B, H200_LLAMA3_8B_ONE_LAUNCH,
                                 H200_LLAMA3_8B_ROOFLINE, LLAMA3_8B, Curve, Roofline, StepArrays,
                                 StepComposition, h200_measurements, kv_capacity_tokens,
                                 monotone_fit)

H200 = H200_LLAMA3_8B
DATA = h200_measurements()


def decode_step(n, context=512):
    return StepComposition.uniform(num_decodes=n, context_len=context)


def test_monotone_fit_pools_adjacent_violators():
    assert monotone_fit([1, 3, 2, 4]).tolist() == [1, 2.5, 2.5, 4]
    assert monotone_fit([3, 2, 1]).tolist() == [2, 2, 2]
    assert monotone_fit([1, 2, 3]).tolist() == [1, 2, 3]


def test_curve_hits_its_points_exactly_and_is_non_decreasing():
    for curve in (H200.dense, H200.lm_head, H200.decode_attention, H200.prefill_attention):
        assert np.array_equal(curve(curve.x), curve.y)
        assert np.all(np.diff(curve.y) >= 0)
        grid = np.geomspace(curve.x[0], curve.x[-1] * 4, 200)
        assert np.all(np.diff(curve(grid)) >= -1e-12)


def test_curve_keeps_the_measured_points_where_they_were_already_monotone():
    raw = DATA["layer_dense_ms"]
    for tokens in ("384", "512", "1024", "2048", "4096", "8192", "16384"):
        assert H200.dense(int(tokens)) == pytest.approx(raw[tokens], abs=1e-12)
    assert H200.lm_head(1024) == pytest.approx(DATA["lm_head_ms"]["1024"])


def test_the_fit_only_moves_noisy_points_near_the_floors():
    for curve, limit in ((H200.dense, 0.07), (H200.lm_head, 0.01), (H200.prefill_attention, 0.15)):
        assert np.all(np.abs(curve.y - curve.raw) <= limit * curve.raw)
    big = H200.decode_attention.x >= 16384                  # above the launch floor
    assert np.array_equal(H200.decode_attention.y[big], H200.decode_attention.raw[big])


def test_curve_extends_its_last_segment():
    c = Curve(np.array([1.0, 2.0, 4.0]), np.array([1.0, 1.0, 3.0]))
    assert c(8.0) == pytest.approx(7.0)          # slope 1 per unit past x = 4
    assert c(0.5) == pytest.approx(1.0)          # held below the first point


def test_decode_attention_depends_on_total_cached_tokens():
    # 64 x 2048, 128 x 1024 and 256 x 512 read the same number of cached tokens.
    steps = StepArrays.of([StepComposition((ctx,) * n, (), 0) for n, ctx in
                           ((64, 2048), (128, 1024), (256, 512))])
    attention = H200.parts(steps)["attention"]
    assert attention.max() / attention.min() < 1.1
    measured = [DATA["decode_attn_ms"][k] for k in ("64x2048", "128x1024", "256x512")]
    assert attention / H200.n_layers == pytest.approx(measured, rel=0.05)


def test_a_step_of_one_token_costs_about_what_256_tokens_cost():
    one, many = H200.step_ms(decode_step(1)), H200.step_ms(decode_step(256, context=1))
    assert many < 1.25 * one
    assert H200.step_ms(StepComposition.uniform(chunks=1, chunk_len=8192)) > 10 * one


def test_step_time_grows_with_tokens_and_context():
    tokens = [H200.step_ms(decode_step(n)) for n in (1, 8, 64, 256, 1024, 4096)]
    assert np.all(np.diff(tokens) >= 0)
    contexts = [H200.step_ms(decode_step(64, c)) for c in (16, 256, 4096, 65536)]
    assert np.all(np.diff(contexts) > 0)


def test_empty_step_costs_nothing_and_parts_add_up():
    assert H200.step_ms(StepComposition()) == 0.0
    steps = StepArrays.of([decode_step(10), StepComposition.uniform(3, 100, 1, 64, 200)])
    parts = H200.parts(steps)
    assert np.allclose(sum(parts.values()), H200.steps_ms(steps))
    assert parts["allreduce"].sum() == 0


def test_lm_head_only_counts_sampled_rows():
    partial = StepComposition(prefill_chunks=((0, 64),), num_sampled=0)
    done = StepComposition(prefill_chunks=((0, 64),), num_sampled=1)
    assert H200.parts(StepArrays.of([partial]))["lm_head"][0] == 0
    assert H200.step_ms(done) > H200.step_ms(partial)


def test_prefill_attention_counts_earlier_context():
    fresh = StepComposition(prefill_chunks=((0, 512),), num_sampled=0)
    late = StepComposition(prefill_chunks=((4096, 512),), num_sampled=0)
    assert H200.step_ms(late) > H200.step_ms(fresh)


def test_composition_of_step_stats():
    from cblab_src import Request, Scheduler
    sched = Scheduler(None, max_tokens_per_step=8, prefill_chunk_size=4)
    sched.add_request(Request("a", [1, 2, 3], 3))
    sched.add_request(Request("b", [1] * 6, 2))
    first = StepComposition.of(sched.step())
    assert first.prefill_chunks == ((0, 3), (0, 4)) and first.num_sampled == 1
    second = StepComposition.of(sched.step())
    assert second.decode_context_lens == (4,)       # a's 3 prompt tokens + its first token
    assert second.prefill_chunks == ((4, 2),) and second.num_tokens == 3


def test_bad_compositions_are_refused():
    with pytest.raises(ValueError, match="decode context length"):
        StepComposition(decode_context_lens=(0,))
    with pytest.raises(ValueError, match="chunk length"):
        StepComposition(prefill_chunks=((3, 0),))
    with pytest.raises(TypeError, match="StepComposition"):
        H200.step_ms("three decodes")


# ---------------------------------------------------------------- roofline
def test_roofline_is_memory_bound_at_one_token_and_compute_bound_at_many():
    r = Roofline.of("H200")
    assert r.dense_bound(1) == "memory" and r.dense_bound(8192) == "compute"
    assert 150 < r.ridge_tokens < 300
    # memory-bound: the same time for 1 and 64 tokens; compute-bound: time grows with tokens
    assert r.dense_layer_ms(1) == pytest.approx(r.dense_layer_ms(64))
    assert r.dense_layer_ms(8192) == pytest.approx(2 * r.dense_layer_ms(4096))


def test_roofline_weights_read_matches_the_model_size():
    r = Roofline.of("H200")
    weights_ms = LLAMA3_8B.layer_params * 2 / (GPUS["H200"].mem_bw_gbps * 1e6)
    assert r.dense_layer_ms(1) == pytest.approx(weights_ms)
    assert LLAMA3_8B.kv_bytes_per_token == 128 * 1024
    assert 7.9e9 < LLAMA3_8B.params < 8.1e9


def test_tensor_parallel_halves_the_work_and_adds_all_reduces():
    one, two = Roofline.of("H100"), Roofline.of("H100", tp=2)
    steps = StepArrays.of([decode_step(1), decode_step(256), StepComposition.uniform(chunks=1, chunk_len=4096)])
    p1, p2 = one.parts(steps), two.parts(steps)
    assert np.allclose(p2["dense"], p1["dense"] / 2)
    assert np.allclose(p2["attention"], p1["attention"] / 2)
    assert np.all(p1["allreduce"] == 0) and np.all(p2["allreduce"] > 0)
    # two ring all-reduces per layer, each 2 (tp-1)/tp of the activations plus a latency
    t = 4096
    expected = LLAMA3_8B.n_layers * 2 * (t * 4096 * 2 / (450e3 * 1e3) * 1 + 10e-3)
    assert p2["allreduce"][2] == pytest.approx(expected)
    assert np.all(two.steps_ms(steps) < one.steps_ms(steps))


def test_roofline_bad_input():
    with pytest.raises(ValueError, match="gpu must be one of"):
        Roofline.of("TPU")
    with pytest.raises(ValueError, match="tp must divide"):
        Roofline.of("H100", tp=3)
    with pytest.raises(ValueError, match="peak_tflops"):
        Roofline(0, 100)


def test_kv_capacity_of_an_h200():
    tokens = kv_capacity_tokens("H200")
    assert 700_000 < tokens < 900_000
    with pytest.raises(ValueError, match="does not fit"):
        kv_capacity_tokens("A100-40GB", Roofline.of("H100").model.__class__(
            "huge", 16384, 126, 128, 8, 128, 53248, 128256))


# ---------------------------------------------------------------- presets without launch overhead
def test_the_roofline_preset_is_the_measured_gpu_without_launch_overhead():
    r = H200_LLAMA3_8B_ROOFLINE
    measured = GPUS["H200-measured"]
    assert (r.peak_tflops, r.mem_bw_gbps) == (measured.peak_tflops, measured.mem_bw_gbps)
    assert r.layer_overhead_ms == 0 and r.tp == 1 and r.model == LLAMA3_8B
    steps = StepArrays.of([decode_step(1), decode_step(256), StepComposition.uniform(3, 100, 1, 64)])
    assert np.all(r.parts(steps)["overhead"] == 0) and np.all(r.parts(steps)["allreduce"] == 0)


def test_with_no_overhead_each_kernel_takes_the_max_of_its_compute_and_memory_time():
    r = H200_LLAMA3_8B_ROOFLINE
    p, L = LLAMA3_8B.layer_params, LLAMA3_8B.n_layers
    flop_ms, byte_ms = 1 / (r.peak_tflops * 1e9), 1 / (r.mem_bw_gbps * 1e6)
    # one token: the weights' 2 bytes each, read once (memory-bound); 16384 tokens: 2 FLOPs per
    # weight per token (compute-bound)
    assert r.dense_layer_ms(1) == pytest.approx(2 * p * byte_ms)
    assert r.dense_layer_ms(16384) == pytest.approx(2 * 16384 * p * flop_ms)
    assert 0.09 < float(r.dense_layer_ms(1)) < 0.11             # ~0.10 ms, against ~0.28 measured
    # one decode over 100 cached tokens: dense + its K/V read + one LM-head row, by hand
    kv_bytes = 100 * 2 * LLAMA3_8B.n_kv_heads * LLAMA3_8B.head_dim * 2
    attn_flops = 4 * LLAMA3_8B.n_heads * LLAMA3_8B.head_dim * 100
    head = LLAMA3_8B.d_model * LLAMA3_8B.vocab
    expected = (L * (2 * p * byte_ms + max(attn_flops * flop_ms, kv_bytes * byte_ms))
                + max(2 * head * flop_ms, 2 * head * byte_ms))
    assert r.step_ms(decode_step(1, context=100)) == pytest.approx(expected)
    assert r.step_ms(StepComposition()) == 0.0


def test_the_roofline_preset_is_a_floor_under_the_measured_table():
    steps = [decode_step(1, 100), decode_step(64, 1024), decode_step(256, 1024),
             StepComposition.uniform(chunks=1, chunk_len=2048),
             StepComposition.uniform(chunks=1, chunk_len=16384),
             StepComposition((1024,) * 64, ((0, 448),), 65)]
    floor, table = H200_LLAMA3_8B_ROOFLINE, H200
    assert all(floor.step_ms(s) < table.step_ms(s) for s in steps)
    # reading 4M cached tokens, the measured kernels beat the measured copy bandwidth a little
    long = decode_step(256, 16384)
    assert abs(floor.step_ms(long) / table.step_ms(long) - 1) < 0.1
    # a small step: ~3.5 ms without launches, ~10.4 ms measured in eager mode
    assert floor.step_ms(decode_step(1, 100)) == pytest.approx(3.55, abs=0.05)
    assert table.step_ms(decode_step(1, 100)) == pytest.approx(10.36, abs=0.01)


def test_one_attention_launch_charges_a_mixed_step_one_floor():
    one, two = H200_LLAMA3_8B_ONE_LAUNCH, H200
    assert one.one_attention_launch and not two.one_attention_launch
    floor = min(two.decode_attention.y[0], two.prefill_attention.y[0])
    assert one.attention_floor_ms == pytest.approx(floor) and 0.02 < floor < 0.04
    mixed = StepComposition((20,), ((0, 7),), 1)                   # 1 decode + 7 prefill tokens
    assert two.step_ms(mixed) == pytest.approx(11.32, abs=0.005)
    assert two.step_ms(mixed) - one.step_ms(mixed) == pytest.approx(two.n_layers * floor)
    assert one.step_ms(mixed) == pytest.approx(10.36, abs=0.005)
    # steps that do not mix cost the same under both
    for s in (decode_step(8), StepComposition((), ((0, 8),), 0), StepComposition()):
        assert one.step_ms(s) == two.step_ms(s)
    assert two.step_ms(StepComposition((), ((0, 8),), 0)) == pytest.approx(9.92, abs=0.005)
    # one launch never makes a mixed step cheaper than its larger part alone
    for ctx, chunk in ((100, 7), (8192, 2048), (16384, 16)):
        step = StepComposition((ctx,) * 4, ((0, chunk),), 4)
        parts = one.parts(StepArrays.of([step]))["attention"][0]
        alone = max(two.parts(StepArrays.of([StepComposition((ctx,) * 4, (), 4)]))["attention"][0],
                    two.parts(StepArrays.of([StepComposition((), ((0, chunk),), 0)]))["attention"][0])
        assert parts >= alone


def test_one_attention_launch_must_be_a_bool():
    from dataclasses import replace
    with pytest.raises(TypeError, match="one_attention_launch"):
        replace(H200, one_attention_launch=1)
