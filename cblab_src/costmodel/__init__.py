"""Milliseconds for steps: GPU cost models for the scheduler's runs.

The engine counts steps. A cost model says what a step would take on a real GPU, from what it
computes (:class:`StepComposition`: its tokens, the context each decode reads, each prefill
chunk's length and earlier context, the rows it samples):

* :data:`H200_LLAMA3_8B` (the default) — measured on an NVIDIA H200 for a Llama-3-8B-shaped
  model in eager PyTorch (no CUDA graphs, so small steps include kernel-launch overhead),
  interpolated (:mod:`~cblab_src.costmodel.table`); :data:`H200_LLAMA3_8B_ONE_LAUNCH` is the
  same table charging a step that mixes decodes and prefill chunks one attention launch, as
  vLLM v1's single varlen attention call does, instead of two;
* :data:`H200_LLAMA3_8B_ROOFLINE` — its launch-free floor: the same model and GPU as a
  roofline at the rates measured there, with no launch overhead (a step of one decode: 3.5 ms
  against the table's 10.4 ms);
* :class:`Roofline` — peak compute and bandwidth of any GPU (:data:`GPUS`), any model shape,
  ``tp`` GPUs with their all-reduces (:mod:`~cblab_src.costmodel.roofline`).

``H200_LLAMA3_8B.step_ms(StepComposition.uniform(num_decodes=1, context_len=100))`` is about
10.4 ms; a step of 256 decodes costs 12.2 ms: the weights are read once per step.
"""

from .base import PARTS, CostModel
from .composition import StepArrays, StepComposition
from .roofline import (GPU, GPUS, H200_LLAMA3_8B_ROOFLINE, LLAMA3_8B, LLAMA3_70B, ModelShape,
                       Roofline, kv_capacity_tokens)
from .table import (H200_LLAMA3_8B, H200_LLAMA3_8B_ONE_LAUNCH, Curve, TableCostModel,
                    h200_measurements, monotone_fit)

DEFAULT_COST_MODEL = H200_LLAMA3_8B

__all__ = ["CostModel", "PARTS", "StepComposition", "StepArrays", "TableCostModel", "Curve",
           "H200_LLAMA3_8B", "H200_LLAMA3_8B_ONE_LAUNCH", "H200_LLAMA3_8B_ROOFLINE",
           "DEFAULT_COST_MODEL", "h200_measurements", "monotone_fit",
           "Roofline", "ModelShape", "GPU", "GPUS", "LLAMA3_8B", "LLAMA3_70B",
           "kv_capacity_tokens"]
