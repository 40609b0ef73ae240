"""TinyLLM: dense prefill shapes, chunked prefill through the scheduler equals one-shot prefill,
cached decoding equals recomputing, determinism, refused inputs, float32."""

import numpy as np
import pytest

from cblab_src import Request, RequestState, Scheduler, TinyLLM

from conftest import MODEL, RecordingLLM

PROMPT = [3, 17, 99, 4, 4, 60, 1, 127, 0, 42, 8]    # 11 tokens


def test_forward_prefill_dense_shapes(model):
    out = model.forward_prefill_dense(PROMPT)
    T = len(PROMPT)
    assert out.logits.shape == (T, model.vocab_size)
    assert len(out.keys) == len(out.values) == model.n_layers == 2
    for k, v in zip(out.keys, out.values):
        assert k.shape == v.shape == (T, model.n_heads, model.head_dim) == (T, 4, 16)
    assert out.num_computed_tokens == T


def test_dense_prefill_is_causal(model):
    # The first 5 positions do not depend on what follows them.
    full = model.forward_prefill_dense(PROMPT)
    head = model.forward_prefill_dense(PROMPT[:5])
    np.testing.assert_allclose(head.logits, full.logits[:5], rtol=0, atol=1e-10)
    for layer in range(model.n_layers):
        np.testing.assert_allclose(head.keys[layer], full.keys[layer][:5], rtol=0, atol=1e-10)


@pytest.mark.parametrize("kv_layout, block_size", [("dense", 16), ("paged", 4), ("paged", 1)])
@pytest.mark.parametrize("chunk", [1, 3, 4])
def test_chunked_prefill_equals_dense_prefill(kv_layout, block_size, chunk):
    recorder = RecordingLLM(seed=0)
    sched = Scheduler(recorder, max_tokens_per_step=64, prefill_chunk_size=chunk,
                      kv_layout=kv_layout, block_size=block_size)
    req = sched.add_request(Request("p", PROMPT, max_new_tokens=20))
    dense = MODEL.forward_prefill_dense(PROMPT)
    num_chunks = -(-len(PROMPT) // chunk)
    for i in range(num_chunks):
        sched.step()
        # After each chunk the cache holds a prefix of the one-shot prefill's K/V.
        cached = min((i + 1) * chunk, len(PROMPT))
        assert sched.kv_cache.num_computed_tokens("p") == req.prefill_pos == cached
        for layer in range(MODEL.n_layers):
            k, v = sched.kv_cache.read(layer, "p")
            np.testing.assert_allclose(k, dense.keys[layer][:cached], rtol=0, atol=1e-10)
            np.testing.assert_allclose(v, dense.values[layer][:cached], rtol=0, atol=1e-10)
    assert req.state is RequestState.DECODE and sched.step_count == num_chunks
    # Only the last chunk sampled: its logits are the dense logits of the last prompt position.
    sampling_steps = [logits for logits in recorder.step_logits if "p" in logits]
    assert len(sampling_steps) == 1
    np.testing.assert_allclose(sampling_steps[0]["p"], dense.logits[-1], rtol=0, atol=1e-10)
    assert req.generated == [int(np.argmax(dense.logits[-1]))]


@pytest.mark.parametrize("kv_layout", ["dense", "paged"])
def test_cached_decode_logits_equal_recomputing_the_whole_sequence(kv_layout):
    recorder = RecordingLLM(seed=0)
    sched = Scheduler(recorder, max_tokens_per_step=8, prefill_chunk_size=5,
                      kv_layout=kv_layout, block_size=4)
    req = sched.add_request(Request("p", PROMPT, max_new_tokens=5))
    sched.run()
    produced = [logits["p"] for logits in recorder.step_logits if logits]
    assert len(produced) == 5                      # one sampling forward per new token
    for i, logits in enumerate(produced):
        seq = PROMPT + req.generated[:i]
        np.testing.assert_allclose(logits, MODEL.forward_prefill_dense(seq).logits[-1],
                                   rtol=0, atol=1e-10)
    assert req.generated == MODEL.generate(PROMPT, 5)


def test_generate_is_deterministic():
    a, b = TinyLLM(seed=0), TinyLLM(seed=0)
    first = a.generate(PROMPT, 6)
    assert len(first) == 6 and all(0 <= t < a.vocab_size for t in first)
    assert a.generate(PROMPT, 6) == first
    assert b.generate(PROMPT, 6) == first
    assert a.generate(PROMPT, 3) == first[:3]       # a shorter run is a prefix
    assert a.generate(PROMPT, 0) == []
    assert TinyLLM(seed=1).generate(PROMPT, 6) != first


def test_generate_is_greedy_over_dense_logits(model):
    tokens = model.generate(PROMPT, 2)
    first = int(np.argmax(model.forward_prefill_dense(PROMPT).logits[-1]))
    second = int(np.argmax(model.forward_prefill_dense(PROMPT + [first]).logits[-1]))
    assert tokens == [first, second]


@pytest.mark.parametrize("kwargs, error, name", [
    (dict(d_model=10, n_heads=4), ValueError, "d_model"),
    (dict(n_heads=0), ValueError, "n_heads"),
    (dict(vocab_size=2.0), TypeError, "vocab_size"),
    (dict(seed=-1), ValueError, "seed"),
    (dict(max_seq_len=0), ValueError, "max_seq_len"),
])
def test_model_bad_construction(kwargs, error, name):
    with pytest.raises(error, match=name):
        TinyLLM(**kwargs)


def test_model_bad_tokens_and_lengths():
    small = TinyLLM(seed=0, max_seq_len=8)
    with pytest.raises(ValueError, match="tokens"):
        small.forward_prefill_dense([1, 128])            # vocab is 0..127
    with pytest.raises(ValueError, match="prompt"):
        small.generate([128], 1)
    with pytest.raises(ValueError, match="max_seq_len"):
        small.forward_prefill_dense(list(range(9)))
    with pytest.raises(ValueError, match="max_seq_len"):
        small.generate(list(range(6)), 4)                # 6 + 4 - 1 = 9 > 8
    assert len(small.generate(list(range(6)), 3)) == 3   # 6 + 3 - 1 = 8 fits exactly
    with pytest.raises(ValueError, match="max_new_tokens"):
        small.generate([1], -1)
    with pytest.raises(ValueError, match="prompt"):
        small.generate([], 1)


def test_float32_model_computes_in_float32():
    m32 = TinyLLM(seed=0, dtype=np.float32)
    out = m32.forward_prefill_dense(PROMPT)
    assert out.logits.dtype == np.float32
    assert all(k.dtype == np.float32 for k in out.keys + out.values)
    # Same weights rounded to float32: the logits agree with float64 to float32 precision.
    np.testing.assert_allclose(out.logits, MODEL.forward_prefill_dense(PROMPT).logits,
                               rtol=0, atol=1e-3)
    tokens = m32.generate(PROMPT, 4)
    assert len(tokens) == 4 and all(0 <= t < m32.vocab_size for t in tokens)


@pytest.mark.parametrize("kv_layout", ["dense", "paged"])
def test_float32_model_runs_in_the_scheduler(kv_layout):
    recorder = RecordingLLM(seed=0, dtype=np.float32)
    sched = Scheduler(recorder, max_tokens_per_step=6, prefill_chunk_size=4, kv_layout=kv_layout)
    a = sched.add_request(Request("a", PROMPT, 3))
    b = sched.add_request(Request("b", PROMPT[:4], 2))
    sched.step()
    k, _ = sched.kv_cache.read(1, "a")
    assert k.dtype == np.float32
    sched.run()
    assert len(a.generated) == 3 and len(b.generated) == 2
    assert all(logits.dtype == np.float32 for step in recorder.step_logits for logits in step.values())
