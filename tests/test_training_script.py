"""tools/train_tiny_llm.py, where PyTorch is installed (it is an optional development
dependency: ``pip install torch==2.13.0``; without it these tests are skipped).

The script's PyTorch network must be TinyLLM's architecture exactly, or the shipped weights
would mean something else in numpy: the logits of both must agree to float64 rounding. A short
run must export weights that ``load_pretrained`` reads back into the same logits."""

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import train_tiny_llm as script  # noqa: E402

from cblab_src.model.pretrained import ModelConfig, corpus_loss, corpus_tokens, load_pretrained  # noqa: E402
from cblab_src.model.tiny_llm import TinyLLM, sinusoidal_positions  # noqa: E402
from cblab_src.model.tokenizer import CharTokenizer  # noqa: E402

TINY = script.HyperParameters(d_model=16, n_layers=2, n_heads=2, context=32, batch_size=4,
                              steps=3, warmup_steps=1, eval_every=2)


def test_torch_forward_is_tinyllm_forward():
    config = ModelConfig(97, TINY.d_model, TINY.n_layers, TINY.n_heads, TINY.context)
    params = script.init_params(config, TINY.n_layers, torch.Generator().manual_seed(1))
    weights = {name: value.detach().double().numpy() for name, value in params.items()}
    model = TinyLLM(weights=weights, vocab_size=97, d_model=16, n_layers=2, n_heads=2,
                    max_seq_len=32)
    ids = CharTokenizer().encode("Each step, the scheduler")
    positions = torch.from_numpy(sinusoidal_positions(32, 16))
    expected = script.forward({k: torch.from_numpy(v) for k, v in weights.items()},
                              torch.tensor([ids]), positions, 2, 2)[0].numpy()
    np.testing.assert_allclose(model.forward_prefill_dense(ids).logits, expected,
                               rtol=0, atol=1e-10)


def test_a_short_run_exports_what_numpy_loads(tmp_path):
    weights, card = script.train(TINY, log=lambda *_: None)
    np.savez(tmp_path / "weights.npz", **weights)
    card.save(tmp_path / "card.json")
    model = load_pretrained(model_dir=tmp_path)
    assert all(w.dtype == np.float16 for w in weights.values())
    assert [row[0] for row in card.curve] == [2, 3]
    heldout = corpus_tokens(script.read_corpus("heldout"), model.tokenizer)
    assert abs(corpus_loss(model, heldout) - card.heldout_loss) < 1e-6


def test_learning_rate_warms_up_then_decays_to_a_tenth():
    hp = script.HyperParameters(steps=100, warmup_steps=10, learning_rate=1.0)
    rates = [script.learning_rate(s, hp) for s in range(100)]
    assert rates[0] == pytest.approx(0.1) and rates[9] == pytest.approx(1.0)
    assert rates == sorted(rates[:10]) + sorted(rates[10:], reverse=True)
    assert rates[-1] == pytest.approx(0.1, abs=1e-3)
