"""Train the pretrained TinyLLM that ``TinyLLM.pretrained()`` loads, and export its weights.

Development tool, not part of the course's run time: it needs PyTorch on the CPU
(``pip install torch==2.13.0``), which ``cblab_src`` itself never imports.

    python tools/train_tiny_llm.py                      # retrain; write cblab_src/data/tiny_llm
    python tools/train_tiny_llm.py --out /tmp/retrain   # retrain elsewhere and compare with the
                                                        # shipped card's held-out loss

The network below is TinyLLM's exact architecture written in PyTorch (pre-norm blocks,
LayerNorm with gain and bias, no biases in the matmuls, sinusoidal positions, tanh-GELU,
untied LM head), with its parameters named and shaped as ``TinyLLM.weight_arrays()``, so export
is a cast to float16. Training windows of ``context`` characters start at sentence starts, so
position 0 always sees the beginning of a sentence, as a prompt does. After training the
float16 weights are evaluated in float64 with the same windows as
``cblab_src.model.pretrained.corpus_loss``; tests/test_pretrained.py checks that the numpy
forward pass reproduces that number.
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from cblab_src.model.pretrained import (MODEL_DIR, ModelCard, ModelConfig, TrainingRecord,  # noqa: E402
                                        corpus_tokens, loss_windows, read_corpus)
from cblab_src.model.tiny_llm import TinyLLM, sinusoidal_positions  # noqa: E402
from cblab_src.model.tokenizer import CharTokenizer  # noqa: E402


@dataclass(frozen=True)
class HyperParameters:
    seed: int = 0
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    context: int = 256
    batch_size: int = 32
    steps: int = 2000
    learning_rate: float = 2e-3
    warmup_steps: int = 100
    weight_decay: float = 0.1
    dropout: float = 0.1
    eval_every: int = 250
    retrain_tolerance: float = 0.03


def init_params(config: ModelConfig, n_layers: int, generator: torch.Generator) -> dict:
    """Float32 parameters named and shaped as ``TinyLLM.weight_shapes()``."""
    shapes = TinyLLM(vocab_size=config.vocab_size, d_model=config.d_model, n_layers=n_layers,
                     n_heads=config.n_heads, max_seq_len=config.max_seq_len).weight_shapes()
    params = {}
    for name, shape in shapes.items():
        if name.endswith("gain"):
            value = torch.ones(shape)
        elif name.endswith("bias"):
            value = torch.zeros(shape)
        else:
            # Token embeddings match the unit scale of the sinusoidal position codes; the
            # matmuls that write into the residual stream start small (GPT-2's rule).
            std = {"tok_emb": 1.0, "w_out": 0.02 / math.sqrt(2 * n_layers),
                   "w_down": 0.02 / math.sqrt(2 * n_layers)}.get(name.split(".")[-1], 0.02)
            value = torch.randn(shape, generator=generator) * std
        params[name] = value.requires_grad_()
    return params


def forward(params: dict, tokens: torch.Tensor, positions: torch.Tensor, n_layers: int,
            n_heads: int, dropout: float = 0.0) -> torch.Tensor:
    """Logits ``(B, T, vocab)`` of token windows ``(B, T)``: TinyLLM.forward_prefill_dense."""
    batch, length = tokens.shape
    d = params["tok_emb"].shape[1]
    x = params["tok_emb"][tokens] + positions[:length]
    for i in range(n_layers):
        p = {name.split(".")[-1]: value for name, value in params.items()
             if name.startswith(f"layers.{i}.")}
        h = F.layer_norm(x, (d,), p["ln1_gain"], p["ln1_bias"], 1e-5) @ p["w_qkv"]
        q, k, v = (t.reshape(batch, length, n_heads, d // n_heads).transpose(1, 2)
                   for t in h.split(d, dim=-1))
        attn = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        attn = attn.transpose(1, 2).reshape(batch, length, d)
        x = x + F.dropout(attn @ p["w_out"], dropout, training=dropout > 0)
        h = F.layer_norm(x, (d,), p["ln2_gain"], p["ln2_bias"], 1e-5)
        mlp = F.gelu(h @ p["w_up"], approximate="tanh") @ p["w_down"]
        x = x + F.dropout(mlp, dropout, training=dropout > 0)
    return F.layer_norm(x, (d,), params["lnf_gain"], params["lnf_bias"], 1e-5) @ params["w_lm"]


def sentence_starts(tokens: np.ndarray, tokenizer: CharTokenizer, context: int) -> np.ndarray:
    """Indices where a sentence or paragraph begins and a whole window of ``context + 1`` fits."""
    after = np.zeros(len(tokens), dtype=bool)
    after[0] = True
    after[1:] |= tokens[:-1] == tokenizer.eos_id
    space = tokenizer.encode(" ")[0]
    ends = np.isin(tokens, tokenizer.encode(".!?"))
    after[2:] |= ends[:-2] & (tokens[1:-1] == space)
    starts = np.flatnonzero(after)
    return starts[starts + context + 1 <= len(tokens)]


def corpus_loss_torch(params: dict, tokens: np.ndarray, positions: torch.Tensor,
                      hp: HyperParameters, dtype=torch.float64) -> float:
    """Mean next-token cross-entropy over the windows ``pretrained.corpus_loss`` uses."""
    cast = {name: value.detach().to(dtype) for name, value in params.items()}
    total, count = 0.0, 0
    with torch.no_grad():
        for window in map(torch.from_numpy, loss_windows(tokens, hp.context)):
            logits = forward(cast, window[None, :-1], positions.to(dtype), hp.n_layers,
                             hp.n_heads)[0]
            total += F.cross_entropy(logits, window[1:], reduction="sum").item()
            count += len(window) - 1
    return total / count


def learning_rate(step: int, hp: HyperParameters) -> float:
    """Linear warm-up, then cosine decay to 10 % of the peak."""
    if step < hp.warmup_steps:
        return hp.learning_rate * (step + 1) / hp.warmup_steps
    progress = (step - hp.warmup_steps) / max(1, hp.steps - hp.warmup_steps)
    return hp.learning_rate * (0.1 + 0.45 * (1 + math.cos(math.pi * progress)))


def train(hp: HyperParameters, log=print) -> tuple[dict, ModelCard]:
    """Train from scratch; return the float16 weights and the card describing them."""
    torch.manual_seed(hp.seed)
    torch.use_deterministic_algorithms(True)
    tokenizer = CharTokenizer()
    config = ModelConfig(tokenizer.vocab_size, hp.d_model, hp.n_layers, hp.n_heads, hp.context)
    train_ids = corpus_tokens(read_corpus("train"), tokenizer)
    heldout_ids = corpus_tokens(read_corpus("heldout"), tokenizer)
    starts = sentence_starts(train_ids, tokenizer, hp.context)
    log(f"train {len(train_ids)} tokens ({len(starts)} window starts), "
        f"held-out {len(heldout_ids)} tokens")

    params = init_params(config, hp.n_layers, torch.Generator().manual_seed(hp.seed))
    positions = torch.from_numpy(sinusoidal_positions(hp.context, hp.d_model)).float()
    decay = [p for p in params.values() if p.ndim == 2]
    no_decay = [p for p in params.values() if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": hp.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=hp.learning_rate, betas=(0.9, 0.99))
    rng = np.random.default_rng(hp.seed)
    offsets = np.arange(hp.context + 1)
    curve, began = [], time.perf_counter()
    for step in range(hp.steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, hp)
        batch = torch.from_numpy(train_ids[rng.choice(starts, hp.batch_size)[:, None] + offsets])
        logits = forward(params, batch[:, :-1], positions, hp.n_layers, hp.n_heads, hp.dropout)
        loss = F.cross_entropy(logits.reshape(-1, config.vocab_size), batch[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(params.values()), 1.0)
        optimizer.step()
        if (step + 1) % hp.eval_every == 0 or step + 1 == hp.steps:
            heldout = corpus_loss_torch(params, heldout_ids, positions, hp, torch.float32)
            curve.append((step + 1, round(loss.item(), 4), round(heldout, 4)))
            log(f"step {step + 1:5d}  batch loss {loss.item():.4f}  held-out {heldout:.4f}  "
                f"{time.perf_counter() - began:7.1f} s")
    seconds = time.perf_counter() - began

    weights = {name: value.detach().numpy().astype(np.float16) for name, value in params.items()}
    exported = {name: torch.from_numpy(value.astype(np.float64)) for name, value in weights.items()}
    positions64 = torch.from_numpy(sinusoidal_positions(hp.context, hp.d_model))
    record = TrainingRecord(hp.seed, hp.steps, hp.batch_size, hp.context, hp.learning_rate,
                            hp.warmup_steps, hp.weight_decay, hp.dropout, torch.__version__,
                            torch.get_num_threads(), round(seconds, 1),
                            f"{platform.machine()}, {platform.system()}, Python "
                            f"{platform.python_version()}")
    card = ModelCard(config, record,
                     train_loss=corpus_loss_torch(exported, train_ids, positions64, hp),
                     heldout_loss=corpus_loss_torch(exported, heldout_ids, positions64, hp),
                     heldout_tokens=len(heldout_ids), retrain_tolerance=hp.retrain_tolerance,
                     curve=tuple(curve))
    return weights, card


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=MODEL_DIR,
                        help="folder for weights.npz and card.json (default: the package's)")
    parser.add_argument("--steps", type=int, default=HyperParameters.steps)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    shipped = ModelCard.load() if (MODEL_DIR / "card.json").exists() else None
    weights, card = train(HyperParameters(steps=args.steps))
    args.out.mkdir(parents=True, exist_ok=True)
    np.savez(args.out / "weights.npz", **weights)
    card.save(args.out / "card.json")
    print(f"train loss {card.train_loss:.6f}, held-out loss {card.heldout_loss:.6f} nats/char, "
          f"{card.training.seconds:.0f} s; wrote {args.out}")
    if shipped is not None and args.out.resolve() != MODEL_DIR.resolve():
        gap = abs(card.heldout_loss - shipped.heldout_loss)
        verdict = "within" if gap <= shipped.retrain_tolerance else "OUTSIDE"
        print(f"shipped held-out loss {shipped.heldout_loss:.6f}: difference {gap:.4f}, "
              f"{verdict} the tolerance {shipped.retrain_tolerance}")
        return 0 if gap <= shipped.retrain_tolerance else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
