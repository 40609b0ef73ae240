"""KV caches: dense and paged layouts store the same numbers; the paged pool's block accounting."""

import numpy as np
import pytest

from cblab_src import BlockPool, DenseKVCache, PagedKVCache
from cblab_src.monitoring.pool_snapshot import block_owners, slot_fill

L, H, D = 2, 2, 3   # layers, heads, head size


def kv(rng, n):
    """Random ``k, v``, each ``(n, H, D)``."""
    return rng.standard_normal((n, H, D)), rng.standard_normal((n, H, D))


def make_cache(layout, **kwargs):
    if layout == "dense":
        return DenseKVCache(n_layers=L, n_heads=H, head_dim=D)
    return PagedKVCache(kwargs.get("block_size", 4), kwargs.get("num_blocks"),
                        n_layers=L, n_heads=H, head_dim=D)


def append(cache, req_id, ks, vs, layer_data):
    """Extend ``req_id`` by ``len(ks[0])`` tokens and write them in every layer (as a step does)."""
    start = cache.num_computed_tokens(req_id)
    cache.extend(req_id, ks[0].shape[0])
    for layer in range(L):
        cache.write(layer, req_id, start, ks[layer], vs[layer])
        layer_data[layer][0].append(ks[layer])
        layer_data[layer][1].append(vs[layer])


LAYOUTS = ["dense", "paged"]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_read_returns_every_written_token_in_order(layout):
    rng = np.random.default_rng(0)
    cache = make_cache(layout, block_size=4)
    written = {rid: [([], []) for _ in range(L)] for rid in "ab"}
    cache.admit("a")
    cache.admit("b")
    # Interleave appends of two requests, in pieces of 3, 1, 5 and 1 tokens.
    for n in (3, 1, 5, 1):
        for rid in "ab":
            pairs = [kv(rng, n) for _ in range(L)]
            append(cache, rid, [p[0] for p in pairs], [p[1] for p in pairs], written[rid])
    for rid in "ab":
        assert cache.num_computed_tokens(rid) == 10
        for layer in range(L):
            k, v = cache.read(layer, rid)
            assert k.shape == v.shape == (10, H, D)
            np.testing.assert_array_equal(k, np.concatenate(written[rid][layer][0]))
            np.testing.assert_array_equal(v, np.concatenate(written[rid][layer][1]))
    assert len(cache) == 20
    assert "a" in cache and "c" not in cache
    assert cache.req_ids == ["a", "b"]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_len_and_seq_len_count_extended_tokens(layout):
    cache = make_cache(layout)
    cache.admit(0)
    assert (len(cache), cache.num_computed_tokens(0)) == (0, 0)
    cache.extend(0, 4)
    cache.admit(1)
    cache.extend(1, 2)
    cache.extend(0, 1)
    assert (len(cache), cache.num_computed_tokens(0), cache.num_computed_tokens(1)) == (7, 5, 2)
    cache.free(0)
    assert len(cache) == 2 and 0 not in cache
    with pytest.raises(KeyError):
        cache.num_computed_tokens(0)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_admitting_a_request_twice_is_refused(layout):
    cache = make_cache(layout)
    cache.admit("a")
    with pytest.raises(ValueError, match="req_id"):
        cache.admit("a")


def test_dense_cache_is_append_only():
    cache = DenseKVCache(n_layers=L, n_heads=H, head_dim=D)
    k, v = kv(np.random.default_rng(1), 2)
    cache.admit("a")
    cache.extend("a", 2)
    cache.write(0, "a", 0, k, v)
    with pytest.raises(AssertionError):
        cache.write(0, "a", 0, k, v)             # overwrite position 0
    cache.extend("a", 2)
    with pytest.raises(AssertionError):
        cache.write(0, "a", 3, k[:1], v[:1])     # leave a hole at position 2


@pytest.mark.parametrize("layout", LAYOUTS)
def test_writing_past_the_extended_length_is_refused(layout):
    cache = make_cache(layout)
    k, v = kv(np.random.default_rng(2), 3)
    cache.admit("a")
    cache.extend("a", 2)
    with pytest.raises(AssertionError):
        cache.write(0, "a", 0, k, v)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_nbytes_counts_k_and_v_of_every_layer(layout):
    cache = make_cache(layout)
    cache.admit("a")
    cache.extend("a", 5)
    assert cache.nbytes() == 5 * 2 * L * H * D * 8
    assert DenseKVCache().nbytes() == 0 and PagedKVCache(4).nbytes() == 0   # accounting only


def test_accounting_only_cache_refuses_read_and_write():
    cache = PagedKVCache(4)
    cache.admit("a")
    cache.extend("a", 1)
    with pytest.raises(RuntimeError, match="n_layers"):
        cache.read(0, "a")


def test_paged_blocks_are_allocated_on_demand():
    cache = PagedKVCache(block_size=4, num_blocks=8)
    cache.admit("a")
    assert cache.block_tables["a"] == []            # admission allocates nothing
    cache.extend("a", 4)
    assert cache.block_tables["a"] == [0]
    cache.extend("a", 1)                            # 5 tokens -> 2 blocks
    assert cache.block_tables["a"] == [0, 1]
    cache.extend("a", 3)                            # 8 tokens still fit in 2 blocks
    assert cache.block_tables["a"] == [0, 1]
    cache.extend("a", 1)
    assert cache.block_tables["a"] == [0, 1, 2]
    assert [cache.blocks_for(n) for n in (0, 1, 4, 5, 8, 9)] == [0, 1, 1, 2, 2, 3]


def test_paged_blocks_go_lowest_id_first_and_return_on_free():
    cache = PagedKVCache(block_size=4, num_blocks=6)
    cache.admit("a")
    cache.admit("b")
    cache.extend("a", 5)                 # a: [0, 1]
    cache.extend("b", 3)                 # b: [2]
    cache.extend("a", 4)                 # a: [0, 1, 3]
    cache.extend("b", 2)                 # b: [2, 4]
    assert cache.block_tables == {"a": [0, 1, 3], "b": [2, 4]}
    cache.free("a")
    assert "a" not in cache.block_tables
    assert cache.usage().free_blocks == 4
    cache.admit("c")
    cache.extend("c", 12)                # the lowest free ids again: 0, 1, 3
    assert cache.block_tables["c"] == [0, 1, 3]


def test_paged_admission_and_growth_accounting():
    # Nothing is reserved: admission asks only whether the tokens about to be computed fit
    # (plus keep_free blocks), and each extension asks only for the blocks it adds.
    cache = PagedKVCache(block_size=4, num_blocks=4)
    prompt = list(range(9))
    match = cache.match_prefix(prompt)                # no prefix caching: nothing cached
    assert cache.can_admit(match, 16) and not cache.can_admit(match, 17)
    assert cache.can_admit(match, 12, keep_free=1) and not cache.can_admit(match, 13, keep_free=1)
    assert cache.admit("a", match) == 0
    u = cache.usage()
    assert (u.used_blocks, u.free_blocks, u.cached_blocks, u.available_blocks) == (0, 4, 0, 4)
    cache.extend("a", 5)                             # 2 blocks, taken now
    u = cache.usage()
    assert (u.used_blocks, u.free_blocks, u.available_blocks) == (2, 2, 2)
    assert cache.blocks_to_extend("a", 3) == 0 and cache.blocks_to_extend("a", 4) == 1
    assert cache.can_extend("a", 11) and not cache.can_extend("a", 12)   # 16 and 17 tokens
    cache.admit("b", cache.match_prefix([1, 2, 3, 4]))
    cache.extend("b", 4)
    assert cache.blocks_to_extend("a", 4) == 1 and cache.can_extend("a", 4)
    cache.extend("a", 4)                             # the last block
    u = cache.usage()
    assert (u.used_blocks, u.free_blocks, u.available_blocks) == (4, 0, 0)
    assert not cache.can_extend("b", 1)              # a step would have to preempt someone
    assert cache.can_extend("b", 0) and cache.can_extend("a", 3)        # within their blocks
    assert not cache.can_admit(cache.match_prefix([5]), 1)
    cache.free("a")                                  # 3 used blocks back at once
    u = cache.usage()
    assert (u.used_blocks, u.free_blocks, u.available_blocks) == (1, 3, 3)
    match = cache.match_prefix(prompt)
    assert cache.can_admit(match, 12) and not cache.can_admit(match, 13)
    assert not cache.can_admit(match, 12, keep_free=1)


def test_extending_past_the_pool_is_refused():
    cache = PagedKVCache(block_size=2, num_blocks=2)
    cache.admit("a")
    cache.extend("a", 3)
    with pytest.raises(ValueError, match=r"no room to extend req_id 'a' by n=2: it needs 1"):
        cache.extend("a", 2)
    assert cache.num_computed_tokens("a") == 3 and cache.block_tables["a"] == [0, 1]
    assert cache.usage().free_blocks == 0


def test_a_steps_decodes_grow_by_one_token_each_or_not_at_all():
    # Blocks of 2 in a pool of 5: "a" has one full block, "b" room in its block, "c" two full
    # blocks, so one more token each needs 2 new blocks; 1 is free.
    cache = PagedKVCache(block_size=2, num_blocks=5)
    for req_id, n in (("a", 2), ("b", 1), ("c", 4)):
        cache.admit(req_id)
        cache.extend(req_id, n)
    before = books(cache)
    assert not cache.try_extend_decodes(["a", "b", "c"])
    assert books(cache) == before                       # all or nothing
    cache.free("b")                                     # now 2 blocks are free: 1 and 4
    assert cache.try_extend_decodes(["c", "a"])
    assert {r: cache.num_computed_tokens(r) for r in "ac"} == {"a": 3, "c": 5}
    assert cache.block_tables == {"a": [0, 4], "c": [2, 3, 1]}   # lowest id first, in order


@pytest.mark.parametrize("layout", LAYOUTS)
def test_extending_decodes_together_equals_extending_each_in_turn(layout):
    lengths = np.random.default_rng(0).integers(0, 9, 12).tolist()
    together, one_by_one = make_cache(layout, num_blocks=64), make_cache(layout, num_blocks=64)
    for cache in (together, one_by_one):
        for req_id, n in enumerate(lengths):
            cache.admit(req_id)
            cache.extend(req_id, n)
    ids = list(range(len(lengths)))
    for _ in range(6):
        assert together.try_extend_decodes(ids)
        for req_id in ids:
            one_by_one.extend(req_id, 1)
        assert books(together) == books(one_by_one)


def books(cache):
    """Everything a refused call must leave as it was."""
    tables = {r: list(t) for r, t in getattr(cache, "block_tables", {}).items()}
    return cache.usage(), {r: cache.num_computed_tokens(r) for r in cache.req_ids}, tables


def write_one(layer):
    return lambda c: c.write(layer, "a", 0, *kv(np.random.default_rng(0), 1))


CALLS = {"extend-negative": (lambda c: c.extend("a", -2), r"\bn\b.*-2"),
         "extend-unknown": (lambda c: c.extend("ghost", 1), "req_id 'ghost'"),
         "free-unknown": (lambda c: c.free("ghost"), "req_id 'ghost'"),
         "extend-decodes-unknown": (lambda c: c.try_extend_decodes(["a", "ghost"]), "req_id 'ghost'"),
         # (paged only: DenseKVCache indexes its layers as they come)
         "write-layer-2": (write_one(2), "layer.*2"),
         "write-layer-minus-1": (write_one(-1), "layer.*-1"),
         "read-layer-5": (lambda c: c.read(5, "a"), "layer.*5")}
REFUSED = [pytest.param(layout, *CALLS[name], id=f"{layout}-{name}")
           for layout in LAYOUTS for name in CALLS if layout == "paged" or "layer" not in name]


@pytest.mark.parametrize("layout, call, regex", REFUSED)
def test_a_refused_call_names_what_is_wrong_and_changes_nothing(layout, call, regex):
    cache = make_cache(layout, block_size=2, num_blocks=4)
    cache.admit("a")
    cache.extend("a", 3)
    for layer in range(L):
        cache.write(layer, "a", 0, *kv(np.random.default_rng(layer), 3))
    before = books(cache)
    with pytest.raises(ValueError, match=regex):
        call(cache)
    assert books(cache) == before


def test_can_extend_of_an_unknown_request_is_a_value_error():
    with pytest.raises(ValueError, match="req_id 'ghost'"):
        PagedKVCache(block_size=2).can_extend("ghost", 1)


def test_the_pool_refuses_to_retain_or_release_a_block_nobody_owns():
    pool = BlockPool(4)
    for method in (pool.retain, pool.release):
        for block in (0, 7, -1, "0"):
            with pytest.raises(ValueError, match=f"block {block!r}"):
                method(block)
    assert pool.ref_counts == [0, 0, 0, 0] and pool.num_free == 4


def test_a_huge_pool_costs_nothing_until_its_blocks_are_used():
    # Block ids and reference counts are made as blocks are first handed out: 10**8 blocks
    # (the most a pool may have) cost a few bytes, not gigabytes.
    import time
    import tracemalloc
    tracemalloc.start()
    start = time.perf_counter()
    cache = PagedKVCache(block_size=16, num_blocks=10**8)
    cache.admit("a")
    cache.extend("a", 40)
    elapsed = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert elapsed < 0.5 and peak < 10**6
    assert cache.block_tables["a"] == [0, 1, 2]
    u = cache.usage()
    assert (u.used_blocks, u.free_blocks, u.total_blocks) == (3, 10**8 - 3, 10**8)
    cache.free("a")
    assert cache.usage().free_blocks == 10**8


def test_storage_for_a_huge_pool_is_refused_not_allocated():
    with pytest.raises(ValueError, match=r"num_blocks=100000000 needs \d+ bytes"):
        PagedKVCache(block_size=16, num_blocks=10**8, n_layers=L, n_heads=H, head_dim=D)


def test_paged_usage_counters_and_wasted_slots():
    cache = PagedKVCache(block_size=4, num_blocks=5)
    cache.admit("a")
    cache.admit("b")
    cache.extend("a", 5)                 # 2 blocks, 3 empty slots
    cache.extend("b", 3)                 # 1 block, 1 empty slot
    u = cache.usage()
    assert (u.tokens, u.used_blocks, u.free_blocks, u.total_blocks, u.wasted_slots) == \
           (8, 3, 2, 5, 4)
    assert (u.cached_blocks, u.shared_blocks) == (0, 0)             # no prefix caching
    assert u.used_blocks + u.free_blocks + u.cached_blocks == u.total_blocks


def test_dense_usage_has_no_blocks():
    cache = DenseKVCache()
    cache.admit("a")
    cache.extend("a", 7)
    u = cache.usage()
    assert (u.tokens, u.used_blocks, u.free_blocks, u.total_blocks, u.wasted_slots) == \
           (7, 0, 0, 0, 0)
    assert (u.cached_blocks, u.shared_blocks) == (0, 0)
    assert cache.can_admit(cache.match_prefix([1]), 10 ** 9) and cache.can_extend("a", 10 ** 9)
    assert cache.cached_prefix_len([1, 2, 3]) == 0


def test_block_owners_and_slot_fill():
    cache = PagedKVCache(block_size=4, num_blocks=4)
    cache.admit("a")
    cache.admit("b")
    cache.extend("a", 5)
    cache.extend("b", 3)
    assert block_owners(cache).tolist() == ["a", "a", "b", None]
    np.testing.assert_array_equal(slot_fill(cache), [
        [True, True, True, True],
        [True, False, False, False],
        [True, True, True, False],
        [False, False, False, False],
    ])


def test_unbounded_pool_grows_and_keeps_its_data():
    rng = np.random.default_rng(3)
    cache = PagedKVCache(block_size=2, num_blocks=None, n_layers=L, n_heads=H, head_dim=D)
    assert cache.num_blocks == BlockPool.INITIAL_BLOCKS == 8
    assert cache.can_admit(cache.match_prefix([1]), 10 ** 6)   # an unbounded pool admits anything
    written = {rid: [([], []) for _ in range(L)] for rid in "ab"}
    cache.admit("a")
    cache.admit("b")
    for n in (5, 7, 9):                                 # 21 tokens each -> 11 blocks each
        for rid in "ab":
            pairs = [kv(rng, n) for _ in range(L)]
            append(cache, rid, [p[0] for p in pairs], [p[1] for p in pairs], written[rid])
    assert cache.num_blocks == 32                       # 8 -> 16 -> 32
    assert cache.k_pool[0].shape == (32, 2, H, D)
    u = cache.usage()
    assert (u.used_blocks, u.total_blocks, u.used_blocks + u.free_blocks) == (22, 32, 32)
    assert cache.can_extend("a", 10 ** 6)
    for rid in "ab":
        for layer in range(L):
            k, v = cache.read(layer, rid)
            np.testing.assert_array_equal(k, np.concatenate(written[rid][layer][0]))
            np.testing.assert_array_equal(v, np.concatenate(written[rid][layer][1]))


def test_paged_and_dense_store_the_same_numbers():
    rng = np.random.default_rng(4)
    dense, paged = make_cache("dense"), make_cache("paged", block_size=3, num_blocks=10)
    for cache in (dense, paged):
        cache.admit("x")
    for n in (4, 1, 1, 5):
        pairs = [kv(rng, n) for _ in range(L)]
        for cache in (dense, paged):
            append(cache, "x", [p[0] for p in pairs], [p[1] for p in pairs],
                   [([], []) for _ in range(L)])
    for layer in range(L):
        for a, b in zip(dense.read(layer, "x"), paged.read(layer, "x")):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kwargs, error, name", [
    (dict(block_size=0), ValueError, "block_size"),
    (dict(block_size=-4), ValueError, "block_size"),
    (dict(block_size=2.0), TypeError, "block_size"),
    (dict(block_size=True), TypeError, "block_size"),
    (dict(num_blocks=0), ValueError, "num_blocks"),
    (dict(num_blocks=-1), ValueError, "num_blocks"),
    (dict(num_blocks=2.5), TypeError, "num_blocks"),
    (dict(num_blocks=True), TypeError, "num_blocks"),
    (dict(num_blocks=2**63), ValueError, r"num_blocks must be <= 100000000, got 9223372036854775808"),
    (dict(num_blocks=10**8 + 1), ValueError, "num_blocks"),
    (dict(keep_duplicate_blocks=1), TypeError, "keep_duplicate_blocks"),
    (dict(n_layers=2), ValueError, "n_layers"),                 # shape given only in part
    (dict(n_layers=0, n_heads=2, head_dim=3), ValueError, "n_layers"),
])
def test_paged_cache_bad_input(kwargs, error, name):
    with pytest.raises(error, match=name):
        PagedKVCache(**kwargs)


def test_dense_cache_bad_input():
    with pytest.raises(ValueError, match="head_dim"):
        DenseKVCache(n_layers=1, n_heads=1, head_dim=-3)
