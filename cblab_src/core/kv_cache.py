"""Where each request's keys and values live between steps: dense or paged, both append-only.

Both layouts offer the same operations, in the order a step uses them:

1. ``match = match_prefix(tokens)``, ``can_admit(match, n)``, ``admit(req_id, match)`` — start
   a request (a paged cache with prefix caching finds, once, the leading full blocks of
   ``tokens`` it already holds; ``admit`` returns how many tokens that is, so their prefill
   can be skipped).
2. ``can_extend(req_id, n)`` / ``extend(req_id, n)`` (or both at once, ``try_extend``) — the
   step adds ``n`` tokens to the request (paged: allocates blocks on demand; when none are free
   the scheduler must preempt someone).
3. ``write(layer, req_id, start, k, v)`` then ``read(layer, req_id)`` — per layer, store the
   new tokens' K/V and read back the whole context for attention.
4. ``cache_full_blocks(req_id, tokens)`` — after the step, full blocks become reusable prefixes
   (prefix caching only).
5. ``free(req_id)`` — the request finished or was preempted; its memory goes back at once.

Either cache can be built without storage (``n_layers=None``): it then keeps only the
accounting, which is all a scheduling-only simulation needs. This file holds the common
base and the dense layout; the paged layout is ``paged_kv_cache.py``, and its block accounting
(free list, reference counts, prefix table, eviction) is
:class:`~cblab_src.core.block_pool.BlockPool`, in ``block_pool.py``.
"""

from __future__ import annotations

import abc
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from .._validate import optional_positive_int
from .prefix_match import NO_MATCH, PrefixMatch, as_match
from .undo import Undoable


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


class KVCache(Undoable, abc.ABC):
    """Common bookkeeping of both layouts: per-request lengths and optional K/V storage.
    Every change can be rolled back to a checkpoint (:mod:`.undo`): a failed step uses it."""

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

    def num_computed_tokens(self, req_id: Hashable) -> int:
        """Tokens stored for one request."""
        return self._lengths[req_id]

    @property
    def req_ids(self) -> list[Hashable]:
        return list(self._lengths)

    @property
    def is_bounded(self) -> bool:
        """Whether the memory is a fixed number of blocks (only a paged cache's can be)."""
        return False

    def match_prefix(self, tokens: Sequence[int]) -> PrefixMatch:
        """The cached blocks holding the longest prefix of ``tokens`` made of full blocks,
        leaving at least the last token to compute (its logits give the next token); empty
        without prefix caching. Pass it to :meth:`can_admit` and :meth:`admit`."""
        return NO_MATCH

    def cached_prefix_len(self, tokens: Sequence[int]) -> int:
        """How many leading ``tokens`` the cache already holds (prefix caching; else 0)."""
        return self.match_prefix(tokens).num_tokens

    def can_admit(self, match: PrefixMatch, num_tokens: int, keep_free: int = 0) -> bool:
        """Whether a request reusing ``match`` can start holding ``num_tokens`` tokens (cached
        prefix included) while ``keep_free`` blocks stay available."""
        as_match(match)
        return True

    def admit(self, req_id: Hashable, match: PrefixMatch | None = None) -> int:
        """Start tracking a request, reusing ``match`` (from :meth:`match_prefix`, right before);
        return how many tokens it reuses."""
        match = as_match(match)
        if match.num_tokens and not self.caches_prefixes:
            raise ValueError(f"match must be empty: this {self.layout} cache keeps no prefixes, "
                             f"got {match!r}")
        self._check_new(req_id)
        self._lengths[req_id] = 0
        return 0

    def _grow(self, req_id: Hashable, n: int) -> None:
        """Record ``n`` more tokens of a request (its slots exist)."""
        if req_id not in self._lengths:
            raise self._unknown(req_id)
        if n < 0:
            raise ValueError(f"n must be >= 0 (a KV cache only grows), got {n!r}")
        self._lengths[req_id] += n
        self._num_tokens += n

    def _untrack(self, req_id: Hashable) -> int:
        """Stop tracking a request; return how many tokens it held."""
        if req_id not in self._lengths:
            raise self._unknown(req_id)
        length = self._lengths.pop(req_id)
        self._num_tokens -= length
        return length

    def _save_state(self):
        return dict(self._lengths), self._num_tokens

    def _restore_state(self, saved) -> None:
        self._lengths, self._num_tokens = saved

    @staticmethod
    def _unknown(req_id: Hashable) -> ValueError:
        """The error for a request this cache does not hold (instead of a bare ``KeyError``)."""
        return ValueError(f"req_id {req_id!r} is not in the KV cache (never admitted, or freed)")

    def can_extend(self, req_id: Hashable, n: int) -> bool:
        """Whether ``n`` more tokens of the request fit now (always, for a dense cache)."""
        return True

    @abc.abstractmethod
    def extend(self, req_id: Hashable, n: int) -> None:
        """Grow the request by ``n`` token slots (written afterwards, layer by layer)."""

    def try_extend(self, req_id: Hashable, n: int) -> bool:
        """:meth:`extend` if the slots fit now and return ``True``; else change nothing and
        return ``False``."""
        if not self.can_extend(req_id, n):
            return False
        self.extend(req_id, n)
        return True

    def try_extend_decodes(self, req_ids: Sequence[Hashable]) -> bool:
        """:meth:`extend` each of ``req_ids`` (distinct: a step's decodes) by one token if all
        of them fit now and return ``True``; else change nothing and return ``False``."""
        unknown = [req_id for req_id in req_ids if req_id not in self._lengths]
        if unknown:
            raise self._unknown(unknown[0])
        if not all(self.can_extend(req_id, 1) for req_id in req_ids):
            return False
        for req_id in req_ids:
            self.extend(req_id, 1)
        return True

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

    def _require_storage(self, layer: int | None = None) -> None:
        """Refuse to touch K/V without storage, or (given ``layer``) in a layer it lacks."""
        if not self.has_storage:
            raise RuntimeError("this KV cache keeps accounting only (built with n_layers=None)")
        if layer is not None and not 0 <= layer < self.n_layers:
            raise ValueError(f"layer must be in [0, {self.n_layers}), got {layer!r}")


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

    def admit(self, req_id: Hashable, match: PrefixMatch | None = None) -> int:
        super().admit(req_id, match)
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
        for arrays in (self._k[req_id], self._v[req_id]):      # each layer's array is replaced
            self._log(arrays.__setitem__, layer, arrays[layer])
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

    def _save_state(self):
        return super()._save_state(), dict(self._k), dict(self._v)

    def _restore_state(self, saved) -> None:
        base, self._k, self._v = saved
        super()._restore_state(base)
