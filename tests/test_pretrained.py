"""The shipped pretrained TinyLLM: small, loaded as the card describes, reproducing the training
script's held-out loss in numpy, writing readable text, and writing the same text batched or
alone. Also the weights interface (`weight_arrays`, `weights=`) and its refusals."""

import re
import subprocess
import sys
from dataclasses import asdict

import numpy as np
import pytest

from cblab_src import SamplingParams, Scheduler, TinyLLM
from cblab_src.model.pretrained import (CORPUS_PARTS, MODEL_DIR, ModelCard, corpus_loss,
                                        corpus_tokens, loss_windows, paragraphs,
                                        read_corpus)
from cblab_src.simulate import simulate_schedule
from cblab_src.text import completion, format_completions
from cblab_src.workloads import Workload

CARD = ModelCard.load()
PROMPTS = {"A": "The scheduler", "B": "A request", "C": "The KV cache", "D": "Each step",
           "E": "When the server"}


@pytest.fixture(scope="module")
def pretrained():
    return TinyLLM.pretrained()


def test_the_shipped_files_are_small_and_match_the_card(pretrained):
    assert (MODEL_DIR / "weights.npz").stat().st_size <= 2_000_000
    c = CARD.config
    assert (pretrained.vocab_size, pretrained.d_model, pretrained.n_layers, pretrained.n_heads,
            pretrained.max_seq_len) == (c.vocab_size, c.d_model, c.n_layers, c.n_heads,
                                        c.max_seq_len)
    assert pretrained.tokenizer.vocab_size == pretrained.vocab_size
    assert repr(pretrained).startswith("TinyLLM.pretrained(")
    assert CARD.training.steps == CARD.curve[-1][0] and CARD.training.seconds > 0


def test_numpy_reproduces_the_recorded_heldout_loss(pretrained):
    tokens = corpus_tokens(read_corpus("heldout"), pretrained.tokenizer)
    assert len(tokens) == CARD.heldout_tokens
    loss = corpus_loss(pretrained, tokens)
    assert abs(loss - CARD.heldout_loss) < 1e-6
    # A model that learned nothing scores ln(97) = 4.57 nats per character.
    assert loss < 0.5 * np.log(pretrained.vocab_size)


def test_corpus_parts_are_disjoint_paragraphs():
    train, heldout = (set(paragraphs(read_corpus(part))) for part in CORPUS_PARTS)
    assert len(heldout) * 5 < len(train) and not train & heldout


def _greedy(model, prompt, n=80):
    tok = model.tokenizer
    return tok.decode(model.generate(tok.encode(prompt), n,
                                     sampling=SamplingParams(eos_token_id=tok.eos_id)))


def test_greedy_completions_are_readable_text(pretrained):
    corpus_words = set(re.findall(r"[a-z]+", read_corpus("train").lower()))
    for prompt in PROMPTS.values():
        text = _greedy(pretrained, prompt)
        assert len(text) >= 20, (prompt, text)
        letters = sum(ch.isalpha() or ch == " " for ch in text)
        assert letters >= 0.85 * len(text), (prompt, text)
        assert len(set(text)) >= 10 and not re.search(r"(.)\1\1\1", text), (prompt, text)
        words = re.findall(r"[a-z]+", text.lower())[:-1]       # the last may be cut short
        known = sum(w in corpus_words for w in words)
        assert known >= 0.8 * len(words), (prompt, text)


@pytest.fixture(scope="module")
def text_workload(pretrained):
    return Workload.from_texts(PROMPTS, pretrained.tokenizer, max_new_tokens=40,
                               arrival_steps=[0, 0, 2, 3, 5])


@pytest.fixture(scope="module")
def texts_alone(pretrained, text_workload):
    """What each request writes generated alone (no cache, no batch)."""
    return {s.req_id: pretrained.tokenizer.decode(
        pretrained.generate(s.prompt, s.max_new_tokens, sampling=s.sampling))
        for s in text_workload.specs}


@pytest.mark.parametrize("kv_layout, budget, chunk, block", [("paged", 8, 4, 4),
                                                             ("dense", 5, 3, 16),
                                                             ("paged", 64, 64, 16)])
def test_scheduled_text_equals_text_generated_alone(pretrained, text_workload, texts_alone,
                                                    kv_layout, budget, chunk, block):
    run = simulate_schedule(text_workload, max_tokens_per_step=budget, prefill_chunk_size=chunk,
                            kv_layout=kv_layout, block_size=block, model=pretrained)
    assert {r.req_id: completion(r, pretrained.tokenizer) for r in run.requests} == texts_alone


def test_format_completions_shows_prompt_and_completion(pretrained):
    sched = Scheduler(pretrained, max_tokens_per_step=16, prefill_chunk_size=16)
    workload = Workload.from_texts({"A": "The scheduler"}, pretrained.tokenizer, 12)
    r = sched.add_request(workload.requests()[0])
    sched.run()
    first, second = format_completions([r], pretrained.tokenizer).splitlines()
    assert first == "A  prompt     'The scheduler'"
    assert second == f"   completion {completion(r, pretrained.tokenizer)!r}  [12 tokens, length]"
    with pytest.raises(ValueError, match="requests"):
        format_completions([], pretrained.tokenizer)


def test_weight_arrays_round_trip_and_float32(pretrained):
    copy = TinyLLM(weights=pretrained.weight_arrays(), **asdict(CARD.config))
    assert repr(copy).startswith("TinyLLM(weights=<given>, vocab_size=97, d_model=128")
    ids = pretrained.tokenizer.encode("The pool")
    np.testing.assert_array_equal(copy.forward_prefill_dense(ids).logits,
                                  pretrained.forward_prefill_dense(ids).logits)
    single = TinyLLM.pretrained(dtype=np.float32)
    assert single.tok_emb.dtype == np.float32
    np.testing.assert_allclose(single.forward_prefill_dense(ids).logits,
                               pretrained.forward_prefill_dense(ids).logits, rtol=0, atol=1e-3)


def test_bad_weights_are_refused_by_name(pretrained):
    weights = pretrained.weight_arrays()
    config = asdict(CARD.config)
    missing = {k: v for k, v in weights.items() if k != "layers.0.w_up"}
    with pytest.raises(ValueError, match=r"missing \['layers.0.w_up'\]"):
        TinyLLM(weights=missing, **config)
    with pytest.raises(ValueError, match=r"unexpected \['extra'\]"):
        TinyLLM(weights={**weights, "extra": np.zeros(1)}, **config)
    with pytest.raises(ValueError, match=r"weights\['w_lm'\] has shape"):
        TinyLLM(weights={**weights, "w_lm": weights["w_lm"].T}, **config)
    with pytest.raises(ValueError, match="tokenizer has 97 ids but vocab_size is 128"):
        TinyLLM(tokenizer=pretrained.tokenizer)


def test_the_engine_and_the_pretrained_model_need_only_numpy():
    # A fresh interpreter: load and run the pretrained model, then look at what got imported.
    code = ("import sys, cblab_src, cblab_src.text, cblab_src.workloads\n"
            "m = cblab_src.TinyLLM.pretrained()\n"
            "m.generate(m.tokenizer.encode('The pool'), 3)\n"
            "print(sorted({'torch', 'matplotlib', 'ipywidgets'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_loss_windows_make_every_token_but_the_first_a_target_once():
    windows = loss_windows(np.arange(10), context=4)
    assert [w.tolist() for w in windows] == [[0, 1, 2, 3, 4], [4, 5, 6, 7, 8], [8, 9]]
    assert np.concatenate([w[1:] for w in windows]).tolist() == list(range(1, 10))
