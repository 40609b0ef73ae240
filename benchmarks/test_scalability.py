"""Scalability sweep (the roadmap's ``python benchmarks/test_scalability.py``, used by chapter 9).

    python benchmarks/test_scalability.py [--quick] [--out DIR]

Runs the scheduler (scheduling only) over three sweeps, one knob at a time around a base
setting, and reports for each run its throughput and latency twice: in steps (what the engine
counts) and in milliseconds under the measured H200 cost model (what a user would see):

* number of requests (ShareGPT-like lengths, all arriving at once);
* prompt length (fixed prompts, 256 output tokens each);
* token budget ``max_tokens_per_step`` (chunk = budget).

It also times the simulation itself (seconds of this machine). Writes
``results/scalability.md`` (a markdown table) and ``results/scalability.png`` (the figure) next
to this file, and prints where. Not a test: pytest never collects it (no test functions).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


from cblab_src.costmodel import H200_LLAMA3_8B, kv_capacity_tokens  # noqa: E402
from cblab_src.simulate import simulate_schedule  # noqa: E402
from cblab_src.workloads import SHAREGPT, LengthDist, WorkloadShape, synthetic_workload  # noqa: E402


@dataclass(frozen=True)
class Point:
    """One run of a sweep."""

    sweep: str
    setting: int
    requests: int
    steps: int
    tokens_per_step: float
    mean_ttft_steps: float
    mean_tpot_steps: float
    throughput_tok_s: float      # output tokens per second under the H200 cost model
    ttft_p50_ms: float
    itl_p99_ms: float
    sim_seconds: float           # wall time of the simulation on this machine


def run_point(sweep: str, setting: int, workload, budget: int) -> Point:
    start = time.perf_counter()
    run = simulate_schedule(workload, max_tokens_per_step=budget, prefill_chunk_size=budget,
                            num_blocks=kv_capacity_tokens() // 16)
    seconds = time.perf_counter() - start
    steps = run.summary()
    ms = run.timed(H200_LLAMA3_8B).summary()
    return Point(sweep, setting, len(workload), run.num_steps, run.tokens_per_step,
                 steps["mean_ttft"], steps["mean_tpot"], ms.throughput_tok_s, ms.ttft.p50,
                 ms.itl.p99, seconds)


def sweeps(quick: bool) -> list[Point]:
    base_n, base_budget = (300, 1024) if quick else (1000, 1024)
    points = []
    for n in ((100, 300, 1000) if quick else (100, 300, 1000, 3000, 10000)):
        points.append(run_point("requests", n, synthetic_workload(n, SHAREGPT, seed=0),
                                base_budget))
    for p in ((128, 1024) if quick else (64, 256, 1024, 4096)):
        shape = WorkloadShape(LengthDist.fixed(p), LengthDist.fixed(256))
        points.append(run_point("prompt length", p, synthetic_workload(base_n, shape, seed=0),
                                base_budget))
    workload = synthetic_workload(base_n, SHAREGPT, seed=0)
    for b in ((128, 1024, 8192) if quick else (64, 256, 1024, 4096, 16384)):
        points.append(run_point("token budget", b, workload, b))
    return points


def markdown(points: list[Point]) -> str:
    head = ("| sweep | setting | requests | steps | tokens/step | mean TTFT (steps) | "
            "mean TPOT (steps) | throughput (tok/s, H200) | TTFT p50 (ms) | ITL p99 (ms) | "
            "simulated in (s) |")
    lines = [head, "|" + "---|" * 11]
    for p in points:
        lines.append(f"| {p.sweep} | {p.setting} | {p.requests} | {p.steps} | "
                     f"{p.tokens_per_step:.1f} | {p.mean_ttft_steps:.1f} | {p.mean_tpot_steps:.2f} | "
                     f"{p.throughput_tok_s:,.0f} | {p.ttft_p50_ms:,.0f} | {p.itl_p99_ms:.1f} | "
                     f"{p.sim_seconds:.2f} |")
    return "\n".join(lines) + "\n"


def figure(points: list[Point]):
    from matplotlib.figure import Figure

    names = list(dict.fromkeys(p.sweep for p in points))
    fig = Figure(figsize=(10, 5.6), layout="constrained")
    axes = fig.subplots(2, len(names))
    for col, name in enumerate(names):
        pts = [p for p in points if p.sweep == name]
        x = [p.setting for p in pts]
        top, bottom = axes[0, col], axes[1, col]
        top.plot(x, [p.throughput_tok_s for p in pts], marker="o", color="0.15",
                 label="tok/s (H200)")
        twin = top.twinx()
        twin.plot(x, [p.tokens_per_step for p in pts], marker="s", color="#1f77b4",
                  label="tokens/step")
        top.set_ylabel("output tokens/s (H200)")
        twin.set_ylabel("tokens per step", color="#1f77b4")
        bottom.plot(x, [p.ttft_p50_ms for p in pts], marker="o", color="#d62728",
                    label="TTFT p50 (ms)")
        bottom.plot(x, [p.itl_p99_ms for p in pts], marker="^", color="#2ca02c",
                    label="ITL p99 (ms)")
        bottom.set_yscale("log")
        bottom.set_ylabel("latency (ms, H200)")
        for ax in (top, bottom):
            ax.set_xscale("log", base=2)
            ax.set_xlabel(name)
            ax.grid(alpha=0.3)
        bottom.legend(fontsize=7, frameon=False)
    return fig


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sweeps")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    points = sweeps(args.quick)
    args.out.mkdir(parents=True, exist_ok=True)
    table = markdown(points)
    (args.out / "scalability.md").write_text(table)
    figure(points).savefig(args.out / "scalability.png", dpi=100)
    print(table)
    print(f"wrote {args.out / 'scalability.md'} and {args.out / 'scalability.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
