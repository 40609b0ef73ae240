"""Phase 3 (Prefill + Decode 混合): decode-first scheduling under a token budget.

Observe: one log line per step, ``[step s] decode=D prefill=P reqs=[...] finished=[...]``.
Running decodes take one token each first; what is left of the budget goes to prefill chunks
of at most ``--chunk`` tokens, in arrival order. A request finishes in the step that samples
its ``max_new_tokens``-th token. At the end every request's tokens equal those of generating
it alone with ``model.generate`` (batch invariance).

    python -m cblab_src.demos.demo_prefill_decode_mix --budget 8 --chunk 4 --requests 3
"""

from __future__ import annotations

import argparse

from ..core.scheduler import Scheduler
from ..model.tiny_llm import TinyLLM
from ..plugins.builtin import format_step
from ._common import make_workload, positive_int


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="demo_prefill_decode_mix",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--budget", type=positive_int, default=8, help="max_tokens_per_step")
    parser.add_argument("--chunk", type=positive_int, default=4, help="prefill_chunk_size")
    parser.add_argument("--requests", type=positive_int, default=3, help="number of requests")
    parser.add_argument("--max-new-tokens", type=positive_int, default=4,
                        help="tokens to generate per request")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random prompts")
    parser.add_argument("--layout", choices=["paged", "dense"], default="paged",
                        help="KV cache layout")
    parser.add_argument("--verbose", action="store_true",
                        help="also print each step's prefill chunks and sampled tokens")
    args = parser.parse_args(argv)

    model = TinyLLM()
    scheduler = Scheduler(model, max_tokens_per_step=args.budget, prefill_chunk_size=args.chunk,
                          kv_layout=args.layout)
    requests = make_workload(args.requests, args.seed, max_new_tokens=args.max_new_tokens)
    for r in requests:
        scheduler.add_request(r)
        print(f"request {r.req_id}: prompt {r.prompt_len} tokens, "
              f"max_new_tokens {r.max_new_tokens}")
    print(f"budget {args.budget} tokens/step, chunk {args.chunk}, KV layout {args.layout}\n")

    for stats in scheduler.run():
        print(format_step(stats))
        if args.verbose:
            print(f"    chunks (req, start, len)={list(stats.prefill_chunks)} "
                  f"sampled (req, token)={list(stats.sampled)}")

    print()
    all_same = True
    for r in requests:
        reference = model.generate(r.prompt, r.max_new_tokens)
        all_same &= r.generated == reference
        print(f"request {r.req_id}: tokens {r.generated}  model.generate: {reference}  "
              f"equal: {r.generated == reference}")
    print(f"all requests match generating alone: {all_same}")
    return 0 if all_same else 1


if __name__ == "__main__":
    raise SystemExit(main())
