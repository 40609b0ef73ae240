"""Pausing Python's cyclic garbage collector around a long run (performance only).

A run of thousands of requests allocates a few small tuples per request and step (batch items,
``(req_id, token)`` pairs, step records) and makes no reference cycles, so reference counting
alone frees what it drops. The cyclic collector would still examine those objects again and
again as they age, millions of them, and find nothing: about a tenth of a 10 000-request
scheduling-only run here. So the loops that step a scheduler many times pause it; it resumes,
if it was on, when the loop ends, however it ends. Real servers do the same after warm-up:
vLLM freezes its heap (``gc.freeze``), and SGLang offers the same switch.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def cycle_collector_paused() -> Iterator[None]:
    """Run the ``with`` block with the cyclic garbage collector off (as it was after)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
