"""PartTimer: the exclusive wall time of chosen functions during a run, for the profiles.

A part's time excludes the other wrapped parts it calls, so the parts add up to the whole.
Each wrapped call costs about a microsecond more: compare parts with each other, and take
totals from ``run_all.py``.
"""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager


class PartTimer:
    """Adds up the exclusive wall time of the wrapped functions, per label."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self._inner: list[float] = []       # time spent in wrapped callees, per open call

    def timed(self, fn, label: str):
        def wrapper(*args, **kwargs):
            self._inner.append(0.0)
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                self.seconds[label] += elapsed - self._inner.pop()
                if self._inner:
                    self._inner[-1] += elapsed
        return wrapper

    @contextmanager
    def installed(self, parts):
        """Wrap every ``(owner, name, label)`` of ``parts`` (a class or module, the function's
        name in it, its label) for the duration of the block, then put the originals back."""
        originals = [(owner, name, vars(owner)[name]) for owner, name, _ in parts]
        try:
            for owner, name, label in parts:
                setattr(owner, name, self.timed(getattr(owner, name), label))
            yield self
        finally:
            for owner, name, original in originals:
                setattr(owner, name, original)
