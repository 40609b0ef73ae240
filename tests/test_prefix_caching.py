"""Prefix caching: full blocks identified by a chained hash (confirmed by comparing tokens),
shared with reference counts, kept after their owners finish, evicted least recently used
only when a block is needed; a new request skips the prefill of its longest cached prefix but
always computes its last prompt token. Tokens never change."""

import pytest

import cblab_src.core.block_pool as block_pool_module
from cblab_src import LoggingPlugin, PagedKVCache, Request, Scheduler, SchedulerPlugin

from conftest import (MODEL, check_block_accounting, check_work, make_prefix_workload,
                      reference_tokens, run_workload)

P8 = [3, 1, 4, 1, 5, 9, 2, 6]                   # two blocks of 4
P12 = P8 + [5, 3, 5, 8]                         # three blocks of 4


class AccountingChecker(SchedulerPlugin):
    """Checks the pool's books (reference counts == live owners...) after every step."""

    def after_step(self, scheduler, stats):
        check_block_accounting(scheduler.kv_cache)


def caching_scheduler(num_blocks=None, **kwargs):
    sched = Scheduler(MODEL, max_tokens_per_step=16, prefill_chunk_size=16, block_size=4,
                      num_blocks=num_blocks, enable_prefix_caching=True, **kwargs)
    sched.plugins.register_scheduler_plugin(AccountingChecker())
    log = sched.plugins.register_scheduler_plugin(LoggingPlugin())
    return sched, log


# ---------------------------------------------------------------------- the cache alone
def admit(cache, req_id, tokens):
    """Admit ``req_id`` reusing what the cache holds of ``tokens``; returns the tokens reused."""
    return cache.admit(req_id, cache.match_prefix(tokens))


def filled_cache(tokens, req_id="a", num_blocks=8):
    """A caching pool of 4-token blocks holding ``tokens`` for one request, full blocks offered."""
    cache = PagedKVCache(block_size=4, num_blocks=num_blocks, enable_prefix_caching=True)
    assert admit(cache, req_id, tokens) == 0
    cache.extend(req_id, len(tokens))
    cache.cache_full_blocks(req_id, tokens)
    return cache


def test_the_hit_is_whole_blocks_and_leaves_the_last_token_to_compute():
    tokens = P12 + [7, 7]
    cache = filled_cache(tokens)                    # 14 tokens: blocks 0-2 full, block 3 not
    # At most floor((len - 1) / block_size) blocks: a prompt never comes out fully cached.
    assert [cache.cached_prefix_len(tokens[:n]) for n in (1, 4, 5, 8, 9, 12, 13, 14)] == \
           [0, 0, 4, 4, 8, 8, 12, 12]
    assert cache.cached_prefix_len(P12 + [7, 7, 7]) == 12      # the 4th block was never full
    assert cache.cached_prefix_len([0] + P12[1:]) == 0          # first block differs
    assert cache.cached_prefix_len(P8[:4] + [0] * 8) == 4       # second block differs


def test_a_hit_shares_blocks_and_reference_counts_follow_their_owners():
    cache = filled_cache(P12)
    assert admit(cache, "b", P8 + [0]) == 8                      # blocks 0, 1 shared
    assert cache.block_tables["b"] == [0, 1] and cache.num_computed_tokens("b") == 8
    assert cache.block_pool.ref_counts[:3] == [2, 2, 1]
    cache.extend("b", 1)                                         # its own block for token 8
    assert cache.block_tables["b"] == [0, 1, 3]
    u = cache.usage()
    assert (u.used_blocks, u.shared_blocks, u.cached_blocks, u.tokens) == (4, 2, 0, 21)
    check_block_accounting(cache)
    cache.free("a")                                  # block 2 is ownerless but holds a prefix
    assert cache.block_pool.ref_counts[:4] == [1, 1, 0, 1]
    u = cache.usage()
    assert (u.used_blocks, u.shared_blocks, u.cached_blocks, u.free_blocks) == (3, 0, 1, 4)
    cache.free("b")                                  # its partial block 3 is simply free
    u = cache.usage()
    assert (u.used_blocks, u.cached_blocks, u.free_blocks) == (0, 3, 5)
    check_block_accounting(cache)
    assert cache.cached_prefix_len(P12 + [1]) == 12              # all three survive


def test_cached_blocks_are_evicted_least_recently_used_and_only_when_needed():
    cache = filled_cache(P8, num_blocks=4)
    cache.free("a")                                  # tail released first: LRU order 1, 0
    assert cache.usage().cached_blocks == 2 and cache.block_pool.num_evictions == 0
    admit(cache, "b", [9] * 8)
    cache.extend("b", 8)                             # takes the 2 free blocks: no eviction
    assert cache.block_tables["b"] == [2, 3] and cache.block_pool.num_evictions == 0
    assert cache.can_extend("b", 8) and not cache.can_extend("b", 9)   # 2 cached evictable
    cache.extend("b", 4)                             # evicts block 1 (the prefix's tail) first
    assert cache.block_tables["b"] == [2, 3, 1] and cache.block_pool.num_evictions == 1
    assert cache.cached_prefix_len(P8 + [0]) == 4    # the prefix's first block still hits
    cache.extend("b", 1)
    assert cache.block_tables["b"] == [2, 3, 1, 0] and cache.block_pool.num_evictions == 2
    assert cache.cached_prefix_len(P8 + [0]) == 0
    check_block_accounting(cache)


def test_a_hit_makes_a_block_recently_used_again():
    cache = filled_cache(P8, num_blocks=5)
    admit(cache, "x", [7] * 4)
    cache.extend("x", 4)
    cache.cache_full_blocks("x", [7] * 4)
    cache.free("a")                                  # LRU: 1, 0
    cache.free("x")                                  # LRU: 1, 0, 2
    admit(cache, "b", P8[:4] + [0])                  # hits block 0 ...
    cache.free("b")                                  # ... which is now the most recent: 1, 2, 0
    admit(cache, "c", [5] * 12)
    cache.extend("c", 12)                            # 2 free blocks (3, 4), then evicts 1, then 2
    assert cache.block_tables["c"] == [3, 4, 1] and cache.block_pool.num_evictions == 1
    assert cache.cached_prefix_len(P8[:4] + [0]) == 4 and cache.cached_prefix_len([7] * 5) == 4
    cache.extend("c", 1)
    assert cache.block_tables["c"] == [3, 4, 1, 2] and cache.cached_prefix_len([7] * 5) == 0


def test_admission_counts_the_cached_hits_it_takes_out_of_the_pool():
    cache = filled_cache(P8, num_blocks=3)
    cache.free("a")                                  # 2 cached, 1 free: 3 available
    assert cache.usage().available_blocks == 3
    # P8 + [0]: hits 2 blocks (both ownerless, so retaining them costs 2) + 1 new block.
    match = cache.match_prefix(P8 + [0])
    assert cache.can_admit(match, 9) and not cache.can_admit(match, 9, keep_free=1)
    assert cache.can_admit(match, 12) and not cache.can_admit(match, 13)
    assert cache.admit("b", match) == 8
    assert cache.usage().available_blocks == 1


def compute_p8_side_by_side(cache, req_ids) -> None:
    """Admit each of ``req_ids`` with prompt P8 before any caches it (so none hits the other's
    blocks), grow each by its 8 tokens, then offer their full blocks: copies of one prefix."""
    for rid in req_ids:
        admit(cache, rid, P8)
        cache.extend(rid, 8)
    for rid in req_ids:
        cache.cache_full_blocks(rid, P8)


def test_without_prefix_caching_nothing_is_remembered():
    cache = PagedKVCache(block_size=4, num_blocks=4)
    admit(cache, "a", P8)
    cache.extend("a", 8)
    cache.cache_full_blocks("a", P8)
    cache.free("a")
    u = cache.usage()
    assert (u.free_blocks, u.cached_blocks) == (4, 0)
    assert cache.cached_prefix_len(P8 + [0]) == 0 and admit(cache, "b", P8 + [0]) == 0


def test_two_copies_of_a_block_computed_at_once_are_registered_once():
    # Two requests computing the same prompt in the same step cannot share it (nothing was
    # cached when they were admitted): the first registers it, the copy is freed on release.
    cache = PagedKVCache(block_size=4, num_blocks=8, enable_prefix_caching=True)
    compute_p8_side_by_side(cache, "ab")
    assert cache.block_tables == {"a": [0, 1], "b": [2, 3]}
    cache.free("a")
    cache.free("b")
    u = cache.usage()
    assert (u.cached_blocks, u.free_blocks) == (2, 6)
    assert admit(cache, "c", P8 + [0]) == 8 and cache.block_tables["c"] == [0, 1]
    check_block_accounting(cache)


def test_with_keep_duplicate_blocks_both_copies_are_cached_as_in_vllm():
    # The same two requests with keep_duplicate_blocks (what the vllm_v1 policy asks for):
    # the copy [2, 3] is cached too; a lookup returns the oldest copy [0, 1], and once that
    # is evicted the copy still hits.
    cache = PagedKVCache(block_size=4, num_blocks=4, enable_prefix_caching=True,
                         keep_duplicate_blocks=True)
    compute_p8_side_by_side(cache, "ab")
    cache.free("a")                                  # LRU: 1, 0
    cache.free("b")                                  # LRU: 1, 0, 3, 2
    u = cache.usage()
    assert (u.cached_blocks, u.free_blocks) == (4, 0)
    check_block_accounting(cache)
    assert cache.match_prefix(P8 + [0]).blocks == (0, 1)
    admit(cache, "c", [9] * 8)
    cache.extend("c", 8)                             # evicts 1 and 0: the copies take over
    assert cache.block_tables["c"] == [1, 0] and cache.block_pool.num_evictions == 2
    assert cache.match_prefix(P8 + [0]).blocks == (2, 3)
    assert admit(cache, "d", P8 + [0]) == 8
    check_block_accounting(cache)


@pytest.mark.parametrize("keep, hits", [(False, (4, 4)), (True, (8, 0))])
def test_a_kept_copy_changes_what_an_eviction_takes(keep, hits):
    # a and b compute P8 side by side (blocks 0, 1 and 2, 3), x computes [7] * 4 (block 4).
    # They finish a, x, b. One block per prefix: b's copies are freed, the LRU is 1, 0, 4, and
    # e's 3 blocks are 2, 3 and an eviction of 1: P8's first block and x's still hit. Copies
    # kept (vLLM): the LRU is 1, 0, 4, 3, 2, e evicts 1, 0 and 4: P8 hits whole through b's
    # copies, x's block is gone.
    cache = PagedKVCache(block_size=4, num_blocks=5, enable_prefix_caching=True,
                         keep_duplicate_blocks=keep)
    compute_p8_side_by_side(cache, "ab")
    admit(cache, "x", [7] * 4)
    cache.extend("x", 4)
    cache.cache_full_blocks("x", [7] * 4)
    for rid in "axb":
        cache.free(rid)
    assert cache.block_pool.cached_blocks == ([1, 0, 4, 3, 2] if keep else [1, 0, 4])
    admit(cache, "e", [9] * 12)
    cache.extend("e", 12)
    assert cache.block_tables["e"] == ([1, 0, 4] if keep else [2, 3, 1])
    assert (cache.cached_prefix_len(P8 + [0]), cache.cached_prefix_len([7] * 5)) == hits
    check_block_accounting(cache)


# ---------------------------------------------------------------------- through the scheduler
def test_a_fully_cached_prompt_still_computes_its_last_block():
    # "first" (prompt 8 = two full blocks, 3 new) runs alone: prefill in step 0, decodes in
    # steps 1-2; its two prompt blocks stay cached. "second", the same prompt at step 3, finds
    # both blocks, but the hit stops at floor((8 - 1) / 4) = 1 block: the last prompt token's
    # logits are needed, so it computes tokens 4-7 (its own copy of the 2nd block).
    sched, log = caching_scheduler()
    first = sched.add_request(Request("first", P8, 3))
    second = sched.add_request(Request("second", P8, 3, arrival_step=3))
    history = sched.run()
    assert log.lines == [
        "[step 0] decode=0 prefill=8 reqs=['first']",
        "[step 1] decode=1 prefill=0 reqs=['first']",
        "[step 2] decode=1 prefill=0 reqs=['first'] finished=['first']",
        "[step 3] decode=0 prefill=4 reqs=['second']",
        "[step 4] decode=1 prefill=0 reqs=['second']",
        "[step 5] decode=1 prefill=0 reqs=['second'] finished=['second']",
    ]
    assert history[3].prefill_chunks == (("second", 4, 4),)
    assert [s.cached_tokens for s in history] == [0, 0, 0, 4, 0, 0]
    assert (first.num_cached_prompt_tokens, second.num_cached_prompt_tokens) == (0, 4)
    assert first.generated == second.generated == reference_tokens(P8, 3)
    c = sched.counters
    assert (c.prompt_tokens, c.cached_prompt_tokens, c.prefix_hit_rate) == (16, 4, 0.25)
    # A prompt one token longer hits both blocks and computes just that token.
    third = sched.add_request(Request("third", P8 + [7], 2, arrival_step=6))
    history += sched.run()
    assert history[6].prefill_chunks == (("third", 8, 1),) and history[6].cached_tokens == 8
    assert third.generated == reference_tokens(P8 + [7], 2)
    assert sched.counters.prefix_hit_rate == (4 + 8) / (8 + 8 + 9)
    check_work(history, sched)


def test_prefix_caching_is_off_by_default():
    sched = Scheduler(MODEL, max_tokens_per_step=16, prefill_chunk_size=16, block_size=4)
    sched.add_request(Request("first", P8, 3))
    sched.add_request(Request("second", P8, 3, arrival_step=3))
    history = sched.run()
    assert history[3].prefill_chunks == (("second", 0, 8),)
    assert sched.counters.prefix_hit_rate == 0.0
    assert sched.kv_cache.usage().cached_blocks == 0


def test_requests_running_together_share_blocks_with_exact_reference_counts():
    # step 0: R1's 12-token prompt fills blocks 0-2 (registered after the step).
    # step 1: R1 decodes (block 3). R2 = P12[:8] + 3 tokens hits blocks 0, 1 and computes its
    #         3 tokens in block 4; R3 = P12 hits only 2 blocks (its last token must be computed)
    #         and recomputes tokens 8-11 into block 5. Blocks 0 and 1 have 3 owners.
    # step 2: R3 (2 new tokens) finishes: blocks 0, 1 down to 2 owners.
    sched, log = caching_scheduler()
    r1 = sched.add_request(Request("R1", P12, 6))
    r2 = sched.add_request(Request("R2", P8 + [60, 61, 62], 3, arrival_step=1))
    r3 = sched.add_request(Request("R3", P12, 2, arrival_step=1))
    history = sched.run(max_steps=2)
    cache = sched.kv_cache
    assert history[1].prefill_chunks == (("R2", 8, 3), ("R3", 8, 4))
    assert history[1].cached_tokens == 16
    assert cache.block_tables == {"R1": [0, 1, 2, 3], "R2": [0, 1, 4], "R3": [0, 1, 5]}
    assert cache.block_pool.ref_counts[:6] == [3, 3, 1, 1, 1, 1]
    assert (history[1].kv.used_blocks, history[1].kv.shared_blocks) == (6, 2)
    history.append(sched.step())
    assert r3.finished and cache.block_pool.ref_counts[:7] == [2, 2, 1, 1, 1, 0, 0]
    history += sched.run()
    for r in (r1, r2, r3):
        assert r.generated == reference_tokens(r.prompt, r.max_new_tokens)
    check_work(history, sched)
    # Left cached: every full block registered first: P12's 3, R2's 3rd, R1's 4th.
    u = cache.usage()
    assert (u.used_blocks, u.shared_blocks, u.cached_blocks) == (0, 0, 5)


def test_cached_blocks_outlive_their_owner_until_a_block_is_needed():
    # Pool of 4 blocks. R1 (prompt X, 1 new) finishes in step 0: X's 2 blocks stay cached.
    # R2 (prompt Y, step 1) takes the 2 free blocks: no eviction; it finishes: 4 cached.
    # R3 (4 tokens, 2 new, step 2) needs a block: the least recently used cached block goes,
    # X's tail (released before X's head); in step 3 its decode evicts X's head.
    # R4 (Y + 1 token, step 4) still finds Y's two blocks.
    X, Y, Z = P8, [8, 8, 7, 7, 6, 6, 5, 5], [40, 41, 42, 43]
    sched, log = caching_scheduler(num_blocks=4)
    pool, cache = sched.kv_cache.block_pool, sched.kv_cache
    sched.add_request(Request("R1", X, 1))
    sched.add_request(Request("R2", Y, 1, arrival_step=1))
    sched.add_request(Request("R3", Z, 2, arrival_step=2))
    r4 = sched.add_request(Request("R4", Y + [1], 1, arrival_step=4))
    seen = []
    for _ in range(5):
        stats = sched.step()
        seen.append((stats.kv.cached_blocks, stats.kv.free_blocks, pool.num_evictions,
                     cache.cached_prefix_len(X + [0]), cache.cached_prefix_len(Y + [0])))
    assert seen == [
        (2, 2, 0, 8, 0),       # step 0: R1 done, X cached
        (4, 0, 0, 8, 8),       # step 1: R2 used the free blocks, X survived
        (3, 0, 1, 4, 8),       # step 2: R3 evicted X's tail
        (3, 1, 2, 0, 8),       # step 3: R3's decode evicted X's head; R3 done
        (3, 1, 2, 0, 8),       # step 4: R4 reused Y's blocks and a free one, no eviction
    ]
    assert sched.run() == [] and r4.num_cached_prompt_tokens == 8
    assert r4.generated == reference_tokens(Y + [1], 1)


@pytest.mark.parametrize("fake_hash, hits", [("constant", [0, 0, 4, 4]), ("mod5", [0, 0, 4, 8])])
def test_hash_collisions_never_reuse_the_wrong_block(monkeypatch, fake_hash, hits):
    # Every block hashes alike (or to one of 5 values): a lookup finds *a* block, but its
    # tokens differ, so it is a miss, never a wrong reuse, and tokens stay exact.
    # constant: X's first block owns the only hash value; w's first block and v's and y's
    #   second blocks collide with it. mod5: v's second block [0, 0, 0, 0] collides with X's
    #   first (both hash to 4); w hashes apart; y finds both of X's blocks.
    fakes = {"constant": lambda parent, tokens: 42,
             "mod5": lambda parent, tokens: (sum(tokens) + (parent or 0)) % 5}
    monkeypatch.setattr(block_pool_module, "hash_block", fakes[fake_hash])
    sched, _ = caching_scheduler()
    pool = sched.kv_cache.block_pool
    lookup, collisions = pool.lookup, []

    def spy(parent_hash, tokens):                   # count lookups a collision turned down
        block = lookup(parent_hash, tokens)
        if block is None and fakes[fake_hash](parent_hash, tokens) in pool._table:
            collisions.append((parent_hash, tokens))
        return block

    pool.lookup = spy
    X, W = P8, [2, 7, 1, 8, 2, 8, 1, 8]
    reqs = [sched.add_request(Request("x", X, 2)),                    # registers X's blocks
            sched.add_request(Request("w", W, 2, arrival_step=3)),
            sched.add_request(Request("v", X[:4] + [0, 0, 0, 0, 0], 2, arrival_step=6)),
            sched.add_request(Request("y", X + [1], 2, arrival_step=9))]
    history = sched.run()
    after_x0 = fakes[fake_hash](None, tuple(X[:4]))          # the name of X's first block
    assert collisions and (after_x0, (0, 0, 0, 0)) in collisions   # v's 2nd block after it
    assert [r.num_cached_prompt_tokens for r in reqs] == hits
    for r in reqs:
        assert r.generated == reference_tokens(r.prompt, r.max_new_tokens), r.req_id
    check_work(history, sched)


@pytest.mark.parametrize("policy", ["decode_first", "vllm_v1"])    # vllm_v1 keeps copies
@pytest.mark.parametrize("fake_hash", [None, "constant", "mod3"])
@pytest.mark.parametrize("seed", [8, 9, 10, 11])
def test_tokens_unchanged_with_prefix_caching_tight_pools_and_collisions(monkeypatch, seed,
                                                                         fake_hash, policy):
    if fake_hash:
        fake = (lambda p, t: 0) if fake_hash == "constant" else (lambda p, t: sum(t) % 3)
        monkeypatch.setattr(block_pool_module, "hash_block", fake)
    specs = make_prefix_workload(seed)
    pool = max(-(-(len(p) + n - 1) // 2) for _, p, n, _ in specs)
    for num_blocks in (pool, None):
        sched, history = run_workload(specs, plugins=[AccountingChecker()], max_tokens_per_step=6,
                                      prefill_chunk_size=4, block_size=2, num_blocks=num_blocks,
                                      enable_prefix_caching=True, policy=policy)
        for rid, prompt, n, _ in specs:
            assert sched.requests[rid].generated == reference_tokens(prompt, n)
        check_work(history, sched)
        assert sched.kv_cache.usage().used_blocks == 0
        if num_blocks is None and fake_hash is None:
            assert sched.counters.cached_prompt_tokens > 0


def test_a_preempted_request_resumes_from_its_cached_prefix():
    # test_preemption's hand-traced run (A, B: prompt 4, 6 new; C: prompt 2, 2 new at step 3;
    # 4 blocks of 4), now with prefix caching. Until step 5 nothing changes. In step 5 B is
    # preempted: its 2 full blocks (1: prompt, 3: tokens 4-7) become cached, tail first, and
    # A's decode evicts block 3. In step 6 B's prompt block still hits: B restarts at token 4,
    # not 0; C's chunk evicts A's 2nd block (the least recently used). In step 7 B's last
    # token (8) evicts block 0 and B samples its 6th token: one step earlier than without
    # the cache.
    from test_preemption import ABC_LOG, abc_scheduler
    sched, log, (a, b, c) = abc_scheduler(enable_prefix_caching=True)
    history = sched.run()
    assert log.lines == ABC_LOG[:6] + [
        "[step 6] decode=0 prefill=6 reqs=['B', 'C']",
        "[step 7] decode=1 prefill=1 reqs=['C', 'B'] finished=['C', 'B']",
    ]
    assert history[6].prefill_chunks == (("B", 4, 4), ("C", 0, 2))
    assert history[6].cached_tokens == 4 and sched.kv_cache.block_pool.num_evictions == 3
    assert sched.counters.cached_prompt_tokens == 0       # the hit was on a re-admission
    for r in (a, b, c):
        assert r.generated == reference_tokens(r.prompt, r.max_new_tokens)
    check_work(history, sched)


def test_prefix_hit_rate_counts_first_admissions_of_prompt_tokens():
    # Four requests sharing P12 (blocks of 4), admitted one step apart, one step each:
    # R0 computes everything (hit 0 of 12), R1 = P12 hits 8 of 12, R2 = P12[:8] + 4 hits 8 of
    # 12, R3 = P12 + 4 tokens hits 12 of 16. Rate = 28 / 52.
    sched, _ = caching_scheduler()
    prompts = [P12, P12, P8 + [9, 9, 9, 9], P12 + [1, 2, 3, 4]]
    reqs = [sched.add_request(Request(f"R{i}", p, 1, arrival_step=i))
            for i, p in enumerate(prompts)]
    history = sched.run()
    assert [r.num_cached_prompt_tokens for r in reqs] == [0, 8, 8, 12]
    assert [s.cached_tokens for s in history] == [0, 8, 8, 12]
    c = sched.counters
    assert (c.prompt_tokens, c.cached_prompt_tokens) == (52, 28)
    assert c.prefix_hit_rate == pytest.approx(28 / 52)
    for r in reqs:
        assert r.generated == reference_tokens(r.prompt, 1)
    idle = Scheduler(None, max_tokens_per_step=1, prefill_chunk_size=1)
    assert idle.counters.prefix_hit_rate == 0.0               # nothing admitted: no division
