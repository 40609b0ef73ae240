"""Measure memory around a block of code: Python heap (``tracemalloc``) and KV-cache bytes."""

from __future__ import annotations

import contextlib
import tracemalloc
from dataclasses import dataclass


@dataclass(frozen=True)
class MemoryRecord:
    """Memory figures of one profiled block, in bytes."""

    name: str
    heap_delta: int        # Python heap allocated and still held when the block ended
    heap_peak: int         # highest Python heap above the starting point inside the block
    kv_bytes_before: int   # K/V stored by the scheduler's cache when the block started
    kv_bytes_after: int

    @property
    def kv_delta(self) -> int:
        return self.kv_bytes_after - self.kv_bytes_before


class DetailedMemoryProfiler:
    """Records a :class:`MemoryRecord` for each ``with profiler.profile_context(name):`` block.

    Give it the scheduler (``DetailedMemoryProfiler(scheduler)``) to also track the bytes its
    KV cache stores. Records are kept in ``self.records``; nothing is printed.
    """

    def __init__(self, scheduler=None):
        self.scheduler = scheduler
        self.records: list[MemoryRecord] = []

    def _kv_bytes(self) -> int:
        return 0 if self.scheduler is None else self.scheduler.kv_cache.nbytes()

    @contextlib.contextmanager
    def profile_context(self, name: str):
        """Profile the enclosed block; the record is appended to ``self.records`` on exit."""
        started_here = not tracemalloc.is_tracing()
        if started_here:
            tracemalloc.start()
        tracemalloc.reset_peak()
        heap_before, _ = tracemalloc.get_traced_memory()
        kv_before = self._kv_bytes()
        try:
            yield self
        finally:
            heap_after, peak = tracemalloc.get_traced_memory()
            if started_here:
                tracemalloc.stop()
            self.records.append(MemoryRecord(name, heap_after - heap_before, peak - heap_before,
                                             kv_before, self._kv_bytes()))

    @property
    def last(self) -> MemoryRecord:
        return self.records[-1]

    def summary(self) -> list[dict]:
        """One dict per record, for a table."""
        return [{"name": r.name, "heap_delta": r.heap_delta, "heap_peak": r.heap_peak,
                 "kv_bytes": r.kv_bytes_after, "kv_delta": r.kv_delta} for r in self.records]
