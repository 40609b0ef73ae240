"""Phase 2 (Ragged batching): several prompts packed end to end, with no padding.

Observe: the token table gives every token its request and its position in that request;
the ragged causal mask lets a token see only earlier tokens *of its own request* (blocks on
the diagonal, each lower-triangular); and a padded batch would have wasted slots.

    python -m cblab_src.demos.demo_ragged_mask --lengths 2 3 4 --seed 0
"""

from __future__ import annotations

import argparse
import string

import numpy as np

from ..core.batch_builder import build_batch, padding_waste, ragged_causal_mask
from ._common import draw_mask, positive_int, random_prompt


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="demo_ragged_mask", description=__doc__.split("\n")[0])
    parser.add_argument("--lengths", type=positive_int, nargs="+", default=[2, 3, 4],
                        help="prompt length of each request (at most 26 requests)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random prompts")
    args = parser.parse_args(argv)
    if len(args.lengths) > 26:
        parser.error(f"at most 26 requests (named A..Z), got {len(args.lengths)}")

    rng = np.random.default_rng(args.seed)
    names = string.ascii_uppercase[:len(args.lengths)]
    # (req_id, tokens, start_pos, samples): whole prompts, each from position 0
    batch = build_batch([(name, random_prompt(rng, n), 0, True)
                         for name, n in zip(names, args.lengths)])

    print(f"{len(args.lengths)} requests, lengths {args.lengths}: "
          f"{batch.num_tokens} tokens in one ragged batch")
    w = max(len(str(t)) for t in batch.token_ids.tolist())
    print("\ntoken table")
    print("  index  : " + " ".join(str(i).rjust(w) for i in range(batch.num_tokens)))
    print("  req_id : " + " ".join(str(r).rjust(w) for r in batch.req_ids))
    print("  pos    : " + " ".join(str(p).rjust(w) for p in batch.positions.tolist()))
    print("  token  : " + " ".join(str(t).rjust(w) for t in batch.token_ids.tolist()))
    print(f"  cu_seqlens: {batch.cu_seqlens.tolist()}")

    print("\nragged causal mask (■ = query row may attend to key column):")
    labels = [f"{r}{p}" for r, p in batch.token_table]
    print(draw_mask(ragged_causal_mask(batch.req_ids, batch.positions), labels))

    waste = padding_waste(args.lengths)
    slots = len(args.lengths) * max(args.lengths)
    print(f"\npadding_waste: a padded batch would hold {len(args.lengths)} x {max(args.lengths)} "
          f"= {slots} slots for {sum(args.lengths)} tokens, wasting {waste}; "
          f"the ragged batch wastes 0")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
