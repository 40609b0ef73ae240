"""Sampling: the distribution (temperature, top-k, top-p) on small exact examples, seeded
requests that sample the same tokens alone and in any batch, EOS, refused parameters, and
logits processors registered through the plugin system (the roadmap's tanh)."""

import numpy as np
import pytest

from cblab_src import (FinishReason, LogitsProcessor, Request, SamplingParams, Scheduler,
                       SchedulerPlugin, TinyLLM)
from cblab_src.model.sampling import GREEDY, probabilities, sample_token
from cblab_src.plugins import TanhLogitsProcessor

from conftest import MODEL, check_block_accounting, check_work, reference_tokens

LOGITS = np.array([2.0, 1.0, 0.0])


def softmax(z):
    e = np.exp(np.asarray(z, dtype=np.float64) - np.max(z))
    return e / e.sum()


# ---------------------------------------------------------------------- the distribution
@pytest.mark.parametrize("params, expected", [
    (dict(temperature=1.0), softmax([2, 1, 0])),                  # [0.665, 0.245, 0.090]
    (dict(temperature=0.5), softmax([4, 2, 0])),                  # sharper
    (dict(temperature=2.0), softmax([1, 0.5, 0])),                # flatter
    (dict(temperature=1.0, top_k=2), softmax([2, 1]).tolist() + [0.0]),    # [0.731, 0.269, 0]
    (dict(temperature=1.0, top_k=1), [1.0, 0.0, 0.0]),
    (dict(temperature=1.0, top_k=3), softmax([2, 1, 0])),         # k >= vocab: no cut
    (dict(temperature=1.0, top_k=50), softmax([2, 1, 0])),
    # top_p keeps the smallest set of most likely tokens whose mass reaches top_p:
    # masses before each token (most likely first): 0, 0.665, 0.909.
    (dict(temperature=1.0, top_p=0.5), [1.0, 0.0, 0.0]),
    (dict(temperature=1.0, top_p=0.665), [1.0, 0.0, 0.0]),
    (dict(temperature=1.0, top_p=0.7), softmax([2, 1]).tolist() + [0.0]),
    (dict(temperature=1.0, top_p=0.9), softmax([2, 1]).tolist() + [0.0]),
    (dict(temperature=1.0, top_p=0.95), softmax([2, 1, 0])),
    (dict(temperature=1.0, top_p=1.0), softmax([2, 1, 0])),
    # top_k first, then top_p on what is left: [0.731, 0.269] -> 0.7 keeps the first only.
    (dict(temperature=1.0, top_k=2, top_p=0.7), [1.0, 0.0, 0.0]),
    (dict(temperature=0.5, top_p=0.9), softmax([4, 2]).tolist() + [0.0]),  # 0.867 < 0.9
])
def test_probabilities_small_exact_examples(params, expected):
    p = probabilities(LOGITS, SamplingParams(**params))
    np.testing.assert_allclose(p, expected, rtol=0, atol=1e-12)
    assert p.sum() == pytest.approx(1.0) and p.shape == (3,)


def test_probabilities_follow_the_logits_not_their_positions():
    order = [2, 0, 1]
    p = probabilities(LOGITS[order], SamplingParams(temperature=1.0, top_k=2))
    np.testing.assert_allclose(p, np.array(softmax([2, 1]).tolist() + [0.0])[order], atol=1e-12)
    assert softmax([2, 1, 0])[0] == pytest.approx(0.665, abs=1e-3)     # the numbers above
    assert softmax([2, 1, 0])[:2].sum() == pytest.approx(0.909, abs=1e-3)


class FixedDraw:
    """A stand-in generator whose ``random()`` returns the given numbers."""

    def __init__(self, *values):
        self.values = list(values)

    def random(self):
        return self.values.pop(0)


def test_sample_token_inverts_the_cumulative_distribution():
    # cdf of softmax([2, 1, 0]) = [0.665, 0.909, 1]: u < 0.665 -> 0, < 0.909 -> 1, else 2.
    params = SamplingParams(temperature=1.0)
    draws = [0.0, 0.5, 0.66, 0.67, 0.9, 0.91, 0.999999]
    assert [sample_token(LOGITS, params, FixedDraw(u)) for u in draws] == [0, 0, 0, 1, 1, 2, 2]
    cut = SamplingParams(temperature=1.0, top_k=2)            # [0.731, 0.269, 0]
    assert [sample_token(LOGITS, cut, FixedDraw(u)) for u in (0.73, 0.74, 0.999999)] == [0, 1, 1]


def test_greedy_draws_nothing_and_sampling_draws_exactly_once():
    rng, twin = np.random.default_rng(5), np.random.default_rng(5)
    assert sample_token(LOGITS, GREEDY, rng) == 0
    assert sample_token(np.array([0.0, 3.0, 1.0]), GREEDY, rng) == 1
    assert rng.random() == twin.random()                     # untouched by greedy
    sample_token(LOGITS, SamplingParams(temperature=1.0, top_p=0.5), rng)   # even if certain
    twin.random()
    assert rng.random() == twin.random()


@pytest.mark.parametrize("kwargs, error, name", [
    (dict(temperature=-0.1), ValueError, "temperature"),
    (dict(temperature=float("nan")), ValueError, "temperature"),
    (dict(temperature="1"), TypeError, "temperature"),
    (dict(temperature=True), TypeError, "temperature"),
    (dict(temperature=None), TypeError, "temperature"),
    (dict(top_p=0.0), ValueError, "top_p"),
    (dict(top_p=1.5), ValueError, "top_p"),
    (dict(top_p=-0.5), ValueError, "top_p"),
    (dict(top_p=float("nan")), ValueError, "top_p"),
    (dict(top_p="0.9"), TypeError, "top_p"),
    (dict(top_k=0), ValueError, "top_k"),
    (dict(top_k=-3), ValueError, "top_k"),
    (dict(top_k=2.0), TypeError, "top_k"),
    (dict(top_k=2.5), TypeError, "top_k"),
    (dict(top_k=True), TypeError, "top_k"),
    (dict(seed=-1), ValueError, "seed"),
    (dict(seed=1.5), TypeError, "seed"),
    (dict(eos_token_id=-1), ValueError, "eos_token_id"),
    (dict(eos_token_id=3.0), TypeError, "eos_token_id"),
])
def test_bad_sampling_params_are_refused_naming_the_parameter(kwargs, error, name):
    with pytest.raises(error, match=name):
        SamplingParams(**kwargs)


def test_sampling_params_at_their_limits_are_accepted():
    p = SamplingParams(temperature=0, top_k=1, top_p=1.0, seed=0, eos_token_id=0)
    assert p.greedy and p.temperature == 0.0
    assert not SamplingParams(temperature=1e-6, top_p=1e-9).greedy
    assert SamplingParams(top_k=np.int64(3), seed=np.int32(4)).top_k == 3
    with pytest.raises(TypeError, match="sampling"):
        MODEL.generate([1, 2], 3, sampling={"temperature": 1.0})


# ---------------------------------------------------------------------- seeded requests
S_PROMPT = [17, 4, 99, 23, 42, 8, 61, 5, 70]
S_PARAMS = SamplingParams(temperature=0.8, top_k=40, top_p=0.95, seed=7)
S_NEW = 8
_ALONE = {}


def alone(prompt, n, params, processors=()):
    """``MODEL.generate`` with sampling, computed once per case."""
    key = (tuple(prompt), n, params, tuple(type(p) for p in processors))
    if key not in _ALONE:
        _ALONE[key] = MODEL.generate(prompt, n, sampling=params, logits_processors=processors)
    return _ALONE[key]


def test_seeded_sampling_is_reproducible_and_really_samples():
    tokens = alone(S_PROMPT, S_NEW, S_PARAMS)
    assert MODEL.generate(S_PROMPT, S_NEW, sampling=S_PARAMS) == tokens     # same seed, same
    assert tokens != reference_tokens(S_PROMPT, S_NEW)                       # not greedy
    other = SamplingParams(temperature=0.8, top_k=40, top_p=0.95, seed=8)
    assert MODEL.generate(S_PROMPT, S_NEW, sampling=other) != tokens          # seed matters
    assert MODEL.generate(S_PROMPT, S_NEW, sampling=GREEDY) == reference_tokens(S_PROMPT, S_NEW)


def companions(kind):
    """Requests batched with the sampled request S: none, greedy ones, other sampled ones
    (one with S's very seed and prompt), and ones sharing S's prompt prefix."""
    warm = SamplingParams(temperature=1.3, seed=1)
    return {
        "alone": [],
        "greedy": [Request("g0", list(range(30, 50)), 5), Request("g1", [3, 3], 9, arrival_step=2)],
        "sampled": [Request("s0", [9, 8, 7, 6, 5], 7, sampling=warm),
                    Request("twin", S_PROMPT, S_NEW, sampling=S_PARAMS),   # own generator
                    Request("s1", list(range(60, 72)), 4, arrival_step=1,
                            sampling=SamplingParams(temperature=0.5, top_k=3, seed=2))],
        "prefix": [Request("p0", S_PROMPT[:8] + [1, 2, 3], 6, sampling=warm),
                   Request("p1", S_PROMPT, 3, arrival_step=3)],
    }[kind]


CONFIGS = {
    "dense-b16-c16": dict(kv_layout="dense", max_tokens_per_step=16, prefill_chunk_size=16),
    "dense-b1-c1": dict(kv_layout="dense", max_tokens_per_step=1, prefill_chunk_size=1),
    "paged-bs1-b3-c2": dict(block_size=1, max_tokens_per_step=3, prefill_chunk_size=2),
    "paged-bs4-b8-c4": dict(block_size=4, max_tokens_per_step=8, prefill_chunk_size=4),
    # The largest request (g0: 20 + 5 - 1 tokens) just fits these pools.
    "paged-bs4-tight": dict(block_size=4, num_blocks=6, max_tokens_per_step=8,
                            prefill_chunk_size=4),
    "paged-bs2-tight-prefix": dict(block_size=2, num_blocks=12, max_tokens_per_step=6,
                                   prefill_chunk_size=4, enable_prefix_caching=True),
}


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("kind", ["alone", "greedy", "sampled", "prefix"])
def test_a_seeded_request_samples_the_same_tokens_in_any_batch(kind, config):
    sched = Scheduler(MODEL, **CONFIGS[config])
    s = sched.add_request(Request("S", S_PROMPT, S_NEW, arrival_step=1, sampling=S_PARAMS))
    others = [sched.add_request(r) for r in companions(kind)]
    history = sched.run()
    assert s.generated == alone(S_PROMPT, S_NEW, S_PARAMS)
    for r in others:
        assert r.generated == alone(r.prompt, r.max_new_tokens, r.sampling)
    check_work(history, sched)
    check_block_accounting(sched.kv_cache)


def test_the_batch_grid_really_preempts_and_shares_the_sampled_request():
    # The grid above must exercise preemption of S itself and prefix sharing with S.
    def run(kind, config):
        sched = Scheduler(MODEL, **CONFIGS[config])
        s = sched.add_request(Request("S", S_PROMPT, S_NEW, arrival_step=1, sampling=S_PARAMS))
        for r in companions(kind):
            sched.add_request(r)
        sched.run()
        return sched, s

    preempted = [run(kind, "paged-bs4-tight")[1].num_preemptions for kind in
                 ("greedy", "sampled", "prefix")]
    assert sum(preempted) > 0
    sched, _ = run("prefix", "paged-bs2-tight-prefix")
    assert sched.counters.cached_prompt_tokens > 0


def test_same_seed_in_one_batch_gives_the_same_tokens_twice():
    # Each request has its own generator: two identical seeded requests in one batch do not
    # share (or split) a random stream.
    sched = Scheduler(MODEL, max_tokens_per_step=8, prefill_chunk_size=4)
    a = sched.add_request(Request("a", S_PROMPT, S_NEW, sampling=S_PARAMS))
    b = sched.add_request(Request("b", S_PROMPT, S_NEW, sampling=S_PARAMS))
    sched.run()
    assert a.generated == b.generated == alone(S_PROMPT, S_NEW, S_PARAMS)


def test_unseeded_sampling_runs():
    params = SamplingParams(temperature=1.0)
    tokens = MODEL.generate(S_PROMPT, 4, sampling=params)
    assert len(tokens) == 4 and all(0 <= t < MODEL.vocab_size for t in tokens)


# ---------------------------------------------------------------------- EOS
EOS_PROMPT = [5, 10, 15, 20, 25, 30]


class KVHolders(SchedulerPlugin):
    """Which requests hold KV memory after each step."""

    def __init__(self):
        self.after = []

    def after_step(self, scheduler, stats):
        self.after.append(set(scheduler.kv_cache.req_ids))


def eos_after(prompt, k, n=12):
    """A token greedy decoding samples first at position ``k`` (0-based), to use as EOS."""
    ref = reference_tokens(prompt, n)
    assert ref[k] not in ref[:k], "pick another k: the token appears earlier"
    return ref[k]


@pytest.mark.parametrize("kv_layout", ["dense", "paged"])
def test_eos_stops_early_with_reason_stop_and_frees_kv(kv_layout):
    eos = eos_after(EOS_PROMPT, 3)
    params = SamplingParams(eos_token_id=eos)
    sched = Scheduler(MODEL, max_tokens_per_step=8, prefill_chunk_size=4, kv_layout=kv_layout,
                      block_size=2)
    holders = sched.plugins.register_scheduler_plugin(KVHolders())
    r = sched.add_request(Request("r", EOS_PROMPT, 12, sampling=params))
    other = sched.add_request(Request("o", [1, 2, 3], 8))
    history = sched.run()
    assert r.generated == reference_tokens(EOS_PROMPT, 12)[:4] and r.generated[-1] == eos
    assert r.generated == MODEL.generate(EOS_PROMPT, 12, sampling=params)
    assert (r.finish_reason, other.finish_reason) == (FinishReason.STOP, FinishReason.LENGTH)
    finished_at = next(s.step_id for s in history if "r" in s.finished_ids)
    assert r.finish_step == r.token_steps[-1] == finished_at
    # Its KV is freed in that very step, 8 tokens before its max_new_tokens would have ended.
    assert ["r" in held for held in holders.after] == [True] * finished_at + [False] * (
        len(history) - finished_at)
    assert history[finished_at].num_running == 1 and r.num_computed_tokens == 6 + 4 - 1
    assert other.generated == reference_tokens([1, 2, 3], 8)
    check_work(history, sched)


def test_eos_as_the_first_token_finishes_in_the_prefill_step():
    eos = eos_after(EOS_PROMPT, 0)
    sched = Scheduler(MODEL, max_tokens_per_step=8, prefill_chunk_size=8, block_size=4)
    r = sched.add_request(Request("r", EOS_PROMPT, 5, sampling=SamplingParams(eos_token_id=eos)))
    history = sched.run()
    assert len(history) == 1 and history[0].finished_ids == ("r",)
    assert r.generated == [eos] and r.finish_reason is FinishReason.STOP
    assert sched.kv_cache.usage().used_blocks == 0


def test_eos_with_sampling_and_preemption_matches_generate():
    sampled = alone(S_PROMPT, S_NEW, S_PARAMS)
    k = next(i for i in range(2, S_NEW) if sampled[i] not in sampled[:i])
    params = SamplingParams(temperature=0.8, top_k=40, top_p=0.95, seed=7, eos_token_id=sampled[k])
    sched = Scheduler(MODEL, max_tokens_per_step=8, prefill_chunk_size=4, block_size=4,
                      num_blocks=5)
    s = sched.add_request(Request("S", S_PROMPT, S_NEW, sampling=params))
    g = sched.add_request(Request("g", list(range(30, 46)), 4))
    history = sched.run()
    assert s.generated == sampled[:k + 1] == MODEL.generate(S_PROMPT, S_NEW, sampling=params)
    assert s.finish_reason is FinishReason.STOP
    assert g.generated == reference_tokens(list(range(30, 46)), 4)
    check_work(history, sched)


def test_a_request_that_never_samples_its_eos_finishes_by_length():
    ref = reference_tokens(EOS_PROMPT, 6)
    eos = next(t for t in range(MODEL.vocab_size) if t not in ref)
    sched = Scheduler(MODEL, max_tokens_per_step=8, prefill_chunk_size=8)
    r = sched.add_request(Request("r", EOS_PROMPT, 6, sampling=SamplingParams(eos_token_id=eos)))
    sched.run()
    assert r.generated == ref and r.finish_reason is FinishReason.LENGTH


# ---------------------------------------------------------------------- logits processors
class NoRepeat(LogitsProcessor):
    """Forbids the previous token: depends on the request's tokens so far."""

    def process_logits(self, tokens, logits):
        out = logits.copy()
        out[tokens[-1]] = -np.inf
        return out


def test_tanh_processor_matches_generate_and_leaves_greedy_unchanged():
    hot = SamplingParams(temperature=1.0, seed=3)
    sched = Scheduler(MODEL, max_tokens_per_step=6, prefill_chunk_size=4, block_size=4,
                      num_blocks=6)
    tanh = sched.plugins.register_logits_processor(TanhLogitsProcessor())
    assert sched.plugins.logits_processors == (tanh,)
    s = sched.add_request(Request("S", S_PROMPT, S_NEW, sampling=hot))
    g = sched.add_request(Request("g", EOS_PROMPT, 6))
    sched.run()
    assert s.generated == alone(S_PROMPT, S_NEW, hot, [TanhLogitsProcessor()])
    assert s.generated != alone(S_PROMPT, S_NEW, hot)          # tanh flattened the distribution
    # tanh is increasing, so the argmax, and greedy decoding, do not change.
    assert g.generated == reference_tokens(EOS_PROMPT, 6)


def test_tanh_squashes_logits_and_keeps_their_order():
    logits = np.array([-9.0, -1.0, 0.0, 0.5, 9.5])     # TinyLLM's logits stay within +-10
    out = TanhLogitsProcessor().process_logits((1, 2), logits)
    assert np.all(np.abs(out) < 1) and np.all(np.diff(out) > 0)
    np.testing.assert_allclose(out, np.tanh(logits))
    # Flatter: the most likely token's probability drops.
    hot = SamplingParams(temperature=1.0)
    assert probabilities(out, hot).max() < probabilities(logits, hot).max()
    # In float64 tanh saturates: logits above about 19 all become 1.0, and greedy would then
    # pick the first of the tied tokens instead of the largest logit.
    saturated = TanhLogitsProcessor().process_logits((1,), np.array([19.5, 25.0]))
    assert saturated.tolist() == [1.0, 1.0] and int(np.argmax(saturated)) == 0


def test_a_context_dependent_processor_sees_the_request_tokens_even_after_preemption():
    sched = Scheduler(MODEL, max_tokens_per_step=8, prefill_chunk_size=4, block_size=2,
                      num_blocks=8)
    sched.plugins.register_logits_processor(NoRepeat())
    reqs = [sched.add_request(Request(i, p, 10)) for i, p in
            enumerate([[3, 3, 3], list(range(10, 16)), [7] * 5])]
    sched.run()
    assert sched.counters.preemptions > 0
    for r in reqs:
        expected = MODEL.generate(r.prompt, 10, logits_processors=[NoRepeat()])
        assert r.generated == expected
        assert all(a != b for a, b in zip(r.all_tokens[r.prompt_len - 1:], r.generated))
    assert any(r.generated != reference_tokens(r.prompt, 10) for r in reqs)


def test_processors_run_in_registration_order():
    class Shift(LogitsProcessor):
        def process_logits(self, tokens, logits):
            return logits + 10.0

    sched = Scheduler(MODEL, max_tokens_per_step=4, prefill_chunk_size=4)
    sched.plugins.register_logits_processor(Shift())
    sched.plugins.register_logits_processor(TanhLogitsProcessor())
    np.testing.assert_allclose(sched.plugins.process_logits((1,), np.array([0.0, -20.0])),
                               np.tanh([10.0, -10.0]))
    with pytest.raises(TypeError, match="processor"):
        sched.plugins.register_logits_processor(np.tanh)
    with pytest.raises(TypeError):
        LogitsProcessor()                            # abstract: needs process_logits


def test_a_model_with_another_vocabulary_samples_within_it():
    small = TinyLLM(seed=2, vocab_size=16, d_model=8, n_layers=1, n_heads=2, max_seq_len=32)
    params = SamplingParams(temperature=1.5, seed=0)
    sched = Scheduler(small, max_tokens_per_step=4, prefill_chunk_size=2, block_size=2)
    r = sched.add_request(Request("r", [1, 2, 3], 10, sampling=params))
    sched.run()
    assert r.generated == small.generate([1, 2, 3], 10, sampling=params)
    assert all(0 <= t < 16 for t in r.generated)
