"""Where each request's keys and values live between steps: dense or paged, both append-only.

Both layouts offer the same operations, in the order a step uses them:

1. ``can_admit(num_tokens)`` / ``admit(req_id, num_tokens)`` — before a request's first prefill
   chunk, promise it room for every token it can ever hold (prompt + max_new_tokens - 1).
2. ``extend(req_id, n)`` — the step adds ``n`` tokens to the request (paged: allocates blocks
   on demand, out of the request's reservation).
3. ``write(layer, req_id, start, k, v)`` then ``read(layer, req_id)`` — per layer, store the
   new tokens' K/V and read back the whole context for attention.
4. ``free(req_id)`` — the request finished; its memory goes back at once.

Either cache can be built without storage (``n_layers=None``): it then keeps only the
accounting, which is all a scheduling-only simulation needs.
"""

from __future__ import annotations

import abc
import heapq
from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np

from .._validate import optional_positive_int, positive_int
from ..attention.paged_attention import gather_kv, slot_indices


@dataclass(frozen=True)
class KVUsage:
    """A snapshot of KV memory. Dense caches have no blocks: their block counts are 0."""

    tokens: int              # tokens whose K/V are stored
    used_blocks: int         # blocks holding at least one token
    free_blocks: int         # blocks on the free list (reserved ones included)
    reserved_blocks: int     # free blocks promised to admitted requests, not yet allocated
    total_blocks: int
    wasted_slots: int        # empty slots inside used blocks (internal fragmentation)

    @property
    def available_blocks(self) -> int:
        """Free blocks that nobody has been promised."""
        return self.free_blocks - self.reserved_blocks


class KVCache(abc.ABC):
    """Common bookkeeping of both layouts: per-request lengths and optional K/V storage."""

    layout: str

    def __init__(self, n_layers=None, n_heads=None, head_dim=None, dtype=np.float64):
        shape = (n_layers, n_heads, head_dim)
        if any(s is None for s in shape) and any(s is not None for s in shape):
            raise ValueError(f"give all of n_layers, n_heads, head_dim or none, got {shape}")
        self.n_layers = optional_positive_int("n_layers", n_layers)
        self.n_heads = optional_positive_int("n_heads", n_heads)
        self.head_dim = optional_positive_int("head_dim", head_dim)
        self.dtype = np.dtype(dtype)
        self._lengths: dict[Hashable, int] = {}

    @property
    def has_storage(self) -> bool:
        return self.n_layers is not None

    def __contains__(self, req_id: Hashable) -> bool:
        return req_id in self._lengths

    def __len__(self) -> int:
        """Tokens stored, over all requests."""
        return sum(self._lengths.values())

    def seq_len(self, req_id: Hashable) -> int:
        """Tokens stored for one request."""
        return self._lengths[req_id]

    @property
    def req_ids(self) -> list[Hashable]:
        return list(self._lengths)

    @abc.abstractmethod
    def can_admit(self, num_tokens: int) -> bool:
        """Whether a request that will hold up to ``num_tokens`` tokens can be admitted now."""

    @abc.abstractmethod
    def admit(self, req_id: Hashable, num_tokens: int) -> None:
        """Start a request that will hold up to ``num_tokens`` tokens."""

    @abc.abstractmethod
    def extend(self, req_id: Hashable, n: int) -> None:
        """Grow the request by ``n`` token slots (written afterwards, layer by layer)."""

    @abc.abstractmethod
    def write(self, layer: int, req_id: Hashable, start: int, k: np.ndarray, v: np.ndarray) -> None:
        """Store ``k, v (n, H, D)`` for positions ``start .. start+n-1`` of one layer."""

    @abc.abstractmethod
    def read(self, layer: int, req_id: Hashable) -> tuple[np.ndarray, np.ndarray]:
        """The request's whole context for one layer: ``k, v`` each ``(seq_len, H, D)``."""

    @abc.abstractmethod
    def free(self, req_id: Hashable) -> None:
        """Forget the request and return its memory."""

    @abc.abstractmethod
    def usage(self) -> KVUsage:
        """Counters of the memory in use now."""

    def nbytes(self) -> int:
        """Bytes of K and V stored for the tokens in the cache (both layers of K and V)."""
        if not self.has_storage:
            return 0
        per_token = 2 * self.n_layers * self.n_heads * self.head_dim * self.dtype.itemsize
        return len(self) * per_token

    def _check_new(self, req_id: Hashable) -> None:
        if req_id in self._lengths:
            raise ValueError(f"req_id {req_id!r} is already in the KV cache")

    def _require_storage(self) -> None:
        if not self.has_storage:
            raise RuntimeError("this KV cache keeps accounting only (built with n_layers=None)")


class DenseKVCache(KVCache):
    """One growing ``(seq_len, H, D)`` array per request and layer, for K and for V.

    Simple and exact-sized, but each request's memory is its own: in a real server it must be
    reserved contiguously for the longest sequence it might reach.
    """

    layout = "dense"

    def __init__(self, n_layers=None, n_heads=None, head_dim=None, dtype=np.float64):
        super().__init__(n_layers, n_heads, head_dim, dtype)
        self._k: dict[Hashable, list[np.ndarray]] = {}
        self._v: dict[Hashable, list[np.ndarray]] = {}

    def can_admit(self, num_tokens: int) -> bool:
        return True

    def admit(self, req_id: Hashable, num_tokens: int) -> None:
        self._check_new(req_id)
        self._lengths[req_id] = 0
        if self.has_storage:
            empty = np.zeros((0, self.n_heads, self.head_dim), self.dtype)
            self._k[req_id] = [empty] * self.n_layers
            self._v[req_id] = [empty] * self.n_layers

    def extend(self, req_id: Hashable, n: int) -> None:
        self._lengths[req_id] += n

    def write(self, layer, req_id, start, k, v):
        self._require_storage()
        assert start == self._k[req_id][layer].shape[0], "dense cache is append-only"
        assert start + k.shape[0] <= self._lengths[req_id]
        self._k[req_id][layer] = np.concatenate([self._k[req_id][layer], k])
        self._v[req_id][layer] = np.concatenate([self._v[req_id][layer], v])

    def read(self, layer, req_id):
        self._require_storage()
        return self._k[req_id][layer], self._v[req_id][layer]

    def free(self, req_id):
        del self._lengths[req_id]
        self._k.pop(req_id, None)
        self._v.pop(req_id, None)

    def usage(self) -> KVUsage:
        return KVUsage(tokens=len(self), used_blocks=0, free_blocks=0, reserved_blocks=0,
                       total_blocks=0, wasted_slots=0)


class BlockAllocator:
    """A free list of block ids ``0 .. num_blocks-1`` with reservations.

    Blocks are handed out lowest id first, so figures of the pool are easy to read. With
    ``num_blocks=None`` the pool is unbounded: it doubles whenever it runs out.
    """

    INITIAL_BLOCKS = 8  # starting size of an unbounded pool

    def __init__(self, num_blocks: int | None):
        self.bounded = num_blocks is not None
        self.num_blocks = positive_int("num_blocks", num_blocks) if self.bounded else self.INITIAL_BLOCKS
        self._free = list(range(self.num_blocks))   # a heap: lowest id first
        self.num_reserved = 0

    @property
    def num_free(self) -> int:
        return len(self._free)

    @property
    def num_used(self) -> int:
        return self.num_blocks - self.num_free

    def can_reserve(self, n: int) -> bool:
        return not self.bounded or self.num_free - self.num_reserved >= n

    def reserve(self, n: int) -> None:
        assert self.can_reserve(n), (n, self.num_free, self.num_reserved)
        self.num_reserved += n

    def release(self, n: int) -> None:
        """Give back ``n`` reserved blocks that will not be needed."""
        assert 0 <= n <= self.num_reserved
        self.num_reserved -= n

    def allocate(self, *, reserved: bool) -> int:
        """Pop the lowest free block id (drawing on a reservation if ``reserved``)."""
        if not self._free:
            assert not self.bounded, "allocation from an empty bounded pool"
            self._grow()
        if reserved:
            self.release(1)
        return heapq.heappop(self._free)

    def free(self, block_ids) -> None:
        for b in block_ids:
            heapq.heappush(self._free, b)

    def _grow(self) -> None:
        old = self.num_blocks
        self.num_blocks *= 2
        for b in range(old, self.num_blocks):
            heapq.heappush(self._free, b)


class PagedKVCache(KVCache):
    """One shared pool per layer of ``num_blocks x block_size`` slots and a block table per request.

    A request's tokens live in the blocks its table lists; block ``table[p // block_size]`` holds
    token ``p``. Blocks are allocated only when a token needs one and return to the free list
    the moment the request finishes, so the only waste is the unfilled tail of each request's
    last block.

    Admission reserves the blocks a request can ever need, so a running request never finds
    the pool empty. ``num_blocks=None`` makes the pool grow to fit the workload.
    """

    layout = "paged"

    def __init__(self, block_size: int = 16, num_blocks: int | None = None, n_layers=None,
                 n_heads=None, head_dim=None, dtype=np.float64):
        super().__init__(n_layers, n_heads, head_dim, dtype)
        self.block_size = positive_int("block_size", block_size)
        self.allocator = BlockAllocator(num_blocks)
        self.block_tables: dict[Hashable, list[int]] = {}
        self._reserved: dict[Hashable, int] = {}    # blocks still promised to each request
        self.k_pool: list[np.ndarray] = []
        self.v_pool: list[np.ndarray] = []
        if self.has_storage:
            shape = (self.allocator.num_blocks, self.block_size, self.n_heads, self.head_dim)
            self.k_pool = [np.zeros(shape, self.dtype) for _ in range(self.n_layers)]
            self.v_pool = [np.zeros(shape, self.dtype) for _ in range(self.n_layers)]

    @property
    def num_blocks(self) -> int:
        return self.allocator.num_blocks

    def blocks_for(self, num_tokens: int) -> int:
        """Blocks needed to hold ``num_tokens`` tokens: ``ceil(num_tokens / block_size)``."""
        return -(-num_tokens // self.block_size)

    def can_admit(self, num_tokens: int) -> bool:
        return self.allocator.can_reserve(self.blocks_for(num_tokens))

    def admit(self, req_id, num_tokens):
        self._check_new(req_id)
        n = self.blocks_for(num_tokens)
        self.allocator.reserve(n)
        self._reserved[req_id] = n
        self._lengths[req_id] = 0
        self.block_tables[req_id] = []

    def extend(self, req_id, n):
        new_len = self._lengths[req_id] + n
        table = self.block_tables[req_id]
        while len(table) < self.blocks_for(new_len):
            reserved = self._reserved[req_id] > 0
            table.append(self.allocator.allocate(reserved=reserved))
            self._reserved[req_id] -= reserved
        self._lengths[req_id] = new_len
        self._grow_pools()

    def write(self, layer, req_id, start, k, v):
        self._require_storage()
        assert start + k.shape[0] <= self._lengths[req_id]
        blocks, offsets = slot_indices(self.block_tables[req_id], self.block_size,
                                       start, start + k.shape[0])
        self.k_pool[layer][blocks, offsets] = k
        self.v_pool[layer][blocks, offsets] = v

    def read(self, layer, req_id):
        self._require_storage()
        table, length = self.block_tables[req_id], self._lengths[req_id]
        return gather_kv(self.k_pool[layer], table, length), gather_kv(self.v_pool[layer], table, length)

    def free(self, req_id):
        self.allocator.free(self.block_tables.pop(req_id))
        self.allocator.release(self._reserved.pop(req_id))
        del self._lengths[req_id]

    def usage(self) -> KVUsage:
        used_slots = sum(len(t) for t in self.block_tables.values()) * self.block_size
        return KVUsage(tokens=len(self), used_blocks=self.allocator.num_used,
                       free_blocks=self.allocator.num_free,
                       reserved_blocks=self.allocator.num_reserved,
                       total_blocks=self.num_blocks, wasted_slots=used_slots - len(self))

    def block_owners(self) -> np.ndarray:
        """``(num_blocks,)`` object array: the request owning each block, ``None`` if free."""
        owners = np.full(self.num_blocks, None, dtype=object)
        for req_id, table in self.block_tables.items():
            owners[table] = req_id
        return owners

    def slot_fill(self) -> np.ndarray:
        """``(num_blocks, block_size)`` bool: which slots of the pool hold a token."""
        fill = np.zeros((self.num_blocks, self.block_size), dtype=bool)
        for req_id, table in self.block_tables.items():
            flat = np.arange(self._lengths[req_id])
            fill[np.asarray(table)[flat // self.block_size], flat % self.block_size] = True
        return fill

    def _grow_pools(self) -> None:
        # An unbounded allocator may have doubled: widen the storage to match.
        if not self.has_storage or self.k_pool[0].shape[0] == self.num_blocks:
            return
        extra = self.num_blocks - self.k_pool[0].shape[0]
        pad = np.zeros((extra, *self.k_pool[0].shape[1:]), self.dtype)
        self.k_pool = [np.concatenate([p, pad]) for p in self.k_pool]
        self.v_pool = [np.concatenate([p, pad]) for p in self.v_pool]


KV_LAYOUTS = {"dense": DenseKVCache, "paged": PagedKVCache}
