"""The paged layout: one shared pool of KV blocks per layer and a block table per request.

The bookkeeping of blocks (free list, reference counts, prefix table, LRU) is the
:class:`~cblab_src.core.block_pool.BlockPool`'s; this file maps tokens to slots and stores
their K/V. See :mod:`cblab_src.core.kv_cache` for the operations every layout offers.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

import numpy as np

from .._math import ceil_div
from .._validate import positive_int
from ..attention.paged_attention import gather_kv, slot_indices
from .block_pool import BlockPool
from .prefix_match import NO_MATCH, PrefixMatch, as_match
from .kv_cache import KVCache, KVUsage


class PagedKVCache(KVCache):
    """One shared pool per layer of ``num_blocks x block_size`` slots and a block table per request.

    A request's tokens live in the blocks its table lists; block ``table[p // block_size]`` holds
    token ``p``. Blocks are allocated when a token needs one and return to the pool the moment
    the request finishes (or is preempted), so the only waste is the unfilled tail of each
    request's last block. ``num_blocks=None`` makes the pool grow to fit the workload. Which
    block is free, used or cached is the :class:`~cblab_src.core.block_pool.BlockPool`'s
    business (``block_pool``); this class keeps the block tables and the K/V stored in them.

    With ``enable_prefix_caching`` every full block is remembered by a chained hash of its
    prefix; a new request whose prompt starts with cached blocks shares them (reference counts)
    instead of computing them again. ``keep_duplicate_blocks`` keeps every block holding a
    cached prefix, as vLLM does, not only the first (see :mod:`~cblab_src.core.block_pool`).

    The K/V storage, with ``n_layers``, is allocated for the whole pool up front, as a server
    reserves its GPU memory; a pool whose storage would exceed ``MAX_STORAGE_BYTES`` is refused.
    """

    layout = "paged"
    MAX_STORAGE_BYTES = 2**32      # 4 GiB: far above any chapter, below a mistyped num_blocks

    def __init__(self, block_size: int = 16, num_blocks: int | None = None, n_layers=None,
                 n_heads=None, head_dim=None, dtype=np.float64, enable_prefix_caching: bool = False,
                 keep_duplicate_blocks: bool = False):
        super().__init__(n_layers, n_heads, head_dim, dtype)
        self.block_size = positive_int("block_size", block_size)
        if not isinstance(enable_prefix_caching, bool):
            raise TypeError(f"enable_prefix_caching must be a bool, got {enable_prefix_caching!r}")
        self.enable_prefix_caching = enable_prefix_caching
        if not isinstance(keep_duplicate_blocks, bool):
            raise TypeError(f"keep_duplicate_blocks must be a bool, got {keep_duplicate_blocks!r}")
        self.block_pool = BlockPool(num_blocks, keep_duplicates=keep_duplicate_blocks)
        self.block_tables: dict[Hashable, list[int]] = {}
        # Per request: (its full blocks already in the prefix table, the last one's name), or
        # None once a hash collision ended its chain.
        self._chains: dict[Hashable, tuple[int, int | None] | None] = {}
        self._num_table_blocks = 0                       # entries over all block tables
        self.k_pool: list[np.ndarray] = []
        self.v_pool: list[np.ndarray] = []
        if self.has_storage:
            shape = (self.num_blocks, self.block_size, self.n_heads, self.head_dim)
            nbytes = 2 * self.n_layers * math.prod(shape) * self.dtype.itemsize
            if nbytes > self.MAX_STORAGE_BYTES:
                raise ValueError(f"num_blocks={num_blocks} needs {nbytes} bytes of K/V storage, "
                                 f"more than {self.MAX_STORAGE_BYTES}: use fewer blocks, or "
                                 f"n_layers=None for accounting only")
            self.k_pool = [np.zeros(shape, self.dtype) for _ in range(self.n_layers)]
            self.v_pool = [np.zeros(shape, self.dtype) for _ in range(self.n_layers)]

    @property
    def num_blocks(self) -> int:
        return self.block_pool.num_blocks

    @property
    def is_bounded(self) -> bool:
        return self.block_pool.bounded

    @property
    def num_available_blocks(self) -> int:
        """Blocks an allocation can take now: free ones, then cached ones by eviction."""
        return self.block_pool.num_available

    @property
    def allocator(self) -> BlockPool:
        """Old name of :attr:`block_pool`, for callers not yet moved (tests/conftest.py...)."""
        return self.block_pool

    @property
    def caches_prefixes(self) -> bool:
        return self.enable_prefix_caching

    def blocks_for(self, num_tokens: int) -> int:
        """Blocks needed to hold ``num_tokens`` tokens: ``ceil(num_tokens / block_size)``."""
        return ceil_div(num_tokens, self.block_size)

    # ------------------------------------------------------------------ admission, prefix caching
    def match_prefix(self, tokens: Sequence[int]) -> PrefixMatch:
        if not self.enable_prefix_caching:
            return NO_MATCH
        # Full blocks only, and never the last token: its logits give the next token.
        bs = self.block_size
        return self.block_pool.match(tuple(tokens[i * bs:(i + 1) * bs])
                                     for i in range((len(tokens) - 1) // bs))

    def can_admit(self, match: PrefixMatch, num_tokens: int, keep_free: int = 0) -> bool:
        match, pool = as_match(match), self.block_pool
        # Retaining a cached (ownerless) hit takes it out of the available pool, too.
        retained = pool.num_cached_of(match.blocks)
        return pool.can_allocate(retained + self.blocks_for(num_tokens) - len(match.blocks)
                                 + keep_free)

    def admit(self, req_id, match=None):
        super().admit(req_id, match)
        match = NO_MATCH if match is None else match
        for block, block_hash in zip(match.blocks, match.hashes):
            assert self.block_pool.hash_of(block) == block_hash, \
                "stale PrefixMatch: admit right after match_prefix"
            self.block_pool.retain(block)
        self._save_item(self.block_tables, req_id)
        self.block_tables[req_id] = list(match.blocks)
        self._num_table_blocks += len(match.blocks)
        last = match.hashes[-1] if match.hashes else None
        self._save_item(self._chains, req_id)
        self._chains[req_id] = (len(match.blocks), last)
        self.block_pool.pin(last)                        # its next full block chains from it
        self._grow(req_id, match.num_tokens)
        return match.num_tokens

    def cache_full_blocks(self, req_id, tokens):
        chain = self._chains[req_id] if self.enable_prefix_caching else None
        if chain is None:
            return
        (done, parent), bs, pool = chain, self.block_size, self.block_pool
        full = self._lengths[req_id] // bs
        for i in range(done, full):
            block_hash = pool.register(self.block_tables[req_id][i], parent,
                                       tuple(tokens[i * bs:(i + 1) * bs]))
            pool.pin(block_hash)
            pool.unpin(parent)
            if block_hash is None:          # a collision: no block after it can be cached
                self._save_item(self._chains, req_id)
                self._chains[req_id] = None
                return
            parent = block_hash
        self._save_item(self._chains, req_id)
        self._chains[req_id] = (full, parent)

    # ------------------------------------------------------------------ growth and storage
    def blocks_to_extend(self, req_id: Hashable, n: int) -> int:
        """New blocks the request needs to grow by ``n`` tokens (<= 0: its last block has room)."""
        if req_id not in self._lengths:
            raise self._unknown(req_id)
        return ceil_div(self._lengths[req_id] + n, self.block_size) - len(self.block_tables[req_id])

    def can_extend(self, req_id, n):
        need = self.blocks_to_extend(req_id, n)
        return need <= 0 or self.block_pool.can_allocate(need)

    def try_extend(self, req_id, n):
        # (performance: this runs for every token of every step, so the common case — room in
        # the last block — costs one comparison; the try is free until an unknown id raises)
        try:
            length = self._lengths[req_id] + n
        except KeyError:
            raise self._unknown(req_id) from None
        if n < 0:
            raise ValueError(f"n must be >= 0 (a KV cache only grows), got {n!r}")
        table = self.block_tables[req_id]
        if length > len(table) * self.block_size:
            need = ceil_div(length, self.block_size) - len(table)
            if not self.block_pool.can_allocate(need):
                return False
            table.extend(self.block_pool.allocate() for _ in range(need))
            self._num_table_blocks += need
            self._fit_storage()
        self._lengths[req_id] = length
        self._num_tokens += n
        return True

    def try_extend_decodes(self, req_ids):
        # (performance: a step's decodes in one pass. A table holds exactly the blocks its
        # length needs, so one more token needs a new block iff the last one is full.)
        lengths, bs = self._lengths, self.block_size
        try:
            old = [lengths[req_id] for req_id in req_ids]
        except KeyError as e:
            raise self._unknown(e.args[0]) from None
        full = [req_id for req_id, length in zip(req_ids, old) if length % bs == 0]
        if not self.block_pool.can_allocate(len(full)):
            return False
        for req_id in full:
            self.block_tables[req_id].append(self.block_pool.allocate())
        self._num_table_blocks += len(full)
        self._fit_storage()
        lengths.update(zip(req_ids, [length + 1 for length in old]))
        self._num_tokens += len(old)
        return True

    def extend(self, req_id, n):
        if not self.try_extend(req_id, n):
            raise ValueError(f"no room to extend req_id {req_id!r} by n={n}: it needs "
                             f"{self.blocks_to_extend(req_id, n)} more blocks, "
                             f"{self.num_available_blocks} are available")

    def write(self, layer, req_id, start, k, v):
        self._require_storage(layer)
        assert start + k.shape[0] <= self._lengths[req_id]
        blocks, offsets = slot_indices(self.block_tables[req_id], self.block_size,
                                       start, start + k.shape[0])
        self.write_slots(layer, blocks * self.block_size + offsets, k, v)

    def write_slots(self, layer: int, slots: np.ndarray, k: np.ndarray, v: np.ndarray) -> None:
        """Store ``k, v (N, H, D)`` of a whole step at flat ``slots (N,)`` (see
        :func:`~cblab_src.attention.paged_attention.slot_mapping`): one scatter per layer."""
        self._require_storage(layer)
        for pool, new in ((self.k_pool[layer], k), (self.v_pool[layer], v)):
            flat = pool.reshape(-1, *new.shape[1:])          # a view: writes land in the pool
            if self.has_checkpoint:                          # what the slots held, for a rollback
                self._log(flat.__setitem__, slots, flat[slots])
            flat[slots] = new

    def read(self, layer, req_id):
        self._require_storage(layer)
        table, length = self.block_tables[req_id], self._lengths[req_id]
        return gather_kv(self.k_pool[layer], table, length), gather_kv(self.v_pool[layer], table, length)

    def free(self, req_id):
        # Release the tail first, so the LRU evicts a prefix's last blocks before its first.
        if req_id not in self.block_tables:
            raise self._unknown(req_id)
        self._save_item(self.block_tables, req_id)
        table = self.block_tables.pop(req_id)
        for b in reversed(table):
            self.block_pool.release(b)
        self._num_table_blocks -= len(table)
        self._save_item(self._chains, req_id)
        chain = self._chains.pop(req_id)
        if chain is not None:
            self.block_pool.unpin(chain[1])
        self._untrack(req_id)

    # ------------------------------------------------------------------ rollback (see .undo)
    def checkpoint(self) -> None:
        super().checkpoint()
        self.block_pool.checkpoint()

    def rollback(self) -> None:
        super().rollback()
        self.block_pool.rollback()

    def drop_checkpoint(self) -> None:
        super().drop_checkpoint()
        self.block_pool.drop_checkpoint()

    def _save_state(self):
        return super()._save_state(), self._num_table_blocks, self.k_pool, self.v_pool

    def _restore_state(self, saved) -> None:
        base, self._num_table_blocks, self.k_pool, self.v_pool = saved
        super()._restore_state(base)
        for req_id, length in self._lengths.items():   # tables only grew in place: trim them
            del self.block_tables[req_id][self.blocks_for(length):]

    def usage(self) -> KVUsage:
        used_slots = self._num_table_blocks * self.block_size
        pool = self.block_pool
        return KVUsage(tokens=len(self), used_blocks=pool.num_used, free_blocks=pool.num_free,
                       cached_blocks=pool.num_cached, total_blocks=self.num_blocks,
                       wasted_slots=used_slots - len(self), shared_blocks=pool.num_shared)

    def _fit_storage(self) -> None:
        # An unbounded pool may have doubled: the storage follows it.
        if not self.has_storage or self.k_pool[0].shape[0] == self.num_blocks:
            return
        extra = self.num_blocks - self.k_pool[0].shape[0]
        pad = np.zeros((extra, *self.k_pool[0].shape[1:]), self.dtype)
        self.k_pool = [np.concatenate([p, pad]) for p in self.k_pool]
        self.v_pool = [np.concatenate([p, pad]) for p in self.v_pool]
