"""Requests, ragged batches, KV caches and the scheduler."""

from .batch_builder import RaggedBatch, Segment, build_batch, padding_waste, ragged_causal_mask, ragged_mask
from .block_pool import BlockPool
from .prefix_match import PrefixMatch
from .kv_cache import DenseKVCache, KVCache, KVUsage
from .paged_kv_cache import PagedKVCache
from .config import SchedulerConfig
from .null_model import NullModel
from .policies import POLICIES, Policy
from .request import FinishReason, Request, RequestState
from .scheduler import Scheduler, SchedulerCounters
from .step_stats import Preemption, StepStats

__all__ = ["RaggedBatch", "Segment", "build_batch", "padding_waste", "ragged_causal_mask",
           "ragged_mask", "BlockPool", "PrefixMatch", "DenseKVCache", "KVCache", "KVUsage", "PagedKVCache",
           "FinishReason", "Request", "RequestState", "Scheduler", "SchedulerCounters", "Preemption", "StepStats",
           "SchedulerConfig", "NullModel", "POLICIES", "Policy"]
