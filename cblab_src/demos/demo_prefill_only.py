"""Phase 1 (Prefill 基础): one prompt through a dense prefill.

Observe: prefill only builds K/V — every layer caches exactly one K/V row per prompt token;
the attention is dense causal (token i sees tokens 0..i); and the first generated token is the
argmax of the *last* position's logits, the same token ``model.generate(prompt, 1)`` returns.

    python -m cblab_src.demos.demo_prefill_only --prompt-len 6 --seed 0
"""

from __future__ import annotations

import argparse

import numpy as np

from ..attention.dense_attention import causal_mask
from ..model.tiny_llm import TinyLLM
from ._common import draw_mask, positive_int, random_prompt


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="demo_prefill_only", description=__doc__.split("\n")[0])
    parser.add_argument("--prompt-len", type=positive_int, default=6, help="prompt tokens")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random prompt")
    args = parser.parse_args(argv)

    model = TinyLLM()
    prompt = random_prompt(np.random.default_rng(args.seed), args.prompt_len, model.vocab_size)
    out = model.forward_prefill_dense(prompt)
    print(f"prompt ({len(prompt)} tokens): {prompt}")

    for layer, k in enumerate(out.keys):
        print(f"layer {layer}: KV length {k.shape[0]} == prompt length {len(prompt)}: "
              f"{k.shape[0] == len(prompt)}")

    print("\ndense causal mask (row = query position, column = key position):")
    print(draw_mask(causal_mask(len(prompt))))

    first = int(np.argmax(out.logits[-1]))
    reference = model.generate(prompt, 1)
    same = reference == [first]
    print(f"\nlogits shape {out.logits.shape}: one row per position, row t predicts token t+1")
    print(f"first token = argmax(logits[-1]) = {first}")
    print(f"model.generate(prompt, 1) = {reference}  equal: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
