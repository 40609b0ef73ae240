"""Metrics and memory measurements read from what the scheduler produces."""

from .memory_profiler import DetailedMemoryProfiler, MemoryRecord
from .metrics import MetricsCollector, RequestMetrics, request_metrics
from .pool_snapshot import PoolRecorder, PoolSnapshot, block_owners, slot_fill

__all__ = ["DetailedMemoryProfiler", "MemoryRecord", "MetricsCollector", "RequestMetrics",
           "request_metrics", "PoolRecorder", "PoolSnapshot", "block_owners", "slot_fill"]
