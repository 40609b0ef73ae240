"""Parameter sweeps behind chapter 10's figures: memory pressure and shared prefixes.

Each function runs a seeded workload under several settings (scheduling only, so it is fast)
and returns one :class:`SweepRow` per setting, for a table or a figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ._validate import MAX_COUNT, non_negative_int, positive_int
from .simulate import ScheduleRun, simulate_schedule
from .workloads import MAX_LENGTH, MAX_VOCAB, RequestSpec, Workload


@dataclass(frozen=True)
class SweepRow:
    """The figures of one run in a sweep."""

    setting: int              # the value swept (pool size, prefix length, ...)
    steps: int
    tokens_per_step: float    # useful tokens (recomputation included) per step
    preemptions: int
    recomputed_tokens: int
    prefix_hit_rate: float    # share of prompt tokens served from the prefix cache
    prefill_tokens: int       # prompt tokens actually computed (recompute included)
    mean_ttft: float          # in steps

    @classmethod
    def of(cls, setting: int, run: ScheduleRun) -> "SweepRow":
        ttft = run.latency_summary().ttft
        prefill = sum(s.num_prefill_tokens for s in run.history)
        return cls(setting, run.num_steps, round(run.tokens_per_step, 2),
                   run.counters.preemptions, run.counters.recomputed_tokens,
                   round(run.counters.prefix_hit_rate, 3), prefill,
                   round(ttft.mean, 2) if ttft.count else 0.0)


def pool_size_sweep(workload: Workload, pool_sizes: Sequence[int], *, max_tokens_per_step: int,
                    prefill_chunk_size: int, block_size: int,
                    watermark_blocks: int = 0) -> list[SweepRow]:
    """Run ``workload`` with each pool size (in blocks): fewer blocks, more preemptions."""
    if not isinstance(workload, Workload):
        raise TypeError(f"workload must be a Workload, got {workload!r}")
    pool_sizes = _settings("pool_sizes", pool_sizes, positive_int)
    return [SweepRow.of(n, simulate_schedule(
                workload, max_tokens_per_step=max_tokens_per_step,
                prefill_chunk_size=prefill_chunk_size, block_size=block_size, num_blocks=n,
                watermark_blocks=watermark_blocks))
            for n in pool_sizes]


def shared_prefix_workload(num_requests: int, prefix_len: int, *, suffix_len: int = 8,
                           max_new_tokens: int = 6, arrival_every: int = 2, seed: int = 0,
                           vocab_size: int = 128) -> Workload:
    """Requests that all start with the same ``prefix_len`` tokens (a system prompt), then a
    private ``suffix_len``-token question each; request ``i`` arrives at ``i * arrival_every``."""
    positive_int("num_requests", num_requests, maximum=MAX_COUNT)
    non_negative_int("prefix_len", prefix_len, maximum=MAX_LENGTH)
    if non_negative_int("suffix_len", suffix_len, maximum=MAX_LENGTH) + prefix_len == 0:
        raise ValueError("prefix_len + suffix_len must be >= 1 (a prompt has a token), got 0 + 0")
    non_negative_int("max_new_tokens", max_new_tokens)
    non_negative_int("arrival_every", arrival_every)
    positive_int("vocab_size", vocab_size, maximum=MAX_VOCAB)
    rng = np.random.default_rng(non_negative_int("seed", seed))
    prefix = tuple(int(t) for t in rng.integers(0, vocab_size, prefix_len))
    specs = tuple(RequestSpec(i, prefix + tuple(int(t) for t in rng.integers(0, vocab_size,
                                                                             suffix_len)),
                              max_new_tokens, i * arrival_every)
                  for i in range(num_requests))
    return Workload(specs)


def prefix_sweep(prefix_lens: Sequence[int], *, num_requests: int, block_size: int,
                 max_tokens_per_step: int, prefill_chunk_size: int,
                 enable_prefix_caching: bool = True, seed: int = 0) -> list[SweepRow]:
    """Shared-prefix workloads of growing prefix length, with or without prefix caching."""
    prefix_lens = _settings("prefix_lens", prefix_lens, non_negative_int)
    positive_int("num_requests", num_requests, maximum=MAX_COUNT)
    return [SweepRow.of(p, simulate_schedule(
                shared_prefix_workload(num_requests, p, seed=seed),
                max_tokens_per_step=max_tokens_per_step, prefill_chunk_size=prefill_chunk_size,
                block_size=block_size, enable_prefix_caching=enable_prefix_caching))
            for p in prefix_lens]


def _settings(name: str, values, check) -> list[int]:
    """The swept values: a sequence, each passing ``check`` (named ``name[i]`` if it fails)."""
    if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)):
        raise TypeError(f"{name} must be a sequence of ints, got {values!r}")
    return [check(f"{name}[{i}]", v) for i, v in enumerate(values)]
