"""The pretrained TinyLLM: its corpus, its record of training, its loss, and how to load it.

``tools/train_tiny_llm.py`` trains the exact :class:`~cblab_src.model.tiny_llm.TinyLLM`
architecture on ``data/corpus/train.txt`` (English the course wrote about serving and
batching, MIT-licensed like the code) and stores two files in ``data/tiny_llm/``:

* ``weights.npz`` - every array of :meth:`TinyLLM.weight_arrays`, in float16 to stay small;
* ``card.json`` - a :class:`ModelCard`: the architecture, the seed and hyper-parameters, how
  long training took on which machine, and the losses of the float16 weights measured in
  float64 by the training script (PyTorch), which :func:`corpus_loss` must reproduce in numpy.

Both are read by :mod:`cblab_src.model.checkpoint` (``ModelCard``, ``ModelConfig``,
``TrainingRecord`` and ``MODEL_DIR`` are re-exported here), for :meth:`TinyLLM.pretrained`.

A corpus text is a list of paragraphs separated by blank lines. As a token stream
(:func:`corpus_tokens`) each paragraph is its characters followed by EOS, so the model learned
to end a paragraph with EOS - a request with ``SamplingParams(eos_token_id=...)`` stops there.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._validate import positive_int
from ..attention.dense_attention import masked_attention
from ..attention.ragged_attention import AttentionFn
from .checkpoint import MODEL_DIR, ModelCard, ModelConfig, TrainingRecord
from .tiny_llm import TinyLLM
from .tokenizer import CharTokenizer

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
CORPUS_DIR = DATA_DIR / "corpus"
CORPUS_PARTS = ("train", "heldout")

__all__ = ["DATA_DIR", "CORPUS_DIR", "CORPUS_PARTS", "MODEL_DIR", "ModelCard", "ModelConfig",
           "TrainingRecord", "read_corpus", "paragraphs", "corpus_tokens", "loss_windows",
           "corpus_loss", "load_pretrained"]


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
    """Build the model stored in ``model_dir`` (default: the shipped one); see
    :meth:`TinyLLM.pretrained`, which does the loading."""
    return TinyLLM.pretrained(dtype, model_dir=model_dir)
