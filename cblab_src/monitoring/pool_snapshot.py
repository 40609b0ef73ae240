"""The paged KV pool at one moment, for figures: who owns each block, which slots hold a token.

Monitoring reads what the engine produces and changes nothing: these functions read a
:class:`~cblab_src.core.kv_cache.PagedKVCache`'s public state — its block tables and lengths,
and its :class:`~cblab_src.core.block_pool.BlockPool`'s reference counts and cached blocks.
:func:`~cblab_src.viz.kv.plot_block_pool` draws a :class:`PoolSnapshot`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.hooks import SchedulerPlugin
from ..core.paged_kv_cache import PagedKVCache


def block_owners(cache: PagedKVCache) -> np.ndarray:
    """``(num_blocks,)`` object array: the first request (in admission order) owning each block,
    ``None`` if none."""
    owners = np.full(cache.num_blocks, None, dtype=object)
    for req_id, table in reversed(list(cache.block_tables.items())):
        owners[table] = req_id
    return owners


def slot_fill(cache: PagedKVCache) -> np.ndarray:
    """``(num_blocks, block_size)`` bool: which slots of the pool hold a live token."""
    fill = np.zeros((cache.num_blocks, cache.block_size), dtype=bool)
    for req_id, table in cache.block_tables.items():
        pos = np.arange(cache.num_computed_tokens(req_id))  # token p: block table[p // bs]
        fill[np.asarray(table, dtype=np.int64)[pos // cache.block_size],
             pos % cache.block_size] = True
    return fill


@dataclass(frozen=True)
class PoolSnapshot:
    """The paged pool at one moment: who owns each block, which slots hold a token, how many
    requests share each block, and which ownerless blocks are kept for prefix reuse."""

    owners: np.ndarray        # (num_blocks,) object: first owning request id, or None
    fill: np.ndarray          # (num_blocks, block_size) bool: slot holds a live token
    block_tables: dict        # req_id -> list of block ids
    ref_counts: np.ndarray    # (num_blocks,) int: live requests owning each block
    cached: np.ndarray        # (num_blocks,) bool: ownerless but holding a reusable prefix

    @classmethod
    def of(cls, cache: PagedKVCache) -> "PoolSnapshot":
        pool = cache.block_pool
        cached = np.zeros(cache.num_blocks, dtype=bool)
        cached[np.asarray(pool.cached_blocks, dtype=np.int64)] = True
        return cls(block_owners(cache), slot_fill(cache),
                   {rid: list(t) for rid, t in cache.block_tables.items()},
                   np.asarray(pool.ref_counts, dtype=np.int64), cached)

    @property
    def block_size(self) -> int:
        return self.fill.shape[1]

    @property
    def used_blocks(self) -> int:
        return int((self.ref_counts > 0).sum())

    @property
    def shared_blocks(self) -> int:
        return int((self.ref_counts > 1).sum())

    @property
    def wasted_slots(self) -> int:
        """Empty slots inside used blocks: internal fragmentation."""
        return self.used_blocks * self.block_size - int(self.fill.sum())


class PoolRecorder(SchedulerPlugin):
    """A scheduler plugin that takes a :class:`PoolSnapshot` after every step."""

    def __init__(self) -> None:
        self.snapshots: list[PoolSnapshot] = []

    def after_step(self, scheduler, stats) -> None:
        self.snapshots.append(PoolSnapshot.of(scheduler.kv_cache))
