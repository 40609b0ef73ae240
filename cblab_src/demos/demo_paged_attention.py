"""Phase 5 (KV 布局): a paged KV cache, block by block, and paged attention checked against dense.

Observe: after the prefill step each request's cache holds its prompt (``len(cache)`` is the
sum of ``num_computed_tokens``); every decode step appends one token per request. Blocks of
``--block-size`` slots are taken from the shared pool only when a token needs one, lowest id
first; the unfilled tail of each request's last block is the only waste. A finished request
returns its blocks at once. Nothing is reserved: a request is admitted when the blocks of its
first chunk are available, so with a small ``--num-blocks`` the second request waits for
admission, or, admitted, is preempted when the first needs a block and none is free (its
blocks are freed and it later recomputes its prompt and the tokens it had generated). With
``--prefix-caching`` a finished or preempted request's full blocks stay cached (``~`` in the
pool) for reuse. After every step the K/V read through the block table equal those of a
dense prefill of the same tokens, and ``paged_attention`` over the pool equals dense attention
over those K/V.

    python -m cblab_src.demos.demo_paged_attention --block-size 4 --prompt-len 10 --num-blocks 8
    python -m cblab_src.demos.demo_paged_attention --prompt-len 4 --max-new-tokens 3 --num-blocks 2
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from ..attention.dense_attention import causal_mask, masked_attention
from ..attention.paged_attention import gather_kv, paged_attention
from ..core.request import Request
from ..core.scheduler import Scheduler
from ..model.tiny_llm import TinyLLM
from ..monitoring.pool_snapshot import block_owners, slot_fill
from ..plugins.builtin import format_step
from ._common import positive_int, random_prompt


def draw_pool(cache) -> str:
    """The pool as text, one ``|....|`` per block: the (first) owner's name in each filled
    slot, '·' in an empty slot of a used block (wasted), '~' in a block kept only for prefix
    reuse (cached, no owner), blank in a free block."""
    owners, fill = block_owners(cache), slot_fill(cache)
    blocks = []
    for block, (owner, row) in enumerate(zip(owners, fill)):
        if owner is None and cache.block_pool.hash_of(block) is not None:
            blocks.append("~" * cache.block_size)
        else:
            blocks.append("".join(str(owner)[0] if full else ("·" if owner is not None else " ")
                                  for full in row))
    return "|" + "|".join(blocks) + "|"


def check_request(model: TinyLLM, cache, req: Request,
                  rng: np.random.Generator) -> tuple[float, float]:
    """Max |difference|, over layers, between (a) the K/V read through the block table and a
    dense prefill's K/V of the same tokens, (b) ``paged_attention`` of a random query over the
    pool and dense attention of that query over the dense K/V."""
    length, table = cache.num_computed_tokens(req.req_id), cache.block_tables[req.req_id]
    ref = model.forward_prefill_dense((list(req.prompt) + req.generated)[:length])
    kv_diff = attn_diff = 0.0
    for layer in range(model.n_layers):
        k_pool, v_pool = cache.k_pool[layer], cache.v_pool[layer]
        for pool, dense in ((k_pool, ref.keys[layer]), (v_pool, ref.values[layer])):
            kv_diff = max(kv_diff, np.abs(gather_kv(pool, table, length) - dense).max())
        q = rng.standard_normal((1, model.n_heads, model.head_dim))        # one new query
        paged = paged_attention(q, k_pool, v_pool, table, length)
        dense = masked_attention(q, ref.keys[layer], ref.values[layer], causal_mask(1, length))
        attn_diff = max(attn_diff, np.abs(paged - dense).max())
    return float(kv_diff), float(attn_diff)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="demo_paged_attention",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--block-size", type=positive_int, default=4, help="slots per block")
    parser.add_argument("--prompt-len", type=positive_int, default=10, help="prompt tokens")
    parser.add_argument("--max-new-tokens", type=positive_int, default=4,
                        help="tokens to generate per request")
    parser.add_argument("--num-blocks", type=positive_int, default=8, help="blocks in the pool")
    parser.add_argument("--requests", type=int, choices=[1, 2], default=2, help="1 or 2 requests")
    parser.add_argument("--prefix-caching", action="store_true",
                        help="keep full blocks cached for reuse (enable_prefix_caching)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the prompts and queries")
    args = parser.parse_args(argv)

    model = TinyLLM()
    rng = np.random.default_rng(args.seed)
    # Budget and chunk large enough to prefill every prompt in step 0.
    scheduler = Scheduler(model, max_tokens_per_step=args.requests * args.prompt_len,
                          prefill_chunk_size=args.prompt_len, kv_layout="paged",
                          block_size=args.block_size, num_blocks=args.num_blocks,
                          enable_prefix_caching=args.prefix_caching)
    cache = scheduler.kv_cache
    try:
        for name in "AB"[:args.requests]:
            scheduler.add_request(Request(name, random_prompt(rng, args.prompt_len),
                                          args.max_new_tokens))
    except ValueError as err:        # a request that can never fit in the pool
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{args.requests} request(s) of {args.prompt_len} prompt tokens + "
          f"{args.max_new_tokens} new; pool of {args.num_blocks} blocks x {args.block_size} slots")

    all_ok = True
    while scheduler.has_unfinished:
        stats = scheduler.step()
        kv = stats.kv
        print(f"\n{format_step(stats)}")
        print(f"  len(cache) = {len(cache)}   blocks used {kv.used_blocks}/{kv.total_blocks}, "
              f"free {kv.free_blocks}, cached {kv.cached_blocks}, shared {kv.shared_blocks}, "
              f"wasted slots {kv.wasted_slots}")
        for rid in cache.req_ids:
            kv_diff, attn_diff = check_request(model, cache, scheduler.requests[rid], rng)
            ok = kv_diff < 1e-12 and attn_diff < 1e-12
            all_ok &= ok
            print(f"  {rid}: num_computed_tokens {cache.num_computed_tokens(rid):>3}  "
                  f"block_table {cache.block_tables[rid]}"
                  f"  paged == dense: {ok} "
                  f"(K/V diff {kv_diff:.1e}, attention diff {attn_diff:.1e})")
        for rid in stats.finished_ids:
            print(f"  {rid}: finished, its blocks are back in the pool")
        for p in stats.preemptions:
            print(f"  {p.req_id}: preempted ({p.reason()}): its KV ({p.recomputed_tokens} "
                  f"tokens) is released")
        for r in scheduler.waiting_after(stats.step_id):
            if r.num_preemptions:
                print(f"  {r.req_id}: waiting to resume: its prompt and {r.num_generated} "
                      f"generated token(s) will be prefilled again")
            else:
                first = cache.blocks_for(min(scheduler.prefill_chunk_size, r.prompt_len))
                print(f"  {r.req_id}: waiting for admission: its first chunk needs {first} "
                      f"block(s), {cache.num_available_blocks} available")
        print(f"  pool {draw_pool(cache)}")

    counters = scheduler.counters
    print(f"\npreemptions: {counters.preemptions}, tokens recomputed: "
          f"{counters.recomputed_tokens}, prefix hit rate: {counters.prefix_hit_rate:.0%}")
    print(f"paged attention matched dense attention after every step: {all_ok}")
    return 0 if all_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
