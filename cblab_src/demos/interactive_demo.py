"""Phase 9 (监控与性能分析, 实时监控): a live terminal monitor of a running workload.

Observe: requests arrive over time (Poisson gaps from a seeded rng, added up front with
future ``arrival_step``s), queue while the budget or the KV pool is full, are preempted (and
later recompute) when the pool runs out mid-generation, and leave when they finish. Each frame
shows the step's decode and prefill tokens against the budget, the queue, the running
requests, the KV blocks in use (and those kept for prefix reuse with ``--prefix-caching``),
the preemptions so far, and the throughput in tokens per step and in wall-clock tokens/s from
a :class:`MetricsCollector` (engine time only: the pauses between frames are not counted, so
the figure changes from machine to machine, nothing else does).

The frame is redrawn in place with ANSI escape codes; with ``--no-ansi``, or when stdout is
not a terminal, it prints one line per step instead. Ctrl-C stops it.

    python -m cblab_src.demos.interactive_demo --requests 12 --budget 16 --delay 0.1
"""

from __future__ import annotations

import argparse
import sys
import time

from ..core.scheduler import Scheduler
from ..model.tiny_llm import TinyLLM
from ..monitoring.metrics import MetricsCollector
from ..plugins.builtin import MetricsPlugin, format_step
from ._common import bar, make_workload, non_negative_int, positive_int, sparkline

HOME, CLEAR, ERASE_LINE, ERASE_DOWN = "\x1b[H", "\x1b[2J", "\x1b[K", "\x1b[J"
HIDE_CURSOR, SHOW_CURSOR = "\x1b[?25l", "\x1b[?25h"
GREEN, YELLOW, CYAN, BOLD, RESET = "\x1b[32m", "\x1b[33m", "\x1b[36m", "\x1b[1m", "\x1b[0m"


class PausableClock:
    """``time.perf_counter`` minus the time spent in :meth:`sleep`: a clock of engine work."""

    def __init__(self) -> None:
        self.paused = 0.0

    def __call__(self) -> float:
        return time.perf_counter() - self.paused

    def sleep(self, seconds: float) -> None:
        start = time.perf_counter()
        time.sleep(seconds)
        self.paused += time.perf_counter() - start


def status_line(scheduler: Scheduler, stats) -> str:
    """The ``--no-ansi`` output: ``format_step`` (with this step's preemptions) plus queue and
    KV figures."""
    kv = stats.kv
    return (f"{format_step(stats)} waiting={stats.num_waiting} running={stats.num_running} "
            f"kv_blocks={kv.used_blocks}/{kv.total_blocks}")


def dashboard(scheduler: Scheduler, stats, collector: MetricsCollector, color: bool) -> str:
    """One frame of the monitor, as text (ANSI colours if ``color``)."""
    def paint(code, text):
        return f"{code}{text}{RESET}" if color else text

    budget, kv, counters = scheduler.max_tokens_per_step, stats.kv, scheduler.counters
    decode, prefill = stats.num_decode_tokens, stats.num_prefill_tokens
    summary = collector.get_step_summary()
    recent = [s.num_tokens for s in collector.steps[-40:]]
    not_arrived = sum(r.arrival_step > stats.step_id for r in scheduler.active)
    return "\n".join([
        paint(BOLD, f"cblab live monitor   step {stats.step_id}") +
        f"   (budget {budget}, chunk {scheduler.prefill_chunk_size}, "
        f"block size {scheduler.kv_cache.block_size})",
        "",
        f"decode   {paint(GREEN, bar(decode, budget))} {decode:>4} tokens",
        f"prefill  {paint(YELLOW, bar(prefill, budget))} {prefill:>4} tokens",
        f"history  {sparkline(recent, budget)}  (tokens per step, last {len(recent)} steps)",
        "",
        f"waiting  {stats.num_waiting:<4} running {stats.num_running:<4} "
        f"finished {len(scheduler.finished)}/{len(scheduler.requests)}   not arrived {not_arrived}",
        f"KV       {paint(CYAN, bar(kv.used_blocks, kv.total_blocks))} "
        f"{kv.used_blocks}/{kv.total_blocks} blocks  cached {kv.cached_blocks}  "
        f"shared {kv.shared_blocks}  wasted slots {kv.wasted_slots}",
        f"preempt  {counters.preemptions} so far ({counters.recomputed_tokens} tokens to "
        f"recompute)   prefix hit rate {counters.prefix_hit_rate:.0%}",
        f"rate     {summary['tokens_per_step']:.1f} tokens/step   "
        f"{summary['tokens_per_second']:.0f} tok/s (engine time {summary['wall_seconds']:.2f} s)",
        "",
        f"last     {format_step(stats)}",
    ])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="interactive_demo", description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=positive_int, default=12, help="number of requests")
    parser.add_argument("--budget", type=positive_int, default=16, help="max_tokens_per_step")
    parser.add_argument("--chunk", type=positive_int, default=8, help="prefill_chunk_size")
    parser.add_argument("--block-size", type=positive_int, default=4, help="KV slots per block")
    parser.add_argument("--num-blocks", type=positive_int, default=24, help="KV blocks in the pool")
    parser.add_argument("--prefix-caching", action="store_true",
                        help="share cached prompt prefixes (enable_prefix_caching)")
    parser.add_argument("--mean-gap", type=float, default=1.0,
                        help="mean steps between arrivals (Poisson)")
    parser.add_argument("--delay", type=float, default=0.1, help="seconds between frames")
    parser.add_argument("--max-steps", type=non_negative_int, default=500,
                        help="stop after this many steps even if requests remain")
    parser.add_argument("--no-ansi", action="store_true",
                        help="print one line per step instead of redrawing (automatic when "
                             "stdout is not a terminal)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the workload")
    args = parser.parse_args(argv)
    ansi = not args.no_ansi and sys.stdout.isatty()

    clock = PausableClock()
    collector = MetricsCollector(clock=clock)
    scheduler = Scheduler(TinyLLM(), max_tokens_per_step=args.budget, prefill_chunk_size=args.chunk,
                          kv_layout="paged", block_size=args.block_size, num_blocks=args.num_blocks,
                          enable_prefix_caching=args.prefix_caching)
    scheduler.plugins.register_scheduler_plugin(MetricsPlugin(collector))
    try:
        for r in make_workload(args.requests, args.seed, prompt_lens=(4, 24),
                               max_new_tokens=(4, 16), mean_gap=args.mean_gap):
            scheduler.add_request(r)
    except ValueError as err:        # e.g. a request that can never fit in the KV pool
        print(f"error: {err}", file=sys.stderr)
        return 2

    collector.reset()                # start the clock at the first step
    if ansi:
        sys.stdout.write(HIDE_CURSOR + CLEAR)
    try:
        while scheduler.has_unfinished and scheduler.step_count < args.max_steps:
            stats = scheduler.step()
            if ansi:
                frame = dashboard(scheduler, stats, collector, color=True)
                sys.stdout.write(HOME + frame.replace("\n", ERASE_LINE + "\n") + ERASE_DOWN)
                sys.stdout.flush()
            else:
                print(status_line(scheduler, stats), flush=True)
            if args.delay > 0:
                clock.sleep(args.delay)
    except KeyboardInterrupt:
        pass
    finally:
        if ansi:
            sys.stdout.write(SHOW_CURSOR + "\n")

    steps, requests = collector.get_step_summary(), collector.get_request_summary()
    print(f"\ndone: {len(scheduler.finished)}/{len(scheduler.requests)} requests finished in "
          f"{steps['steps']} steps, {steps['total_tokens']} tokens "
          f"({steps['tokens_per_step']:.1f} tokens/step, {steps['tokens_per_second']:.0f} tok/s)")
    if requests["requests"]:
        print(f"mean TTFT {requests['ttft']['mean']:.1f} steps, "
              f"mean end-to-end {requests['e2e']['mean']:.1f} steps")
    counters = scheduler.counters
    print(f"preemptions {counters.preemptions} ({counters.recomputed_tokens} tokens recomputed), "
          f"prefix hit rate {counters.prefix_hit_rate:.0%}")
    if scheduler.has_unfinished:
        print(f"stopped at --max-steps {args.max_steps} with {len(scheduler.active)} unfinished")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
