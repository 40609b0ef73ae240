"""Requests, ragged batches, KV caches and the scheduler."""

from .batch_builder import RaggedBatch, Segment, build_batch, padding_waste, ragged_causal_mask, ragged_mask
from .kv_cache import BlockAllocator, DenseKVCache, KVCache, KVUsage, PagedKVCache
from .request import FinishReason, Request, RequestState
from .scheduler import Scheduler, SchedulerCounters
from .step_stats import Preemption, StepStats

__all__ = ["RaggedBatch", "Segment", "build_batch", "padding_waste", "ragged_causal_mask",
           "ragged_mask", "BlockAllocator", "DenseKVCache", "KVCache", "KVUsage", "PagedKVCache",
           "FinishReason", "Request", "RequestState", "Scheduler", "SchedulerCounters", "Preemption", "StepStats"]
