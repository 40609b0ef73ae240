"""cblab_src: a small, real continuous-batching engine in numpy.

One request's trip: :class:`Request` -> :meth:`Scheduler.step` picks decodes then prefill
chunks -> :func:`~cblab_src.core.batch_builder.build_batch` lays them out ragged ->
:class:`TinyLLM` runs one forward pass over the step, reading and writing the KV cache ->
a token is sampled -> :class:`StepStats` -> plugins, metrics, figures.
"""

from .attention import (causal_mask, dense_causal_attention, gather_kv, masked_attention,
                        paged_attention, ragged_attention, segmented_attention)
from .core import (BlockPool, DenseKVCache, FinishReason, KVUsage, PagedKVCache, Preemption,
                   RaggedBatch, Request, RequestState, Scheduler, SchedulerConfig, SchedulerCounters,
                   StepStats, Policy,
                   build_batch, padding_waste, ragged_causal_mask, ragged_mask)
from .model import CharTokenizer, LogitsProcessor, PrefillOutput, SamplingParams, TinyLLM
from .monitoring import DetailedMemoryProfiler, LatencySummary, MetricsCollector, RequestTimes
from .plugins import (AttentionPlugin, LoggingPlugin, MetricsPlugin, PluginManager,
                      SchedulerPlugin, format_step)

__version__ = "0.1.0"

__all__ = [
    "Request", "RequestState", "FinishReason", "Scheduler", "SchedulerConfig", "Policy",
    "SchedulerCounters", "StepStats",
    "Preemption", "TinyLLM", "CharTokenizer", "PrefillOutput", "SamplingParams", "LogitsProcessor",
    "DenseKVCache", "PagedKVCache", "BlockPool", "KVUsage", "RaggedBatch", "build_batch",
    "ragged_causal_mask", "ragged_mask", "padding_waste",
    "causal_mask", "masked_attention", "dense_causal_attention", "ragged_attention",
    "segmented_attention", "paged_attention", "gather_kv",
    "SchedulerPlugin", "AttentionPlugin", "PluginManager", "LoggingPlugin", "MetricsPlugin",
    "format_step", "MetricsCollector", "RequestTimes", "LatencySummary",
    "DetailedMemoryProfiler",
]
