"""Where a decode step's time goes: TinyLLM's ``forward_step``, part by part, alone and batched.

    python benchmarks/profile_decode_step.py [--batch 32] [--repeats 5] [--float32]

Runs the workload of ``run_all.py``'s decode speed-up (``--batch`` requests, prompts of 8
tokens, 24 new tokens each) once with every request decoding together and once one request
at a time, and times each part of the model's step in the decode-only steps. It prints, per
part, the microseconds of one step with one request, of one step with all of them, and what
each extra request in the batch adds; then what the speed-up target asks of the batched step.

A part's time excludes the parts it calls (``layer norms`` are not counted again inside ``QKV``).
The timers wrap functions, so they add about a microsecond per call to every part: compare
parts with each other, and take the whole step's speed-up from ``run_all.py``. Wall-clock
time, medians over ``--repeats`` runs, BLAS threading off as in ``run_all.py``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from part_timer import PartTimer  # noqa: E402
from run_all import TARGETS, decode_scheduler  # noqa: E402  (also sets the BLAS threads)

import numpy as np  # noqa: E402

from cblab_src import TinyLLM  # noqa: E402
from cblab_src.model import step_layout, tiny_llm  # noqa: E402
from cblab_src.model.step_layout import StepLayout  # noqa: E402

# (where the function lives, its name, what the table calls it): every part of forward_step
PARTS = (
    (tiny_llm.TinyLLM, "embed", "embedding lookups"),
    (StepLayout, "of", "step layout (block tables, slots)"),
    (tiny_llm, "layer_norm", "layer norms (5)"),
    (tiny_llm.TinyLLM, "qkv", "QKV projection (1 matmul) + split"),
    (StepLayout, "write", "K/V write (1 scatter a layer)"),
    (step_layout, "gather_contexts", "K/V gather of the contexts"),
    (step_layout, "decode_attention", "decode attention"),
    (StepLayout, "attend", "attention's placing of rows"),
    (tiny_llm, "gelu", "GELU"),
    (tiny_llm.TinyLLM, "finish_layer", "out, up, down (3 matmuls) + residuals"),
    (tiny_llm.TinyLLM, "lm_head", "LM head (1 matmul)"),
    (tiny_llm.TinyLLM, "forward_step", "rest: batch arrays, Python"),
)
MATMULS_AND_GATHERS = ("QKV projection (1 matmul) + split", "K/V gather of the contexts",
                       "out, up, down (3 matmuls) + residuals", "LM head (1 matmul)")


def profile(model, batch: int, concurrent: bool) -> tuple[dict[str, float], float]:
    """Microseconds per decode-only step of each part, and decode tokens per such step."""
    sched = decode_scheduler(model, batch, concurrent, prompt_len=8, new_tokens=24)
    totals, steps, tokens = defaultdict(float), 0, 0
    timer = PartTimer()
    with timer.installed(PARTS):
        while sched.has_unfinished:
            timer.seconds.clear()
            stats = sched.step()
            if not stats.prefill_chunks:            # decode-only steps, as run_all.py counts
                steps, tokens = steps + 1, tokens + len(stats.decode_ids)
                for label, seconds in timer.seconds.items():
                    totals[label] += seconds
    return {label: 1e6 * totals[label] / steps for _, _, label in PARTS}, tokens / steps


def median_profile(model, batch: int, concurrent: bool, repeats: int) -> tuple[dict, float]:
    runs = [profile(model, batch, concurrent) for _ in range(repeats)]
    parts = {label: statistics.median(run[label] for run, _ in runs) for _, _, label in PARTS}
    return parts, runs[0][1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=32, help="requests decoding together")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each, medians")
    parser.add_argument("--float32", action="store_true", help="TinyLLM(dtype=np.float32)")
    args = parser.parse_args(argv)
    model = TinyLLM(seed=0, dtype=np.float32 if args.float32 else np.float64)
    alone, _ = median_profile(model, args.batch, False, args.repeats)
    together, width = median_profile(model, args.batch, True, args.repeats)
    extra = width - 1

    print(f"{model!r}: decode-only steps, {args.batch} requests, contexts of 9 to 32 tokens")
    print(f"(together, a decode-only step holds {width:.1f} requests on average: they start "
          f"and finish a few steps apart)")
    print(f"{'part':<40}{'1 request':>11}{f'{width:.0f} together':>13}{'each extra':>12}")
    print(f"{'':<40}{'us/step':>11}{'us/step':>13}{'us':>12}")
    for _, _, label in PARTS:
        print(f"{label:<40}{alone[label]:11.1f}{together[label]:13.1f}"
              f"{(together[label] - alone[label]) / extra:12.2f}")
    one, many = sum(alone.values()), sum(together.values())
    print(f"{'whole forward_step':<40}{one:11.1f}{many:13.1f}{(many - one) / extra:12.2f}")

    target = TARGETS["decode_speedup_32"][1]
    floor = one + sum(together[p] - alone[p] for p in MATMULS_AND_GATHERS)
    print(f"\nspeed-up here: {width:.0f} x {one:.0f} / {many:.0f} = {width * one / many:.1f}x "
          f"(timers included; run_all.py measures it without them)")
    print(f"{target:g}x needs the batched step at most {width:.0f}/{target:g} x {one:.0f} = "
          f"{width * one / target:.0f} us.")
    print(f"The lone step plus what the matmuls and K/V gathers alone add for the other "
          f"{extra:.0f} requests: {floor:.0f} us, {width * one / floor:.1f}x if every other part "
          f"cost no more batched than alone.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
