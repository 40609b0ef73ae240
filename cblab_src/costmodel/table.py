"""A cost model read from measurements: :data:`H200_LLAMA3_8B`, one NVIDIA H200 running a
Llama-3-8B-shaped model (``cblab_src/data/h200_step_costs.json``).

Provenance: per-step cost components of a Llama-3-8B-shaped decoder (d_model 4096, 32 heads, 8
KV heads, head_dim 128, FFN 14336, 32 layers, vocab 128256), measured on one H200 in bf16 with
PyTorch 2.11 (CUDA events, median of 20 runs after 3 warm-ups, random weights). The kernels ran
eagerly (no CUDA graphs), so small steps include kernel-launch overhead: the ~0.28 ms floor of a
layer is about 2.7x the time to read its weights at the measured 4.2 TB/s. All curves are
milliseconds of ONE layer, except the LM head (once per step).

A step costs ``n_layers * (dense(T) + decode_attention(sum ctx) + prefill_attention(pairs))
+ lm_head(sampled rows)``:

* ``dense(T)``: ``layer_dense_ms``, linear interpolation in the step's tokens ``T``;
* ``decode_attention``: the measured ``B x L`` grid depends on the total cached tokens read,
  ``B * L``, not on ``B`` and ``L`` apart (above 16k tokens, grid points with equal ``B * L``
  agree within 10%: 64x2048, 128x1024 and 256x512 all take 0.14 ms), with a ~0.035 ms launch
  floor below. We interpolate in ``sum(context lens)``, the median of equal products per point;
* ``prefill_attention``: ``prefill_attn_ms[C]`` is one chunk of ``C`` tokens with no earlier
  context, ``C (C + 1) / 2`` query-key pairs. A step's chunks (with their earlier context)
  run as one variable-length kernel: we interpolate in their total pairs;
* ``lm_head``: ``lm_head_ms``, in the rows that sample a token.

Decode and prefill attention were timed as separate kernels, each with its own launch floor
(~0.036 and ~0.030 ms per layer), so by default a step that holds both pays both floors: 8
prefill tokens that sample one row cost 10.18 ms, 1 decode + 7 prefill tokens 11.32 ms. vLLM v1
runs the whole mixed step through one variable-length attention call per layer;
``one_attention_launch=True`` (:data:`H200_LLAMA3_8B_ONE_LAUNCH`) charges such a step one floor,
the larger one: its attention is ``decode + prefill - min(floors)`` (10.36 ms for the step
above). The default keeps the measured kernels as timed, which overcharges every mixed step by
~1 ms and so biases comparisons against policies that mix (decode-first) and for those that
never do (prefill-first, static batching).

Measurement noise makes some neighbouring points dip: a 96-token dense step measured 5% faster
than a 64-token one, and the smallest attention kernels (a launch floor of 0.03-0.06 ms per
layer) scatter by up to a third. Each curve is replaced by its least-squares non-decreasing fit
(pool adjacent violators), so a bigger step never costs less; the fit moves dense points by at
most 6% and leaves every point above the floors as measured. The raw medians stay in
:attr:`Curve.raw`. Past the last point, curves continue along their last segment.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources

import numpy as np

from .._validate import positive_int, real
from .base import CostModel
from .composition import StepArrays

DATA_FILE = "h200_step_costs.json"


def monotone_fit(y) -> np.ndarray:
    """Least-squares non-decreasing fit of ``y (n,)`` (pool adjacent violators):
    ``monotone_fit([1, 3, 2, 4]) -> [1, 2.5, 2.5, 4]``."""
    blocks: list[list[float]] = []                      # [mean, count]
    for value in np.asarray(y, dtype=np.float64):
        blocks.append([float(value), 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, c2 = blocks.pop()
            m1, c1 = blocks.pop()
            blocks.append([(m1 * c1 + m2 * c2) / (c1 + c2), c1 + c2])
    return np.concatenate([np.full(int(c), m) for m, c in blocks])


@dataclass(frozen=True)
class Curve:
    """Milliseconds measured at points ``x (n,)``, made non-decreasing; ``curve(x)`` interpolates
    linearly, holds the first value below ``x[0]`` and extends the last segment past ``x[-1]``."""

    x: np.ndarray
    raw: np.ndarray                     # the measured medians
    y: np.ndarray = field(init=False)   # their non-decreasing fit

    def __post_init__(self) -> None:
        x, raw = np.asarray(self.x), np.asarray(self.raw)
        if x.ndim != 1 or x.shape != raw.shape or x.size < 2:
            raise ValueError(f"x and raw must be 1-D of the same length >= 2, got shapes "
                             f"{x.shape} and {raw.shape}")
        if not (np.all(np.isfinite(x.astype(np.float64)))
                and np.all(np.isfinite(raw.astype(np.float64)))):
            raise ValueError("x and raw must be finite numbers")
        if np.unique(x).size != x.size:
            raise ValueError(f"x must not repeat a point, got {x.tolist()}")
        order = np.argsort(self.x)
        object.__setattr__(self, "x", np.asarray(self.x, dtype=np.float64)[order])
        object.__setattr__(self, "raw", np.asarray(self.raw, dtype=np.float64)[order])
        object.__setattr__(self, "y", monotone_fit(self.raw))

    @classmethod
    def from_table(cls, table: dict) -> "Curve":
        """From ``{"x": ms, ...}`` as the JSON stores it."""
        return cls(np.array([float(k) for k in table]), np.array(list(table.values())))

    def __call__(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        out = np.interp(x, self.x, self.y)
        slope = (self.y[-1] - self.y[-2]) / (self.x[-1] - self.x[-2])
        return np.where(x > self.x[-1], self.y[-1] + slope * (x - self.x[-1]), out)


def pairs(chunk_len):
    """Query-key pairs of a causal chunk of ``chunk_len`` tokens with no earlier context."""
    c = np.asarray(chunk_len, dtype=np.float64)
    return c * (c + 1) / 2


@dataclass(frozen=True, repr=False)
class TableCostModel(CostModel):
    """Step time from measured per-layer curves (see the module docstring for the formula)."""

    name: str
    n_layers: int
    dense: Curve            # ms of one layer's dense part against tokens in the step
    decode_attention: Curve  # ms of one layer's decode attention against total cached tokens read
    prefill_attention: Curve  # ms of one layer's prefill attention against query-key pairs
    lm_head: Curve          # ms of the LM head against sampled rows
    overhead_ms: float = 0.0  # fixed cost of every non-empty step (scheduling, launches), ms
    source: str = ""
    one_attention_launch: bool = False  # a mixed step's attention pays one launch floor, not two

    def __post_init__(self) -> None:
        positive_int("n_layers", self.n_layers)
        for name in ("dense", "decode_attention", "prefill_attention", "lm_head"):
            if not isinstance(getattr(self, name), Curve):
                raise TypeError(f"{name} must be a Curve, got {getattr(self, name)!r}")
        real("overhead_ms", self.overhead_ms, minimum=0.0)
        if not isinstance(self.name, str) or not isinstance(self.source, str):
            raise TypeError(f"name and source must be str, got {self.name!r}, {self.source!r}")
        if not isinstance(self.one_attention_launch, bool):
            raise TypeError(f"one_attention_launch must be a bool, got "
                            f"{self.one_attention_launch!r}")

    @property
    def attention_floor_ms(self) -> float:
        """The launch floor one attention call does not pay when decodes and chunks share it:
        the smaller of the two curves' floors (ms per layer)."""
        return float(min(self.decode_attention.y[0], self.prefill_attention.y[0]))

    @classmethod
    def from_measurements(cls, data: dict, name: str, *, overhead_ms: float = 0.0,
                          source: str = "", one_attention_launch: bool = False
                          ) -> "TableCostModel":
        """Build from a dict shaped like ``h200_step_costs.json``."""
        by_product: dict[int, list[float]] = {}
        for key, ms in data["decode_attn_ms"].items():
            b, l = (int(v) for v in key.split("x"))
            by_product.setdefault(b * l, []).append(ms)
        products = sorted(by_product)
        prefill = data["prefill_attn_ms"]
        return cls(
            name=name, n_layers=int(data["model"]["n_layers"]),
            dense=Curve.from_table(data["layer_dense_ms"]),
            decode_attention=Curve(np.array(products, dtype=np.float64),
                                   np.array([np.median(by_product[p]) for p in products])),
            prefill_attention=Curve(pairs([float(c) for c in prefill]), np.array(list(prefill.values()))),
            lm_head=Curve.from_table(data["lm_head_ms"]), overhead_ms=overhead_ms, source=source,
            one_attention_launch=one_attention_launch)

    def parts(self, steps: StepArrays) -> dict[str, np.ndarray]:
        L = self.n_layers
        zero = np.zeros(len(steps))
        decodes, chunks = steps.num_decodes > 0, steps.num_chunks > 0
        attention = (np.where(decodes, self.decode_attention(steps.decode_kv_tokens), 0.0)
                     + np.where(chunks, self.prefill_attention(steps.prefill_pairs), 0.0))
        if self.one_attention_launch:
            attention = attention - np.where(decodes & chunks, self.attention_floor_ms, 0.0)
        return {
            "dense": L * np.where(steps.num_tokens > 0, self.dense(steps.num_tokens), 0.0),
            "attention": L * attention,
            "lm_head": np.where(steps.num_sampled > 0, self.lm_head(steps.num_sampled), 0.0),
            "allreduce": zero,
            "overhead": np.where(steps.num_tokens > 0, self.overhead_ms, 0.0),
        }


def h200_measurements() -> dict:
    """The raw contents of ``cblab_src/data/h200_step_costs.json``."""
    text = resources.files("cblab_src").joinpath("data", DATA_FILE).read_text()
    return json.loads(text)


H200_SOURCE = ("NVIDIA H200, Llama-3-8B shape, bf16, PyTorch 2.11 eager, CUDA events "
               "(cblab_src/data/h200_step_costs.json)")

#: The default cost model: an H200 running a Llama-3-8B-shaped model, from measurements (eager
#: PyTorch, no CUDA graphs: small steps include kernel-launch overhead).
H200_LLAMA3_8B = TableCostModel.from_measurements(h200_measurements(), "H200 / Llama-3-8B",
                                                  source=H200_SOURCE)

#: The same measurements, with one attention launch per mixed step (as vLLM v1's single varlen
#: attention call per layer) instead of one for the decodes and one for the prefill chunks.
H200_LLAMA3_8B_ONE_LAUNCH = TableCostModel.from_measurements(
    h200_measurements(), "H200 / Llama-3-8B, one attention launch", source=H200_SOURCE,
    one_attention_launch=True)
