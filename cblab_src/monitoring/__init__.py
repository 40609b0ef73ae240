"""Metrics and memory measurements read from what the scheduler produces."""

from .memory_profiler import DetailedMemoryProfiler, MemoryRecord
from .metrics import MetricsCollector, RequestMetrics, request_metrics

__all__ = ["DetailedMemoryProfiler", "MemoryRecord", "MetricsCollector", "RequestMetrics",
           "request_metrics"]
