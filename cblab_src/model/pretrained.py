"""The pretrained TinyLLM: its corpus, its record of training, its loss, and how to load it.

``tools/train_tiny_llm.py`` trains the exact :class:`~cblab_src.model.tiny_llm.TinyLLM`
architecture on ``data/corpus/train.txt`` (English the course wrote about serving and
batching, MIT-licensed like the code) and stores two files in ``data/tiny_llm/``:

* ``weights.npz`` - every array of :meth:`TinyLLM.weight_arrays`, in float16 to stay small;
* ``card.json`` - a :class:`ModelCard`: the architecture, the seed and hyper-parameters, how
  long training took on which machine, and the losses of the float16 weights measured in
  float64 by the training script (PyTorch), which :func:`corpus_loss` must reproduce in numpy.

A corpus text is a list of paragraphs separated by blank lines. As a token stream
(:func:`corpus_tokens`) each paragraph is its characters followed by EOS, so the model learned
to end a paragraph with EOS - a request with ``SamplingParams(eos_token_id=...)`` stops there.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .._validate import positive_int
from ..attention.dense_attention import masked_attention
from ..attention.ragged_attention import AttentionFn
from .tiny_llm import TinyLLM
from .tokenizer import CharTokenizer

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
CORPUS_DIR = DATA_DIR / "corpus"
MODEL_DIR = DATA_DIR / "tiny_llm"
CORPUS_PARTS = ("train", "heldout")


@dataclass(frozen=True)
class ModelConfig:
    """The architecture: the keyword arguments of :class:`TinyLLM` besides weights and dtype."""

    vocab_size: int
    d_model: int
    n_layers: int
    n_heads: int
    max_seq_len: int


@dataclass(frozen=True)
class TrainingRecord:
    """How the shipped weights were made (what ``tools/train_tiny_llm.py`` was run with)."""

    seed: int
    steps: int
    batch_size: int
    context: int             # tokens per training window (= max_seq_len)
    learning_rate: float     # peak AdamW rate, after linear warm-up, cosine-decayed to 10 %
    warmup_steps: int
    weight_decay: float
    dropout: float
    torch_version: str
    num_threads: int
    seconds: float           # wall-clock training time
    machine: str


@dataclass(frozen=True)
class ModelCard:
    """What ``card.json`` records about the shipped weights.

    ``train_loss`` and ``heldout_loss`` are mean next-character cross-entropies in nats
    (:func:`corpus_loss`) of the float16 weights; ``retrain_tolerance`` is how far a fresh run
    of the training script may land from ``heldout_loss`` (different machines and thread
    counts round differently, so training is repeatable, not bit-identical).
    ``curve`` holds ``(step, batch loss, held-out loss)`` rows logged during training.
    """

    config: ModelConfig
    training: TrainingRecord
    train_loss: float
    heldout_loss: float
    heldout_tokens: int
    retrain_tolerance: float
    curve: tuple[tuple[int, float, float], ...]

    @classmethod
    def load(cls, path: Path = MODEL_DIR / "card.json") -> "ModelCard":
        raw = json.loads(Path(path).read_text())
        return cls(config=ModelConfig(**raw["config"]), training=TrainingRecord(**raw["training"]),
                   train_loss=raw["train_loss"], heldout_loss=raw["heldout_loss"],
                   heldout_tokens=raw["heldout_tokens"],
                   retrain_tolerance=raw["retrain_tolerance"],
                   curve=tuple(tuple(row) for row in raw["curve"]))

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=1) + "\n")


def read_corpus(part: str) -> str:
    """The text of one corpus part, ``"train"`` or ``"heldout"``."""
    if part not in CORPUS_PARTS:
        raise ValueError(f"part must be one of {CORPUS_PARTS}, got {part!r}")
    return (CORPUS_DIR / f"{part}.txt").read_text(encoding="ascii")


def paragraphs(text: str) -> list[str]:
    """The paragraphs of ``text``: blocks separated by blank lines, each stripped."""
    return [p.strip() for p in text.split("\n\n") if p.strip()]


def corpus_tokens(text: str, tokenizer: CharTokenizer) -> np.ndarray:
    """``(N,)`` int64 ids: every paragraph's characters followed by EOS."""
    ids: list[int] = []
    for paragraph in paragraphs(text):
        ids += tokenizer.encode(paragraph) + [tokenizer.eos_id]
    return np.asarray(ids, dtype=np.int64)


def loss_windows(tokens: np.ndarray, context: int) -> list[np.ndarray]:
    """Consecutive windows of ``context + 1`` tokens overlapping by one: inputs ``window[:-1]``,
    targets ``window[1:]``, so every token of ``tokens (N,)`` but the first is a target once."""
    return [tokens[start:start + context + 1] for start in range(0, len(tokens) - 1, context)]


def corpus_loss(model: TinyLLM, tokens: np.ndarray, context: int | None = None,
                attend: AttentionFn = masked_attention) -> float:
    """Mean cross-entropy (nats) of predicting each token of ``tokens (N,)`` from the ones before.

    The stream is cut into :func:`loss_windows`, so every token but the first is predicted
    exactly once, from at most ``context`` tokens of its own window (``context`` defaults to
    the model's ``max_seq_len``). ``attend`` replaces
    the attention, as an attention plugin's ``compute_attention`` does, to score a variant.
    """
    context = positive_int("context", model.max_seq_len if context is None else context)
    if len(tokens) < 2:
        raise ValueError(f"tokens must hold at least 2 ids, got {len(tokens)}")
    total, count = 0.0, 0
    for window in loss_windows(tokens, context):
        logits = model.forward_prefill_dense(window[:-1], attend).logits    # (T, vocab)
        shifted = logits - logits.max(axis=-1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        total -= float(log_probs[np.arange(len(window) - 1), window[1:]].sum())
        count += len(window) - 1
    return total / count


def load_pretrained(dtype=np.float64, model_dir: Path = MODEL_DIR) -> TinyLLM:
    """Build the shipped model (see :meth:`TinyLLM.pretrained`)."""
    card = ModelCard.load(Path(model_dir) / "card.json")
    with np.load(Path(model_dir) / "weights.npz") as archive:
        weights = {name: archive[name] for name in archive.files}
    model = TinyLLM(seed=card.training.seed, dtype=dtype, weights=weights,
                    tokenizer=CharTokenizer(), **asdict(card.config))
    model.weights_source = "pretrained"
    return model
