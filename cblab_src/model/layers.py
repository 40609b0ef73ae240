"""The pieces TinyLLM is built from: its weights, what a prefill returns, and three functions.

A decoder layer is ``x + attention(layer_norm(x))`` then ``x + mlp(layer_norm(x))``; its
parameters are one :class:`LayerWeights`. :func:`layer_norm` and :func:`gelu` are the two
non-linear functions the layer applies besides attention, and :func:`sinusoidal_positions` is
the fixed (untrained) table of position codes added to the token embeddings.
:class:`PrefillOutput` is what a dense prefill of one sequence computes. The model that puts
them together is :class:`~cblab_src.model.tiny_llm.TinyLLM`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LayerWeights:
    """One decoder layer's parameters (``d`` = d_model, ``f`` = 4 d)."""

    ln1_gain: np.ndarray   # (d,)
    ln1_bias: np.ndarray   # (d,)
    w_qkv: np.ndarray      # (d, 3d): queries, keys and values in one matmul
    w_out: np.ndarray      # (d, d)
    ln2_gain: np.ndarray   # (d,)
    ln2_bias: np.ndarray   # (d,)
    w_up: np.ndarray       # (d, f)
    w_down: np.ndarray     # (f, d)


@dataclass(frozen=True)
class PrefillOutput:
    """What a dense prefill of ``T`` tokens computes."""

    logits: np.ndarray        # (T, vocab): row t predicts token t + 1
    keys: list[np.ndarray]    # per layer, (T, H, D)
    values: list[np.ndarray]  # per layer, (T, H, D)

    @property
    def num_computed_tokens(self) -> int:
        """Tokens whose K/V the prefill computed: ``T``."""
        return self.keys[0].shape[0]


def layer_norm(x: np.ndarray, gain: np.ndarray, bias: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """Normalise each row of ``x (N, d)`` to zero mean and unit variance, then scale and shift."""
    centred = x - x.mean(axis=-1, keepdims=True)
    var = np.mean(centred * centred, axis=-1, keepdims=True)     # what x.var computes
    centred /= np.sqrt(var + eps)
    centred *= gain
    centred += bias
    return centred


def gelu(x: np.ndarray) -> np.ndarray:
    """GELU, tanh approximation (as in GPT-2). Python-float constants keep ``x``'s dtype."""
    # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), each operation in place on one array
    # (performance: one temporary instead of eight; the same operations, the same results)
    y = x * x
    y *= x
    y *= 0.044715
    y += x
    y *= math.sqrt(2.0 / math.pi)
    np.tanh(y, out=y)
    y += 1.0
    y *= 0.5 * x
    return y


def sinusoidal_positions(max_len: int, d_model: int) -> np.ndarray:
    """``(max_len, d_model)`` sin/cos position codes of "Attention Is All You Need"."""
    pos = np.arange(max_len)[:, None]
    freq = np.exp(-np.log(10000.0) * np.arange(0, d_model, 2) / d_model)
    table = np.zeros((max_len, d_model))
    table[:, 0::2] = np.sin(pos * freq)
    table[:, 1::2] = np.cos(pos * freq)
    return table


# The names of the trained arrays: the model's own, then each layer's (``layers.<i>.<name>``).
WEIGHT_NAMES = ("tok_emb", "lnf_gain", "lnf_bias", "w_lm")
LAYER_WEIGHT_NAMES = tuple(LayerWeights.__dataclass_fields__)
