"""The name of a full block of tokens, and what a prefix lookup finds.

:func:`hash_block` names a block by its tokens and, through its parent's name, every token
before them; :class:`PrefixMatch` is the run of cached blocks a prompt starts with. The table
that maps names to blocks is the :class:`~cblab_src.core.block_pool.BlockPool`'s.
"""

from __future__ import annotations

from dataclasses import dataclass


def hash_block(parent_hash: int | None, tokens: tuple[int, ...]) -> int:
    """Chained name of a full block: its ``tokens`` and, through ``parent_hash`` (the name of
    the block before it; ``None`` for a first block), every token before them."""
    return hash((parent_hash, tokens))


@dataclass(frozen=True)
class PrefixMatch:
    """The cached blocks holding a prompt's leading full blocks, as
    :meth:`~cblab_src.core.kv_cache.KVCache.match_prefix` finds them. Valid until the pool
    next changes: admit right after matching."""

    blocks: tuple[int, ...] = ()    # block ids, in prompt order
    hashes: tuple[int, ...] = ()    # their names in the prefix table
    num_tokens: int = 0             # tokens they hold: the prefill a request skips


NO_MATCH = PrefixMatch()


def as_match(match) -> PrefixMatch:
    """``match`` checked (``None``: no match)."""
    if match is None:
        return NO_MATCH
    if not isinstance(match, PrefixMatch):
        raise TypeError(f"match must be a PrefixMatch from match_prefix(tokens), got {match!r}")
    return match
