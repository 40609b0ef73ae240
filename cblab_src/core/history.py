"""A run's steps, one :class:`StepStats` per step, with each stretch of idle steps stored once.

:meth:`Scheduler.run <cblab_src.core.scheduler.Scheduler.run>` skips the steps in which
nothing can happen (nothing running or waiting, the next request arriving later) in one move,
so a request arriving at step 10**6 costs no million steps. Those steps still count: the
history reads as if they had been run one by one (``history[i].step_id`` is its first step id
plus ``i``; an idle step holds no work), but a stretch of them is one :class:`IdleSteps`
record, whatever its length.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from .kv_cache import KVUsage
from .step_stats import StepStats


@dataclass(frozen=True)
class IdleSteps:
    """``count`` consecutive steps from ``first_step`` in which nothing ran (the KV cache held
    ``kv`` throughout)."""

    first_step: int
    count: int
    kv: KVUsage

    def step(self, i: int) -> StepStats:
        """The ``i``-th of these steps, as the scheduler would have reported it."""
        return StepStats(step_id=self.first_step + i, decode_ids=(), prefill_chunks=(),
                         num_tokens=0, sampled=(), finished_ids=(), num_waiting=0,
                         num_running=0, kv=self.kv)


class History(Sequence):
    """The :class:`StepStats` of consecutive steps, in order (a read-mostly list: index it,
    slice it, iterate it, compare it with a list; ``append`` and ``extend`` add steps)."""

    def __init__(self, steps=()):
        self._chunks: list[list[StepStats] | IdleSteps] = []
        self._starts: list[int] = []        # index of each chunk's first step in the history
        self._len = 0
        self.extend(steps)

    def append(self, stats: StepStats) -> None:
        if not isinstance(stats, StepStats):
            raise TypeError(f"stats must be a StepStats, got {stats!r}")
        if not self._chunks or isinstance(self._chunks[-1], IdleSteps):
            self._start_chunk([])
        self._chunks[-1].append(stats)
        self._len += 1

    def append_idle(self, first_step: int, count: int, kv: KVUsage) -> None:
        """``count`` idle steps from ``first_step``, stored as one record."""
        self._start_chunk(IdleSteps(first_step, count, kv))
        self._len += count

    def extend(self, steps) -> None:
        for stats in steps:
            self.append(stats)

    def _start_chunk(self, chunk) -> None:
        self._chunks.append(chunk)
        self._starts.append(self._len)

    @property
    def num_idle_records(self) -> int:
        """How many stretches of idle steps are stored as one record each."""
        return sum(isinstance(c, IdleSteps) for c in self._chunks)

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._len))]
        i = index + self._len if index < 0 else index
        if not 0 <= i < self._len:
            raise IndexError(f"history index {index} out of range for {self._len} steps")
        k = bisect_right(self._starts, i) - 1
        chunk, offset = self._chunks[k], i - self._starts[k]
        return chunk.step(offset) if isinstance(chunk, IdleSteps) else chunk[offset]

    def __iter__(self) -> Iterator[StepStats]:
        for chunk in self._chunks:
            if isinstance(chunk, IdleSteps):
                yield from (chunk.step(i) for i in range(chunk.count))
            else:
                yield from chunk

    def __eq__(self, other) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    def __add__(self, other) -> list[StepStats]:
        return list(self) + list(other)

    def __radd__(self, other) -> list[StepStats]:
        return list(other) + list(self)

    def __repr__(self) -> str:
        return repr(list(self))          # it reads as the list of steps it stands for
