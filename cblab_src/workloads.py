"""Seeded workloads: the same requests can be rebuilt as fresh ``Request`` objects any time.

A :class:`Workload` is an immutable description (prompts, output lengths, arrival steps). Each
call to :meth:`Workload.requests` makes new, unstarted requests, so one workload can be run
under many budgets, chunk sizes or block sizes and the runs compared.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from ._validate import non_negative_int, positive_int
from .core.request import Request
from .model.sampling import GREEDY, SamplingParams


@dataclass(frozen=True)
class RequestSpec:
    """Everything needed to make one request."""

    req_id: Hashable
    prompt: tuple[int, ...]
    max_new_tokens: int
    arrival_step: int = 0
    sampling: SamplingParams = GREEDY


@dataclass(frozen=True)
class Workload:
    """An ordered, immutable set of request specifications."""

    specs: tuple[RequestSpec, ...]

    def requests(self) -> list[Request]:
        """Fresh, unstarted ``Request`` objects for this workload."""
        return [Request(s.req_id, s.prompt, s.max_new_tokens, s.arrival_step, s.sampling)
                for s in self.specs]

    def __len__(self) -> int:
        return len(self.specs)

    @property
    def req_ids(self) -> list[Hashable]:
        return [s.req_id for s in self.specs]

    @property
    def prompt_lens(self) -> list[int]:
        return [len(s.prompt) for s in self.specs]

    @classmethod
    def from_lengths(cls, prompt_lens: Sequence[int], max_new_tokens: Sequence[int] | int,
                     arrival_steps: Sequence[int] | int = 0, *, seed: int = 0,
                     vocab_size: int = 128) -> "Workload":
        """Requests ``0, 1, ...`` with the given prompt lengths (random seeded tokens)."""
        n = len(prompt_lens)
        new = _broadcast("max_new_tokens", max_new_tokens, n)
        arrivals = _broadcast("arrival_steps", arrival_steps, n)
        rng = np.random.default_rng(non_negative_int("seed", seed))
        specs = []
        for i, (p, m, a) in enumerate(zip(prompt_lens, new, arrivals)):
            prompt = tuple(int(t) for t in rng.integers(0, vocab_size, positive_int("prompt_len", p)))
            specs.append(RequestSpec(i, prompt, non_negative_int("max_new_tokens", m),
                                     non_negative_int("arrival_step", a)))
        return cls(tuple(specs))


def random_workload(num_requests: int, *, prompt_len: tuple[int, int] = (4, 24),
                    max_new_tokens: tuple[int, int] = (2, 8), arrival_every: int = 0,
                    seed: int = 0, vocab_size: int = 128) -> Workload:
    """``num_requests`` requests with lengths uniform in the inclusive ranges given.

    Request ``i`` arrives at step ``i * arrival_every`` (all at once when 0).
    ``random_workload(3, seed=1)`` is the same three requests every time.
    """
    n = positive_int("num_requests", num_requests)
    every = non_negative_int("arrival_every", arrival_every)
    rng = np.random.default_rng(non_negative_int("seed", seed))
    lo, hi = _range("prompt_len", prompt_len, minimum=1)
    plens = rng.integers(lo, hi + 1, n)
    lo, hi = _range("max_new_tokens", max_new_tokens, minimum=0)
    news = rng.integers(lo, hi + 1, n)
    return Workload.from_lengths(plens.tolist(), news.tolist(), [i * every for i in range(n)],
                                 seed=int(rng.integers(2**31)), vocab_size=vocab_size)


def _range(name: str, value, *, minimum: int) -> tuple[int, int]:
    if not (isinstance(value, tuple) and len(value) == 2):
        raise TypeError(f"{name} must be a (low, high) tuple, got {value!r}")
    lo, hi = (non_negative_int(name, v) for v in value)
    if lo < minimum or hi < lo:
        raise ValueError(f"{name} must satisfy {minimum} <= low <= high, got {value!r}")
    return lo, hi


def _broadcast(name: str, value, n: int) -> list:
    if isinstance(value, (int, np.integer)):
        return [value] * n
    if len(value) != n:
        raise ValueError(f"{name} must have {n} entries, got {len(value)}")
    return list(value)
