"""The pretrained model's two files in ``data/tiny_llm/``, and how to read them.

* ``weights.npz`` - every array of :meth:`TinyLLM.weight_arrays`, in float16 to stay small;
* ``card.json`` - a :class:`ModelCard`: the architecture, the seed and hyper-parameters, how
  long training took on which machine, and the losses of the float16 weights.

:meth:`TinyLLM.pretrained <cblab_src.model.tiny_llm.TinyLLM.pretrained>` builds the model from
them. This module reads files and knows nothing of the model, so the imports run one way:
``pretrained`` (corpus and loss) -> ``tiny_llm`` (the model) -> ``checkpoint`` (its files).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

MODEL_DIR = Path(__file__).resolve().parent.parent / "data" / "tiny_llm"


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
    (:func:`~cblab_src.model.pretrained.corpus_loss`) of the float16 weights;
    ``retrain_tolerance`` is how far a fresh run of the training script may land from
    ``heldout_loss`` (different machines and thread counts round differently, so training is
    repeatable, not bit-identical).
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


def read_weights(model_dir: Path = MODEL_DIR) -> dict[str, np.ndarray]:
    """Every array of ``model_dir/weights.npz`` by name, as stored (float16)."""
    with np.load(Path(model_dir) / "weights.npz") as archive:
        return {name: archive[name] for name in archive.files}
