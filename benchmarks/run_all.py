"""Benchmarks of the lab itself: how fast its sliders, simulations, model and notebooks are.

    python benchmarks/run_all.py [--quick] [--json FILE]

Prints one line per figure (median over repeated runs, with its unit and target) and, with
``--json``, writes them with these keys at top level: ``slider_latency_ms`` (the slowest
explorer's median), ``sim_10k_requests_s``, ``concurrency_scaling`` (1k-64k requests running
at once, time per request-step: flat means linear), ``decode_speedup_32`` (plus
``decode_speedup_curve`` for 1-128 requests and ``decode_speedup_32_float32``),
``pretrained_load_ms`` (``TinyLLM.pretrained()`` from disk to a ready model) and
``nbval_seconds``. ``--quick`` runs fewer
repeats and times a subset of the notebooks (it says which).

These measure this machine (2 cores, shared with other work): wall-clock numbers vary from run
to run, which is why each is a median, and the JSON records the load average when the run
started. Latencies (sliders, the 10k simulation) are wall-clock, what a reader waits; the
slider's CPU time is reported beside it. The decode speedup is a ratio of two throughputs of
this process, so it is measured in CPU time (other processes on the machine would otherwise
skew one side of the ratio), batched and one-at-a-time runs alternating. BLAS threading is
turned off (``OPENBLAS_NUM_THREADS=1``): the model's matrices are tiny, and on two busy cores
threads cost more than they give.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")      # before numpy is imported
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

# The course's own targets: a 10k-request simulation quick enough to sweep rates in a chapter;
# batching 32 decodes at least 12x faster than one at a time.
TARGETS = {"slider_latency_ms": ("<=", 100.0, "ms"), "sim_10k_requests_s": ("<=", 2.0, "s"),
           "decode_speedup_32": (">=", 12.0, "x"), "pretrained_load_ms": ("<=", 250.0, "ms"),
           "nbval_seconds": (None, None, "s")}


def median_time(fn, repeats: int, clock=time.perf_counter) -> float:
    """Median seconds (of ``clock``: wall by default) of ``repeats`` calls of ``fn``."""
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append(clock() - start)
    return statistics.median(times)


# ---------------------------------------------------------------------- slider latency
def slider_latency(repeats: int) -> tuple[dict[str, float], dict[str, float]]:
    """Median ms (wall, and CPU) of simulate + describe + draw + render (PNG) for each chapter
    explorer at its default settings: what one slider move costs (``Explorer.set`` does these)."""
    from cblab_src import widgets

    explorers = {
        "ragged (ch 2)": widgets.ragged_explorer,
        "budget (ch 3)": widgets.budget_explorer,
        "timeline (ch 4)": widgets.timeline_explorer,
        "block pool (ch 5)": widgets.block_pool_explorer,
        "preemption (ch 10)": widgets.preemption_explorer,
        "prefix (ch 10)": widgets.prefix_explorer,
    }
    wall, cpu = {}, {}
    for name, make in explorers.items():
        ex = make()

        def move():
            result = ex.simulate(**ex.params)
            ex.describe(result)
            ex.render(result)

        move()                                                   # warm-up
        wall[name] = 1000 * median_time(move, repeats)
        cpu[name] = 1000 * median_time(move, repeats, time.process_time)
    return wall, cpu


# ---------------------------------------------------------------------- 10k requests
def sim_10k_knobs() -> dict:
    """The scheduler of the 10k run: an H200-sized KV pool with vLLM's default limits (8192
    tokens and 256 requests per step)."""
    from cblab_src.costmodel import kv_capacity_tokens

    return dict(max_tokens_per_step=8192, prefill_chunk_size=8192, max_num_seqs=256,
                num_blocks=kv_capacity_tokens() // 16)


def sim_10k(repeats: int) -> dict:
    """Scheduling-only run of 10 000 ShareGPT-like requests (all at once) under
    :func:`sim_10k_knobs`."""
    from cblab_src.simulate import simulate_schedule
    from cblab_src.workloads import SHAREGPT, synthetic_workload

    start = time.perf_counter()
    workload = synthetic_workload(10_000, SHAREGPT, seed=0)
    generate_s = time.perf_counter() - start
    knobs = sim_10k_knobs()
    runs = []

    def run():
        runs.append(simulate_schedule(workload, **knobs))

    seconds = median_time(run, repeats)
    r = runs[-1]
    return {"seconds": seconds, "workload_seconds": generate_s, "steps": r.num_steps,
            "decode_tokens": sum(len(s.decode_ids) for s in r.history),
            "prefill_tokens": sum(s.num_prefill_tokens for s in r.history), **knobs}


def concurrency_scaling(sizes=(1_000, 4_000, 16_000, 64_000)) -> dict:
    """Scheduling-only runs with ``n`` requests running at once (1-token prompts, 8 new
    tokens each, all admitted in step 0): time per step should grow linearly with ``n``, since
    finishing a request costs O(1) (the running list is filtered once per step, not searched
    once per finish). Returns ``{n: {"seconds", "us_per_request_step"}}``."""
    from cblab_src.simulate import simulate_schedule
    from cblab_src.workloads import Workload

    out = {}
    for n in sizes:
        workload = Workload.from_lengths([1] * n, 8)
        start = time.perf_counter()
        run = simulate_schedule(workload, max_tokens_per_step=n, prefill_chunk_size=1,
                                block_size=16, keep_finished=None)
        seconds = time.perf_counter() - start
        out[str(n)] = {"seconds": seconds, "steps": run.num_steps,
                       "us_per_request_step": 1e6 * seconds / (n * run.num_steps)}
    return out


# ---------------------------------------------------------------------- decode speedup
class _TimedModel:
    """Wraps a model and adds up the CPU time of its ``forward_step`` calls."""

    def __init__(self, model):
        self.model, self.seconds = model, 0.0

    def __getattr__(self, name):
        return getattr(self.model, name)

    def forward_step(self, *args, **kwargs):
        start = time.process_time()
        out = self.model.forward_step(*args, **kwargs)
        self.seconds += time.process_time() - start
        return out


def decode_scheduler(model, batch: int, concurrent: bool, prompt_len: int, new_tokens: int):
    """A scheduler holding ``batch`` requests of ``prompt_len`` random (seeded) prompt tokens and
    ``new_tokens`` new ones, which decode together (``concurrent``) or one at a time
    (``max_num_seqs=1``)."""
    from cblab_src import Request, Scheduler

    rng = np.random.default_rng(0)
    sched = Scheduler(model, max_tokens_per_step=max(batch, prompt_len) * 2,
                      prefill_chunk_size=prompt_len, max_num_seqs=None if concurrent else 1)
    for i in range(batch):
        sched.add_request(Request(i, rng.integers(0, model.vocab_size, prompt_len).tolist(),
                                  new_tokens))
    return sched


def decode_throughput(batch: int, concurrent: bool, prompt_len: int, new_tokens: int,
                      model) -> tuple[float, float]:
    """Decode tokens per CPU-second of ``batch`` requests with ``TinyLLM``: all decoded
    together (one step holds every request's token) or one request at a time
    (``max_num_seqs=1``). Only decode-only steps count. Returns ``(model, step)``: the
    model's ``forward_step`` alone, and the whole scheduler step (scheduling, batch layout,
    sampling and bookkeeping included)."""
    timed = _TimedModel(model)
    sched = decode_scheduler(timed, batch, concurrent, prompt_len, new_tokens)
    step_s, model_s, tokens = 0.0, 0.0, 0
    while sched.has_unfinished:
        before, start = timed.seconds, time.process_time()
        stats = sched.step()
        elapsed = time.process_time() - start
        if not stats.prefill_chunks:
            step_s += elapsed
            model_s += timed.seconds - before
            tokens += len(stats.decode_ids)
    return tokens / model_s, tokens / step_s


def decode_speedup(batches, repeats: int, prompt_len: int = 8, new_tokens: int = 24,
                   dtype=np.float64) -> dict:
    """Per batch size, medians over ``repeats`` of the batched / one-at-a-time decode
    throughput of the numpy model (``speedup``) and of the whole scheduler step
    (``step_speedup``). Prompts of ``prompt_len`` tokens, ``new_tokens`` each: by default
    contexts of 9 to 32 tokens, the size of the book's workloads (prompts of 3 to 30 tokens).
    Longer contexts lower the speedup: every decode token reads its own context, which
    batching does not share (as on a GPU). ``dtype``: the model's (float32 halves the bytes
    each batched token moves; a lone token's step costs about the same in both)."""
    from cblab_src import TinyLLM

    model = TinyLLM(seed=0, dtype=dtype)
    curve = {}
    for b in batches:
        rows = []
        for _ in range(repeats):
            together = decode_throughput(b, True, prompt_len, new_tokens, model)
            single = decode_throughput(b, False, prompt_len, new_tokens, model)
            rows.append((together[0] / single[0], together[1] / single[1], together[0],
                         single[0], together[1], single[1]))
        med = [statistics.median(col) for col in zip(*rows)]
        curve[str(b)] = {"speedup": med[0], "step_speedup": med[1],
                         "batched_tok_s": med[2], "one_at_a_time_tok_s": med[3],
                         "batched_step_tok_s": med[4], "one_at_a_time_step_tok_s": med[5]}
    return curve


# ---------------------------------------------------------------------- pretrained model
def pretrained_load(repeats: int) -> float:
    """Median wall ms of ``TinyLLM.pretrained()``: read the card and weights, build the model."""
    from cblab_src import TinyLLM

    return 1e3 * median_time(TinyLLM.pretrained, repeats)


# ---------------------------------------------------------------------- notebooks
def nbval(quick: bool) -> dict:
    """Wall time of the notebook suite under nbval, as the test command runs it."""
    books = sorted((ROOT / "book").glob("*.ipynb"))
    if quick:
        books = books[:3]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "pytest", "-q", "-o", "addopts=", "-p", "no:cacheprovider",
           "--nbval", "--nbval-current-env", "--nbval-sanitize-with",
           str(ROOT / "tests" / "nbval_sanitize.cfg"), *map(str, books)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    tail = [line for line in proc.stdout.splitlines() if line.strip()][-1:] or [""]
    return {"seconds": seconds, "exit_code": proc.returncode, "summary": tail[0],
            "notebooks": [b.name for b in books], "subset": quick}


# ---------------------------------------------------------------------- report
def verdict(key: str, value: float) -> str:
    op, target, unit = TARGETS[key]
    if op is None:
        return "(no target)"
    ok = value <= target if op == "<=" else value >= target
    return f"target {op} {target:g} {unit}: {'met' if ok else 'MISSED'}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, a notebook subset")
    parser.add_argument("--json", type=Path, help="write the results to this file")
    parser.add_argument("--skip-nbval", action="store_true", help="do not run the notebooks")
    args = parser.parse_args(argv)
    repeats = 3 if args.quick else 5

    results: dict = {"quick": args.quick, "machine": {"python": platform.python_version(),
                                                      "numpy": np.__version__,
                                                      "cpus": os.cpu_count()}}
    results["load_average_at_start"] = os.getloadavg()
    sliders, sliders_cpu = slider_latency(repeats)
    results["slider_latency_ms"] = max(sliders.values())
    results["slider_latency_ms_by_explorer"] = sliders
    results["slider_cpu_ms_by_explorer"] = sliders_cpu
    for name, ms in sliders.items():
        print(f"slider_latency_ms  {name:<20} {ms:7.1f} ms   (cpu {sliders_cpu[name]:.1f} ms)")
    print(f"slider_latency_ms  {'(slowest)':<20} {results['slider_latency_ms']:7.1f} ms   "
          f"{verdict('slider_latency_ms', results['slider_latency_ms'])}")

    sim = sim_10k(1 if args.quick else 3)
    results["sim_10k_requests_s"] = sim["seconds"]
    results["sim_10k_details"] = sim
    print(f"sim_10k_requests_s {sim['seconds']:7.2f} s   ({sim['steps']} steps, "
          f"{sim['decode_tokens']:,} decode tokens)   {verdict('sim_10k_requests_s', sim['seconds'])}")

    scaling = concurrency_scaling((1_000, 4_000, 16_000) if args.quick else
                                  (1_000, 4_000, 16_000, 64_000))
    results["concurrency_scaling"] = scaling
    for n, row in scaling.items():
        print(f"concurrency        {int(n):>6} running: {row['seconds']:6.2f} s, "
              f"{row['us_per_request_step']:.2f} us per request-step (flat = linear)")

    batches = (1, 8, 32, 128) if args.quick else (1, 2, 4, 8, 16, 32, 64, 128)
    curve = decode_speedup(batches, repeats)
    results["decode_speedup_32"] = curve["32"]["speedup"]
    results["decode_speedup_curve"] = curve
    results["decode_speedup_settings"] = "TinyLLM(seed=0) float64, prompts of 8 tokens, 24 new"
    long = decode_speedup((32,), repeats, prompt_len=64, new_tokens=32)["32"]
    results["decode_speedup_32_long_context"] = long
    for b, row in curve.items():
        print(f"decode_speedup     batch {b:>3}: model {row['speedup']:5.1f}x "
              f"({row['batched_tok_s']:,.0f} vs {row['one_at_a_time_tok_s']:,.0f} tokens/s), "
              f"whole step {row['step_speedup']:5.1f}x")
    print(f"decode_speedup     batch  32, contexts 65-96: model {long['speedup']:5.1f}x, "
          f"whole step {long['step_speedup']:5.1f}x")
    f32 = decode_speedup((32,), repeats, dtype=np.float32)["32"]    # the same guarantee
    results["decode_speedup_32_float32"] = f32
    print(f"decode_speedup     batch  32, TinyLLM(dtype=np.float32): model "
          f"{f32['speedup']:5.1f}x, whole step {f32['step_speedup']:5.1f}x")
    print(f"decode_speedup_32  {results['decode_speedup_32']:7.1f} x   "
          f"{verdict('decode_speedup_32', results['decode_speedup_32'])}")

    results["pretrained_load_ms"] = pretrained_load(repeats)
    print(f"pretrained_load_ms {results['pretrained_load_ms']:7.1f} ms   "
          f"{verdict('pretrained_load_ms', results['pretrained_load_ms'])}")

    if args.skip_nbval:
        results["nbval_seconds"] = None
    else:
        nb = nbval(args.quick)
        results["nbval_seconds"] = nb["seconds"]
        results["nbval"] = nb
        subset = f"subset: {', '.join(nb['notebooks'])}" if nb["subset"] else "all notebooks"
        print(f"nbval_seconds      {nb['seconds']:7.1f} s   ({subset}; pytest: {nb['summary']})")

    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
