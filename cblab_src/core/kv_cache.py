"""Where each request's keys and values live between steps: dense or paged, both append-only.

Both layouts offer the same operations, in the order a step uses them:

1. ``admit(req_id, tokens)`` — start a request (a paged cache with prefix caching returns how
   many of ``tokens`` it already holds, so their prefill can be skipped).
2. ``can_extend(req_id, n)`` / ``extend(req_id, n)`` — the step adds ``n`` tokens to the request
   (paged: allocates blocks on demand; when none are free the scheduler must preempt someone).
3. ``write(layer, req_id, start, k, v)`` then ``read(layer, req_id)`` — per layer, store the
   new tokens' K/V and read back the whole context for attention.
4. ``cache_full_blocks(req_id, tokens)`` — after the step, full blocks become reusable prefixes
   (prefix caching only).
5. ``free(req_id)`` — the request finished or was preempted; its memory goes back at once.

Either cache can be built without storage (``n_layers=None``): it then keeps only the
accounting, which is all a scheduling-only simulation needs.
"""

from __future__ import annotations

import abc
import heapq
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from .._validate import optional_positive_int, positive_int
from ..attention.paged_attention import gather_kv, slot_indices


@dataclass(frozen=True)
class KVUsage:
    """A snapshot of KV memory. Dense caches have no blocks: their block counts are 0.

    For a paged pool ``used_blocks + free_blocks + cached_blocks == total_blocks``.
    """

    tokens: int              # tokens whose K/V are stored, summed over requests
    used_blocks: int         # blocks owned by at least one live request
    free_blocks: int         # blocks holding nothing
    cached_blocks: int       # ownerless blocks kept for prefix reuse (evicted when needed)
    total_blocks: int
    wasted_slots: int        # empty slots inside used blocks (internal fragmentation)
    shared_blocks: int = 0   # used blocks owned by more than one request (prefix sharing)

    @property
    def available_blocks(self) -> int:
        """Blocks an allocation may take: free ones, then cached ones by eviction."""
        return self.free_blocks + self.cached_blocks


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
        self._num_tokens = 0                  # sum of _lengths, kept as it changes

    @property
    def has_storage(self) -> bool:
        return self.n_layers is not None

    @property
    def caches_prefixes(self) -> bool:
        """Whether full blocks are kept for prefix reuse (only a paged cache can)."""
        return False

    def __contains__(self, req_id: Hashable) -> bool:
        return req_id in self._lengths

    def __len__(self) -> int:
        """Tokens stored, over all requests."""
        return self._num_tokens

    def seq_len(self, req_id: Hashable) -> int:
        """Tokens stored for one request."""
        return self._lengths[req_id]

    @property
    def req_ids(self) -> list[Hashable]:
        return list(self._lengths)

    def cached_prefix_len(self, tokens: Sequence[int]) -> int:
        """How many leading ``tokens`` the cache already holds (prefix caching; else 0)."""
        return 0

    def can_admit(self, tokens: Sequence[int], num_tokens: int, keep_free: int = 0) -> bool:
        """Whether a request with these ``tokens`` can start holding ``num_tokens`` tokens
        (cached prefix included) while ``keep_free`` blocks stay available."""
        return True

    def admit(self, req_id: Hashable, tokens: Sequence[int] = ()) -> int:
        """Start tracking a request; return how many leading ``tokens`` are already cached."""
        self._check_new(req_id)
        self._lengths[req_id] = 0
        return 0

    def _grow(self, req_id: Hashable, n: int) -> None:
        """Record ``n`` more tokens of a request (its slots exist)."""
        self._lengths[req_id] += n
        self._num_tokens += n

    def _untrack(self, req_id: Hashable) -> int:
        """Stop tracking a request; return how many tokens it held."""
        length = self._lengths.pop(req_id)
        self._num_tokens -= length
        return length

    def can_extend(self, req_id: Hashable, n: int) -> bool:
        """Whether ``n`` more tokens of the request fit now (always, for a dense cache)."""
        return True

    @abc.abstractmethod
    def extend(self, req_id: Hashable, n: int) -> None:
        """Grow the request by ``n`` token slots (written afterwards, layer by layer)."""

    def cache_full_blocks(self, req_id: Hashable, tokens: Sequence[int]) -> None:
        """Offer the request's full blocks for prefix reuse (a no-op without prefix caching)."""

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

    def admit(self, req_id: Hashable, tokens: Sequence[int] = ()) -> int:
        super().admit(req_id, tokens)
        if self.has_storage:
            empty = np.zeros((0, self.n_heads, self.head_dim), self.dtype)
            self._k[req_id] = [empty] * self.n_layers
            self._v[req_id] = [empty] * self.n_layers
        return 0

    def extend(self, req_id: Hashable, n: int) -> None:
        self._grow(req_id, n)

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
        self._untrack(req_id)
        self._k.pop(req_id, None)
        self._v.pop(req_id, None)

    def usage(self) -> KVUsage:
        return KVUsage(tokens=len(self), used_blocks=0, free_blocks=0, cached_blocks=0,
                       total_blocks=0, wasted_slots=0)


def hash_block(parent_hash: int | None, tokens: tuple[int, ...]) -> int:
    """Chained identity of a full block: its tokens and, through ``parent_hash``, every token
    before it. Two blocks with equal hashes *probably* hold the same prefix; a hit is confirmed
    by comparing the prefix itself, so a collision costs a miss, never a wrong reuse."""
    return hash((parent_hash, tokens))


class BlockAllocator:
    """Block ids ``0 .. num_blocks-1`` with reference counts and a table of cached prefixes.

    A block is in one of three states:

    * **free** — holds nothing; on the free list (lowest id handed out first, so figures of the
      pool are easy to read);
    * **used** — reference count >= 1: owned by that many live requests (more than one only when
      prefix caching shares it);
    * **cached** — reference count 0 but it holds a full block of tokens a later request may
      reuse; kept in least-recently-used order and evicted only when an allocation finds no
      free block.

    With ``num_blocks=None`` the pool is unbounded: it doubles whenever it runs out.
    """

    INITIAL_BLOCKS = 8  # starting size of an unbounded pool

    def __init__(self, num_blocks: int | None):
        self.bounded = num_blocks is not None
        self.num_blocks = positive_int("num_blocks", num_blocks) if self.bounded else self.INITIAL_BLOCKS
        self._free = list(range(self.num_blocks))        # a heap: lowest id first
        self.ref_counts = [0] * self.num_blocks
        self._lru: OrderedDict[int, None] = OrderedDict()   # cached blocks, oldest use first
        self._by_hash: dict[int, int] = {}                  # block hash -> block id
        self._content: dict[int, tuple[int, tuple]] = {}    # block id -> (hash, full prefix)
        self.num_evictions = 0
        self.num_shared = 0                                 # blocks with reference count > 1

    @property
    def num_free(self) -> int:
        return len(self._free)

    @property
    def num_cached(self) -> int:
        return len(self._lru)

    @property
    def num_used(self) -> int:
        return self.num_blocks - self.num_free - self.num_cached

    @property
    def num_available(self) -> int:
        """Blocks an allocation can take now (free, then cached by eviction)."""
        return self.num_free + self.num_cached

    def allocate(self) -> int:
        """Hand out a block with reference count 1: a free one, else evict the LRU cached one."""
        if not self._free and self._lru:
            block, _ = self._lru.popitem(last=False)
            self._forget(block)
            self.num_evictions += 1
        else:
            if not self._free:
                assert not self.bounded, "allocation from an exhausted bounded pool"
                self._grow()
            block = heapq.heappop(self._free)
        self.ref_counts[block] = 1
        return block

    def retain(self, block: int) -> None:
        """One more owner for a block found in the prefix cache."""
        if self.ref_counts[block] == 0:
            del self._lru[block]
        self.ref_counts[block] += 1
        self.num_shared += self.ref_counts[block] == 2

    def release(self, block: int) -> None:
        """One owner fewer; an ownerless block is kept as cached if it holds a prefix."""
        assert self.ref_counts[block] > 0, f"block {block} released more often than owned"
        self.ref_counts[block] -= 1
        self.num_shared -= self.ref_counts[block] == 1
        if self.ref_counts[block] == 0:
            if block in self._content:
                self._lru[block] = None                 # most recently used goes last
            else:
                heapq.heappush(self._free, block)

    def lookup(self, block_hash: int, prefix: tuple) -> int | None:
        """The cached block completing exactly ``prefix``, or ``None``."""
        block = self._by_hash.get(block_hash)
        if block is None or self._content[block][1] != prefix:
            return None                                 # a miss, or a hash collision
        return block

    def register(self, block: int, block_hash: int, prefix: tuple) -> None:
        """Remember that ``block`` completes ``prefix`` (unless that hash is already taken)."""
        if block_hash not in self._by_hash and block not in self._content:
            self._by_hash[block_hash] = block
            self._content[block] = (block_hash, prefix)

    def is_cached_content(self, block: int) -> bool:
        return block in self._content

    def _forget(self, block: int) -> None:
        block_hash, _ = self._content.pop(block)
        del self._by_hash[block_hash]

    def _grow(self) -> None:
        old = self.num_blocks
        self.num_blocks *= 2
        self.ref_counts.extend([0] * (self.num_blocks - old))
        for b in range(old, self.num_blocks):
            heapq.heappush(self._free, b)


class PagedKVCache(KVCache):
    """One shared pool per layer of ``num_blocks x block_size`` slots and a block table per request.

    A request's tokens live in the blocks its table lists; block ``table[p // block_size]`` holds
    token ``p``. Blocks are allocated when a token needs one and return to the pool the moment
    the request finishes (or is preempted), so the only waste is the unfilled tail of each
    request's last block. ``num_blocks=None`` makes the pool grow to fit the workload.

    With ``enable_prefix_caching`` every full block is remembered by a chained hash of its
    prefix; a new request whose prompt starts with cached blocks shares them (reference counts)
    instead of computing them again.
    """

    layout = "paged"

    def __init__(self, block_size: int = 16, num_blocks: int | None = None, n_layers=None,
                 n_heads=None, head_dim=None, dtype=np.float64, enable_prefix_caching: bool = False):
        super().__init__(n_layers, n_heads, head_dim, dtype)
        self.block_size = positive_int("block_size", block_size)
        if not isinstance(enable_prefix_caching, bool):
            raise TypeError(f"enable_prefix_caching must be a bool, got {enable_prefix_caching!r}")
        self.enable_prefix_caching = enable_prefix_caching
        self.allocator = BlockAllocator(num_blocks)
        self.block_tables: dict[Hashable, list[int]] = {}
        self._hashes: dict[Hashable, list[int]] = {}     # hashes of each request's full blocks
        self._num_table_blocks = 0                       # entries over all block tables
        self.k_pool: list[np.ndarray] = []
        self.v_pool: list[np.ndarray] = []
        if self.has_storage:
            shape = (self.allocator.num_blocks, self.block_size, self.n_heads, self.head_dim)
            self.k_pool = [np.zeros(shape, self.dtype) for _ in range(self.n_layers)]
            self.v_pool = [np.zeros(shape, self.dtype) for _ in range(self.n_layers)]

    @property
    def num_blocks(self) -> int:
        return self.allocator.num_blocks

    @property
    def caches_prefixes(self) -> bool:
        return self.enable_prefix_caching

    def blocks_for(self, num_tokens: int) -> int:
        """Blocks needed to hold ``num_tokens`` tokens: ``ceil(num_tokens / block_size)``."""
        return -(-num_tokens // self.block_size)

    # ------------------------------------------------------------------ prefix caching
    def _match_prefix(self, tokens: Sequence[int]) -> list[int]:
        """Cached blocks holding the longest prefix of ``tokens`` made of full blocks, leaving
        at least the last token to compute (its logits give the next token)."""
        if not self.enable_prefix_caching:
            return []
        bs, tokens, blocks, parent = self.block_size, tuple(tokens), [], None
        for i in range((len(tokens) - 1) // bs):
            parent = hash_block(parent, tokens[i * bs:(i + 1) * bs])
            block = self.allocator.lookup(parent, tokens[:(i + 1) * bs])
            if block is None:
                break
            blocks.append(block)
        return blocks

    def cached_prefix_len(self, tokens: Sequence[int]) -> int:
        return len(self._match_prefix(tokens)) * self.block_size

    def can_admit(self, tokens: Sequence[int], num_tokens: int, keep_free: int = 0) -> bool:
        hits = self._match_prefix(tokens)
        # Retaining a cached (ownerless) hit takes it out of the available pool, too.
        cost = sum(self.allocator.ref_counts[b] == 0 for b in hits)
        cost += self.blocks_for(num_tokens) - len(hits)
        return not self.allocator.bounded or cost + keep_free <= self.allocator.num_available

    def admit(self, req_id, tokens=()):
        super().admit(req_id, tokens)
        hits = self._match_prefix(tokens)
        for b in hits:
            self.allocator.retain(b)
        self.block_tables[req_id] = list(hits)
        self._num_table_blocks += len(hits)
        self._hashes[req_id] = [self.allocator._content[b][0] for b in hits]
        self._grow(req_id, len(hits) * self.block_size)
        return self._lengths[req_id]

    def cache_full_blocks(self, req_id, tokens):
        if not self.enable_prefix_caching:
            return
        bs, hashes, table = self.block_size, self._hashes[req_id], self.block_tables[req_id]
        tokens = tuple(tokens)
        for i in range(len(hashes), self._lengths[req_id] // bs):
            parent = hashes[-1] if hashes else None
            hashes.append(hash_block(parent, tokens[i * bs:(i + 1) * bs]))
            self.allocator.register(table[i], hashes[-1], tokens[:(i + 1) * bs])

    # ------------------------------------------------------------------ growth and storage
    def blocks_to_extend(self, req_id: Hashable, n: int) -> int:
        """New blocks the request needs to grow by ``n`` tokens (<= 0: its last block has room)."""
        return -(-(self._lengths[req_id] + n) // self.block_size) - len(self.block_tables[req_id])

    def can_extend(self, req_id, n):
        need = -(-(self._lengths[req_id] + n) // self.block_size) - len(self.block_tables[req_id])
        return need <= 0 or not self.allocator.bounded or need <= self.allocator.num_available

    def extend(self, req_id, n):
        # This runs once per token of every step: the common case (room in the last block)
        # costs one division.
        length = self._lengths[req_id] + n
        table = self.block_tables[req_id]
        need = -(-length // self.block_size) - len(table)
        if need > 0:
            assert not self.allocator.bounded or need <= self.allocator.num_available, \
                f"no room to extend {req_id!r} by {n}"
            for _ in range(need):
                table.append(self.allocator.allocate())
            self._num_table_blocks += need
            self._grow_pools()
        self._lengths[req_id] = length
        self._num_tokens += n

    def write(self, layer, req_id, start, k, v):
        self._require_storage()
        assert start + k.shape[0] <= self._lengths[req_id]
        blocks, offsets = slot_indices(self.block_tables[req_id], self.block_size,
                                       start, start + k.shape[0])
        self.k_pool[layer][blocks, offsets] = k
        self.v_pool[layer][blocks, offsets] = v

    def write_slots(self, layer: int, slots: np.ndarray, k: np.ndarray, v: np.ndarray) -> None:
        """Store ``k, v (N, H, D)`` of a whole step at flat ``slots (N,)`` (see
        :func:`~cblab_src.attention.paged_attention.slot_mapping`): one scatter per layer."""
        self._require_storage()
        self.k_pool[layer].reshape(-1, *k.shape[1:])[slots] = k
        self.v_pool[layer].reshape(-1, *v.shape[1:])[slots] = v

    def read(self, layer, req_id):
        self._require_storage()
        table, length = self.block_tables[req_id], self._lengths[req_id]
        return gather_kv(self.k_pool[layer], table, length), gather_kv(self.v_pool[layer], table, length)

    def free(self, req_id):
        # Release the tail first, so the LRU evicts a prefix's last blocks before its first.
        table = self.block_tables.pop(req_id)
        for b in reversed(table):
            self.allocator.release(b)
        self._num_table_blocks -= len(table)
        del self._hashes[req_id]
        self._untrack(req_id)

    def usage(self) -> KVUsage:
        used_slots = self._num_table_blocks * self.block_size
        a = self.allocator
        return KVUsage(tokens=len(self), used_blocks=a.num_used, free_blocks=a.num_free,
                       cached_blocks=a.num_cached, total_blocks=self.num_blocks,
                       wasted_slots=used_slots - len(self), shared_blocks=a.num_shared)

    def block_owners(self) -> np.ndarray:
        """``(num_blocks,)`` object array: the first request owning each block, ``None`` if none."""
        owners = np.full(self.num_blocks, None, dtype=object)
        for req_id, table in reversed(list(self.block_tables.items())):
            owners[table] = req_id
        return owners

    def slot_fill(self) -> np.ndarray:
        """``(num_blocks, block_size)`` bool: which slots of the pool hold a live token."""
        fill = np.zeros((self.num_blocks, self.block_size), dtype=bool)
        for req_id, table in self.block_tables.items():
            flat = np.arange(self._lengths[req_id])
            fill[np.asarray(table, dtype=np.int64)[flat // self.block_size],
                 flat % self.block_size] = True
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
