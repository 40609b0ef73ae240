"""Metrics and memory measurements read from what the scheduler produces."""

from .memory_profiler import DetailedMemoryProfiler, MemoryRecord
from .metrics import Distribution, LatencySummary, MetricsCollector, RequestTimes, request_times
from .pool_snapshot import PoolRecorder, PoolSnapshot, block_owners, slot_fill

__all__ = ["DetailedMemoryProfiler", "MemoryRecord", "MetricsCollector", "RequestTimes",
           "LatencySummary", "Distribution", "request_times",
           "PoolRecorder", "PoolSnapshot", "block_owners", "slot_fill"]
