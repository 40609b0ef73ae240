"""The block pool: which KV blocks are free, who owns each one, which hold a reusable prefix.

Accounting only, block ids and no tensors (:mod:`cblab_src.core.kv_cache` keeps the block
tables and the keys and values). A block is in exactly one state:

* **free** — holds nothing; on the free list, lowest id handed out first;
* **used** — reference count >= 1: owned by that many live requests (more than one only when
  prefix caching shares it);
* **cached** — reference count 0, but holds a full block of tokens a later request may reuse;
  kept in least-recently-used order, evicted only when an allocation finds no free block.

**The prefix table.** A full block is named by a chained hash, ``hash_block(parent_hash,
tokens)``: its tokens and, through its parent's name, every token before them. The table maps
a name to the exact key ``(parent_hash, tokens)`` and the block holding it: one block of
tokens per entry, never the whole prefix.

**Copies.** Two requests computing the same prefix at once (admitted in the same step, say)
each fill a block with the same tokens. By default the first block registered keeps the entry
and the copy holds none: a lookup could not find more through it, so, released, it is simply
free and no other prefix is evicted for it. vLLM does not deduplicate
(``BlockHashToBlockMap``: one name, several blocks): every copy is cached when released, a
lookup returns the oldest copy still held, and a hit survives while any copy does. With
``keep_duplicates=True`` (what the ``vllm_v1`` policy asks for) this pool does the same: the
copies take LRU places, which changes which cached blocks later evictions take (12 of the
237 workloads recorded from vLLM, tests/data/vllm_traces, depend on it).

**Eviction order, ours and vLLM's.** vLLM keeps one free queue, taken from the front: released
blocks without a name go to its front, named ones to its back (a request's blocks are released
tail first). That is our free list followed by our LRU: only the ids handed out differ.

**A collision never reuses a wrong block.** vLLM trusts the chained hash (optionally SHA-256,
where a collision is astronomically unlikely); Python's 64-bit ``hash`` is not collision
resistant and the tests force collisions on purpose, so we make every hit exact, in O(1) per
block, with or without copies. A lookup compares the key, so the block's own tokens are right.
And a name stands for one key as long as anything refers to it: a second key with a taken name
is not cached (nor is anything after it), and an entry stays, even once its blocks are evicted,
while a child entry or a running request still chains from it. A parent's name thus never
changes meaning under its children, and by induction from the first block a hit holds exactly
the prefix asked for.

With ``num_blocks=None`` the pool doubles whenever it runs out. A bounded pool holds at most
``MAX_COUNT`` (10**8) blocks; ids are handed out lazily, so unused blocks cost nothing.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

from .._validate import MAX_COUNT, positive_int
from .prefix_match import PrefixMatch, hash_block
from .undo import Undoable


@dataclass
class _Entry:
    """One full block in the prefix table."""

    key: tuple                  # (parent_hash, tokens), compared on every lookup
    block: int | None = None    # the block a lookup returns (the oldest); None once evicted
    children: int = 0           # entries and running requests chaining from this one
    copies: list[int] = field(default_factory=list)  # keep_duplicates: later blocks, oldest first


class BlockPool(Undoable):
    """Block ids ``0 .. num_blocks-1`` with reference counts, a prefix table and an LRU of
    cached blocks. Every change can be rolled back to a checkpoint (:mod:`.undo`)."""

    INITIAL_BLOCKS = 8  # starting size of an unbounded pool

    def __init__(self, num_blocks: int | None, keep_duplicates: bool = False):
        self.bounded = num_blocks is not None
        self.num_blocks = (positive_int("num_blocks", num_blocks, maximum=MAX_COUNT)
                           if self.bounded else self.INITIAL_BLOCKS)
        if not isinstance(keep_duplicates, bool):
            raise TypeError(f"keep_duplicates must be a bool, got {keep_duplicates!r}")
        self.keep_duplicates = keep_duplicates
        # Blocks 0 .. len(_refs)-1 have been handed out once; the others are free, at no cost.
        self._refs: list[int] = []                          # live owners of those blocks
        self._free: list[int] = []                          # a heap of released ones: lowest first
        self._lru: OrderedDict[int, None] = OrderedDict()   # cached blocks, oldest use first
        self._table: dict[int, _Entry] = {}                 # block name -> entry
        self._hash_of: dict[int, int] = {}                  # block id -> name of its entry
        self.num_evictions = 0                              # cached blocks taken back
        self.num_shared = 0                                 # blocks with reference count > 1
        self._lru_saved = False                             # its order logged since checkpoint

    @property
    def ref_counts(self) -> list[int]:
        """Live owners of each block, ``num_blocks`` long (a copy, for snapshots and checks)."""
        return self._refs + [0] * (self.num_blocks - len(self._refs))

    @property
    def num_free(self) -> int:
        return len(self._free) + self.num_blocks - len(self._refs)

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

    @property
    def cached_blocks(self) -> list[int]:
        """The ownerless blocks kept for reuse, least recently used (next evicted) first."""
        return list(self._lru)

    def num_cached_of(self, blocks: Iterable[int]) -> int:
        """How many of ``blocks`` are cached (retaining one takes it out of the available pool)."""
        return sum(b in self._lru for b in blocks)

    # ------------------------------------------------------------------ owners
    def can_allocate(self, n: int) -> bool:
        """Whether ``n`` blocks can be taken now (an unbounded pool grows, so always)."""
        return not self.bounded or n <= self.num_available

    def allocate(self) -> int:
        """Hand out a block with reference count 1: the lowest free id, else evict the LRU
        cached one (else, unbounded, grow)."""
        if self._free:
            block = heapq.heappop(self._free)
            self._log(self._free_again, block)
        elif len(self._refs) < self.num_blocks:         # never used: ids above all others
            block = len(self._refs)
            self._refs.append(0)
            self._log(self._refs.pop)
        elif self._lru:
            self._save_lru()
            block, _ = self._lru.popitem(last=False)
            self._forget(block)
            self.num_evictions += 1
            self._log(self._refs.__setitem__, block, 0)
        else:
            assert not self.bounded, "allocation from an exhausted bounded pool"
            self.num_blocks *= 2                        # unbounded: grow, take a new block
            return self.allocate()
        self._refs[block] = 1
        return block

    def retain(self, block: int) -> None:
        """One more owner for a block found in the prefix table (used, or cached)."""
        if block in self._lru:
            self._save_lru()
            del self._lru[block]                        # owned again: no longer evictable
        elif not self._is_used(block):
            raise ValueError(f"block {block!r} is neither used nor cached: only those can be "
                             f"retained")
        self._log(self._refs.__setitem__, block, self._refs[block])
        self._refs[block] += 1
        self.num_shared += self._refs[block] == 2

    def release(self, block: int) -> None:
        """One owner fewer; an ownerless block is kept as cached if it holds a table entry."""
        if not self._is_used(block):
            raise ValueError(f"block {block!r} has no owner to release")
        self._refs[block] -= 1
        self.num_shared -= self._refs[block] == 1
        if self._refs[block] or block in self._hash_of:
            self._log(self._refs.__setitem__, block, self._refs[block] + 1)
            if not self._refs[block]:
                self._save_lru()
                self._lru[block] = None                 # most recently used goes last
        else:
            self._log(self._unfree, block)
            heapq.heappush(self._free, block)

    def _is_used(self, block) -> bool:
        return isinstance(block, int) and 0 <= block < len(self._refs) and self._refs[block] > 0

    # ------------------------------------------------------------------ the prefix table
    def lookup(self, parent_hash: int | None, tokens: tuple[int, ...]) -> int | None:
        """The block holding ``tokens`` right after the prefix ``parent_hash`` names, else None."""
        entry = self._table.get(hash_block(parent_hash, tokens))
        if entry is None or entry.key != (parent_hash, tokens):
            return None                     # a miss, or a hash collision
        return entry.block                  # None if evicted (kept for its children)

    def match(self, chunks: Iterable[tuple[int, ...]]) -> PrefixMatch:
        """The blocks holding the leading ``chunks`` (full blocks of tokens), to the first miss."""
        blocks, hashes, parent, num_tokens = [], [], None, 0
        for tokens in chunks:
            block = self.lookup(parent, tokens)
            if block is None:
                break
            parent = self._hash_of[block]
            blocks.append(block)
            hashes.append(parent)
            num_tokens += len(tokens)
        return PrefixMatch(tuple(blocks), tuple(hashes), num_tokens)

    def register(self, block: int, parent_hash: int | None, tokens: tuple[int, ...]) -> int | None:
        """Offer ``block``, full with ``tokens`` right after the prefix ``parent_hash`` names.

        Returns the block's name, to chain the next block from; ``None`` if that name belongs
        to another key (a collision): then neither this block nor any after it is cached. If
        another block already holds the key, this copy is kept too with ``keep_duplicates``
        (vLLM), else it holds no entry and is freed on release.
        """
        block_hash = hash_block(parent_hash, tokens)
        entry = self._table.get(block_hash)
        if entry is None:
            self._save_item(self._table, block_hash)
            entry = self._table[block_hash] = _Entry((parent_hash, tokens))
            if parent_hash is not None:
                self._save_attr(self._table[parent_hash], "children")
                self._table[parent_hash].children += 1
        elif entry.key != (parent_hash, tokens):
            return None
        if entry.block is not None and not self.keep_duplicates:
            return block_hash
        assert block not in self._hash_of, f"block {block} already holds another prefix"
        if entry.block is None:
            self._save_attr(entry, "block")
            entry.block = block
        else:
            self._save_attr(entry, "copies", list)
            entry.copies.append(block)
        self._save_item(self._hash_of, block)
        self._hash_of[block] = block_hash
        return block_hash

    def pin(self, block_hash: int | None) -> None:
        """A running request will chain its next full block from ``block_hash``: keep that
        entry (not its block) in the table until :meth:`unpin`."""
        if block_hash is not None:
            self._save_attr(self._table[block_hash], "children")
            self._table[block_hash].children += 1

    def unpin(self, block_hash: int | None) -> None:
        """The request chaining from ``block_hash`` moved on, finished or was preempted."""
        if block_hash is not None:
            self._save_attr(self._table[block_hash], "children")
            self._table[block_hash].children -= 1
            self._prune(block_hash)

    def hash_of(self, block: int) -> int | None:
        """The name of the entry ``block`` holds, ``None`` if it holds none."""
        return self._hash_of.get(block)

    def _forget(self, block: int) -> None:
        # An evicted block leaves its entry; the oldest copy left, if any, takes its place.
        self._save_item(self._hash_of, block)
        block_hash = self._hash_of.pop(block)
        entry = self._table[block_hash]
        self._save_attr(entry, "copies", list)
        if entry.block == block:
            self._save_attr(entry, "block")
            entry.block = entry.copies.pop(0) if entry.copies else None
        else:
            entry.copies.remove(block)
        self._prune(block_hash)

    def _prune(self, block_hash: int) -> None:
        # Drop an entry nothing holds or chains from; that may leave its parent unused too.
        entry = self._table[block_hash]
        while entry.block is None and not entry.children:
            self._save_item(self._table, block_hash)
            del self._table[block_hash]
            block_hash = entry.key[0]
            if block_hash is None:
                return
            entry = self._table[block_hash]
            self._save_attr(entry, "children")
            entry.children -= 1

    # ------------------------------------------------------------------ rollback (see .undo)
    def _save_state(self):
        self._lru_saved = False
        return self.num_blocks, self.num_evictions, self.num_shared

    def _restore_state(self, saved) -> None:
        self.num_blocks, self.num_evictions, self.num_shared = saved

    def _save_lru(self) -> None:
        # The LRU's whole order, once per step: simpler than undoing each move in the middle.
        if self.has_checkpoint and not self._lru_saved:
            self._lru_saved = True
            self._log(self._reset_lru, list(self._lru))

    def _reset_lru(self, order: list[int]) -> None:
        self._lru.clear()
        self._lru.update(dict.fromkeys(order))

    def _free_again(self, block: int) -> None:         # undoes an allocation from the heap
        self._refs[block] = 0
        heapq.heappush(self._free, block)

    def _unfree(self, block: int) -> None:             # undoes the release that freed it
        self._free.remove(block)
        heapq.heapify(self._free)
        self._refs[block] = 1
