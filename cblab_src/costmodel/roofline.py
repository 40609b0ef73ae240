"""An analytic cost model: a roofline for any GPU, model shape and tensor-parallel degree.

Every kernel takes ``max(FLOPs / peak rate, bytes / memory bandwidth)`` — whichever the
hardware runs out of first. Per layer and per GPU (``tp`` GPUs split every matrix and head):

* dense part (projections + MLP, ``P`` weights): ``2 T P / tp`` FLOPs, ``P * bytes / tp`` read —
  memory-bound for small ``T`` (the weights are read once per step, whatever ``T``), then
  compute-bound once ``T`` passes ``peak / bandwidth * bytes / 2`` tokens (~300 on an H200);
* attention: ``4 * pairs * n_heads * head_dim / tp`` FLOPs for the query-key and
  weight-value products; the cached K/V read, ``kv_tokens * 2 * n_kv_heads * head_dim * bytes
  / tp`` (decodes read their whole context; a chunk reads its prompt so far; past
  ``tp = n_kv_heads`` each GPU keeps a copy of one KV head);
* with ``tp > 1``, two all-reduces of the step's activations per layer (after attention and
  after the MLP), each ``2 (tp - 1) / tp * T * d_model * bytes / allreduce_gbps + latency``
  (a ring all-reduce);
* ``layer_overhead_ms`` per layer (kernel launches; 0 for an ideal machine).

Once per step, the LM head: ``2 * rows * d_model * vocab / tp`` FLOPs, its weights read once.
Activations' own memory traffic is left out: it is small next to the weights until ``T`` is in
the thousands, where the step is compute-bound anyway.

GPU figures are datasheet peaks (dense bf16 tensor-core FLOP/s, HBM bandwidth; NVLink
bandwidth per direction as the all-reduce bandwidth). Real kernels reach 60-90% of them: the
measured H200 table (:data:`~cblab_src.costmodel.table.H200_LLAMA3_8B`) is the honest
reference, and ``GPUS["H200-measured"]`` holds the matmul rate and copy bandwidth measured
on that GPU.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .._validate import positive_int, real
from .base import CostModel
from .composition import StepArrays
from .table import h200_measurements


@dataclass(frozen=True)
class ModelShape:
    """A decoder-only transformer's sizes (a Llama-style model: gated MLP, grouped KV heads)."""

    name: str
    d_model: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    ffn: int                 # MLP hidden size
    vocab: int
    bytes_per_value: int = 2   # bf16 weights and KV cache
    gated_mlp: bool = True     # SwiGLU: three FFN matrices instead of two

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise TypeError(f"name must be a str, got {self.name!r}")
        for name in ("d_model", "n_layers", "n_heads", "n_kv_heads", "head_dim", "ffn", "vocab",
                     "bytes_per_value"):
            positive_int(name, getattr(self, name))
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_kv_heads must divide n_heads ({self.n_heads}), got "
                             f"{self.n_kv_heads}")
        if not isinstance(self.gated_mlp, bool):
            raise TypeError(f"gated_mlp must be a bool, got {self.gated_mlp!r}")

    @property
    def layer_params(self) -> int:
        """Weights of one layer's dense part: Q, K, V and O projections and the MLP."""
        q_o = 2 * self.d_model * self.n_heads * self.head_dim
        k_v = 2 * self.d_model * self.n_kv_heads * self.head_dim
        return q_o + k_v + (3 if self.gated_mlp else 2) * self.d_model * self.ffn

    @property
    def params(self) -> int:
        """All weights: layers, LM head and embedding (untied)."""
        return self.n_layers * self.layer_params + 2 * self.d_model * self.vocab

    @property
    def kv_bytes_per_token(self) -> int:
        """KV-cache bytes of one token over all layers: ``2 * layers * kv_heads * head_dim * bytes``
        (Llama-3-8B: 128 KiB)."""
        return 2 * self.n_layers * self.n_kv_heads * self.head_dim * self.bytes_per_value


def _model_from_json() -> ModelShape:
    m = h200_measurements()["model"]
    return ModelShape("Llama-3-8B", m["d_model"], m["n_layers"], m["n_heads"], m["n_kv_heads"],
                      m["head_dim"], m["ffn"], m["vocab"])


LLAMA3_8B = _model_from_json()
LLAMA3_70B = ModelShape("Llama-3-70B", 8192, 80, 64, 8, 128, 28672, 128256)


@dataclass(frozen=True)
class GPU:
    """Peak rates of one GPU."""

    name: str
    peak_tflops: float       # dense bf16 tensor-core rate, 10^12 FLOP/s
    mem_bw_gbps: float       # HBM bandwidth, GB/s
    memory_gb: float         # HBM capacity, GB
    allreduce_gbps: float    # per-direction GPU-to-GPU bandwidth an all-reduce can use, GB/s
    allreduce_latency_us: float = 10.0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise TypeError(f"name must be a str, got {self.name!r}")
        for name in ("peak_tflops", "mem_bw_gbps", "memory_gb", "allreduce_gbps"):
            real(name, getattr(self, name), positive=True)
        real("allreduce_latency_us", self.allreduce_latency_us, minimum=0.0)


_H200 = h200_measurements()
GPUS = {
    # NVIDIA datasheets: H100/H200 SXM 989 TFLOP/s dense BF16; HBM 3.35 / 4.8 TB/s; NVLink 4
    # 900 GB/s total (450 per direction). A100 SXM: 312 TFLOP/s, 2.04 TB/s (80 GB) or
    # 1.56 TB/s (40 GB), NVLink 3 600 GB/s total.
    "H200": GPU("H200 SXM", 989.0, 4800.0, 141.0, 450.0),
    "H100": GPU("H100 SXM", 989.0, 3350.0, 80.0, 450.0),
    "A100-80GB": GPU("A100 SXM 80GB", 312.0, 2039.0, 80.0, 300.0),
    "A100-40GB": GPU("A100 SXM 40GB", 312.0, 1555.0, 40.0, 300.0),
    # What the H200 of the measured table achieved: bf16 matmul rate and copy bandwidth.
    "H200-measured": GPU("H200 (measured)", round(_H200["bf16_matmul_TFLOPs"], 1),
                         round(_H200["copy_bw_GBps"], 1), 141.0, 450.0),
}


@dataclass(frozen=True, repr=False)
class Roofline(CostModel):
    """Step time from peak rates (see the module docstring).

    ``Roofline.of("H100", LLAMA3_70B, tp=4)`` is a 70B model on four H100s.
    """

    peak_tflops: float
    mem_bw_gbps: float
    model: ModelShape = LLAMA3_8B
    tp: int = 1
    allreduce_gbps: float = 450.0
    allreduce_latency_us: float = 10.0
    layer_overhead_ms: float = 0.0
    name: str = "roofline"

    def __post_init__(self) -> None:
        positive_int("tp", self.tp)
        for name in ("peak_tflops", "mem_bw_gbps", "allreduce_gbps"):
            real(name, getattr(self, name), positive=True)
        for name in ("allreduce_latency_us", "layer_overhead_ms"):
            real(name, getattr(self, name), minimum=0.0)
        if not isinstance(self.model, ModelShape):
            raise TypeError(f"model must be a ModelShape, got {self.model!r}")
        if not isinstance(self.name, str):
            raise TypeError(f"name must be a str, got {self.name!r}")
        if self.model.n_heads % self.tp:
            raise ValueError(f"tp must divide n_heads ({self.model.n_heads}), got {self.tp}")

    @classmethod
    def of(cls, gpu: str | GPU, model: ModelShape = LLAMA3_8B, *, tp: int = 1,
           layer_overhead_ms: float = 0.0) -> "Roofline":
        """The roofline of ``tp`` GPUs named in :data:`GPUS` (or a :class:`GPU`)."""
        gpu, tp = _gpu(gpu), positive_int("tp", tp)
        if not isinstance(model, ModelShape):
            raise TypeError(f"model must be a ModelShape, got {model!r}")
        tp_text = f" x{tp}" if tp > 1 else ""
        return cls(gpu.peak_tflops, gpu.mem_bw_gbps, model, tp, gpu.allreduce_gbps,
                   gpu.allreduce_latency_us, layer_overhead_ms,
                   name=f"{gpu.name}{tp_text} / {model.name} (roofline)")

    # ------------------------------------------------------------------ kernels
    def _kernel_ms(self, flops, bytes_) -> np.ndarray:
        """``max(compute, memory)`` time in ms of kernels with these FLOPs and bytes (per GPU)."""
        return np.maximum(flops / (self.peak_tflops * 1e9), bytes_ / (self.mem_bw_gbps * 1e6))

    def dense_layer_ms(self, num_tokens) -> np.ndarray:
        """One layer's dense part for ``T`` tokens, on one of the ``tp`` GPUs (ms)."""
        t = np.asarray(num_tokens, dtype=np.float64)
        p = self.model.layer_params / self.tp
        return np.where(t > 0, self._kernel_ms(2 * t * p, p * self.model.bytes_per_value), 0.0)

    def dense_bound(self, num_tokens: int) -> str:
        """``"memory"`` or ``"compute"``: which limit sets the dense part's time at ``T`` tokens."""
        p = self.model.layer_params / self.tp
        compute = 2 * num_tokens * p / (self.peak_tflops * 1e9)
        memory = p * self.model.bytes_per_value / (self.mem_bw_gbps * 1e6)
        return "compute" if compute > memory else "memory"

    @property
    def ridge_tokens(self) -> float:
        """Tokens per step where the dense part turns compute-bound: ``peak / bw * bytes / 2``."""
        return self.peak_tflops * 1e3 / self.mem_bw_gbps * self.model.bytes_per_value / 2

    def allreduce_ms(self, num_tokens) -> np.ndarray:
        """One ring all-reduce of ``T`` rows of activations across the ``tp`` GPUs (ms)."""
        t = np.asarray(num_tokens, dtype=np.float64)
        if self.tp == 1:
            return np.zeros_like(t)
        size = t * self.model.d_model * self.model.bytes_per_value
        wire = 2 * (self.tp - 1) / self.tp * size / (self.allreduce_gbps * 1e6)
        return np.where(t > 0, wire + self.allreduce_latency_us / 1e3, 0.0)

    def parts(self, steps: StepArrays) -> dict[str, np.ndarray]:
        m, L = self.model, self.model.n_layers
        kv_heads = max(m.n_kv_heads / self.tp, 1)        # KV heads are replicated past tp = n_kv
        per_kv_token = 2 * kv_heads * m.head_dim * m.bytes_per_value
        attn_flops = 4 * m.n_heads * m.head_dim / self.tp
        decode = self._kernel_ms(attn_flops * steps.decode_kv_tokens,
                                 per_kv_token * steps.decode_kv_tokens)
        prefill = self._kernel_ms(attn_flops * steps.prefill_pairs,
                                  per_kv_token * steps.prefill_kv_tokens)
        head_params = m.d_model * m.vocab / self.tp
        lm_head = np.where(steps.num_sampled > 0,
                           self._kernel_ms(2 * steps.num_sampled * head_params,
                                           head_params * m.bytes_per_value), 0.0)
        busy = steps.num_tokens > 0
        return {
            "dense": L * self.dense_layer_ms(steps.num_tokens),
            "attention": L * (np.where(steps.num_decodes > 0, decode, 0.0)
                              + np.where(steps.num_chunks > 0, prefill, 0.0)),
            "lm_head": lm_head,
            "allreduce": L * 2 * self.allreduce_ms(steps.num_tokens),
            "overhead": np.where(busy, L * self.layer_overhead_ms, 0.0),
        }


def kv_capacity_tokens(gpu: str | GPU = "H200", model: ModelShape = LLAMA3_8B, *, tp: int = 1,
                       memory_fraction: float = 0.9, activation_gb: float = 2.0) -> int:
    """Tokens of KV cache that fit: ``memory_fraction`` of the GPUs' memory (vLLM's
    ``gpu_memory_utilization`` default is 0.9) less the weights and ``activation_gb`` per GPU,
    divided by :attr:`ModelShape.kv_bytes_per_token`. An H200 with Llama-3-8B holds about 830k."""
    g = _gpu(gpu)
    if not isinstance(model, ModelShape):
        raise TypeError(f"model must be a ModelShape, got {model!r}")
    tp = positive_int("tp", tp)
    if not 0 < real("memory_fraction", memory_fraction) <= 1:
        raise ValueError(f"memory_fraction must be in (0, 1], got {memory_fraction!r}")
    real("activation_gb", activation_gb, minimum=0.0)
    free = tp * (memory_fraction * g.memory_gb - activation_gb) * 1e9 - model.params * model.bytes_per_value
    if free <= 0:
        raise ValueError(f"{model.name} does not fit on {tp} x {g.name}")
    return int(free // model.kv_bytes_per_token)


def _gpu(gpu) -> GPU:
    """A :class:`GPU`, or the one :data:`GPUS` names."""
    if isinstance(gpu, str):
        if gpu not in GPUS:
            raise ValueError(f"gpu must be one of {tuple(GPUS)} or a GPU, got {gpu!r}")
        return GPUS[gpu]
    if not isinstance(gpu, GPU):
        raise TypeError(f"gpu must be one of {tuple(GPUS)} or a GPU, got {gpu!r} "
                        f"({type(gpu).__name__})")
    return gpu


#: The launch-free floor of :data:`~cblab_src.costmodel.table.H200_LLAMA3_8B`: the same
#: Llama-3-8B shape on the same H200, every kernel at the bf16 matmul rate and copy bandwidth
#: measured on that GPU (``GPUS["H200-measured"]``) and no kernel-launch overhead
#: (``layer_overhead_ms=0``). The measured table ran eagerly, without CUDA graphs: of its
#: ~0.28 ms per layer for a small step, ~0.10 ms is reading the weights at the measured
#: bandwidth and the rest, as flat in the tokens, is mostly the launching of the layer's kernels
#: one by one. Servers capture decode steps in CUDA graphs, which removes most of the launch
#: cost, so a real server's small steps lie between the two presets; this one is their lower
#: bound (real kernels do not reach the measured peaks on every shape). A step of one decode
#: costs 3.5 ms here, 10.4 ms in the table. Where the launches no longer matter the two agree:
#: a 16384-token prompt costs 18% less here, and the attention of decodes reading millions of
#: cached tokens 5% more (the measured kernel read K/V a little faster than the measured copy).
H200_LLAMA3_8B_ROOFLINE = replace(Roofline.of("H200-measured", LLAMA3_8B),
                                  name="H200 / Llama-3-8B roofline, no launch overhead")
