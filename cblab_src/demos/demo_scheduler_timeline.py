"""Phase 4 (调度时间线): a text Gantt chart of a workload going through the scheduler.

Observe: one row per request, one column per step. A request waits ('.') until the
scheduler admits it, is prefilled in chunks ('P'), then decodes one token per step ('D')
until it finishes and leaves ('x' marks a preemption; '-' a running request left out of a
step, which happens only if a plugin shrinks the budget mid-run). New requests join while others are mid-flight: that is
continuous batching. The budget row shows how full each step was. Try a smaller ``--budget`` or
``--chunk`` and watch TTFT, TPOT and end-to-end latency (in steps) move.

    python -m cblab_src.demos.demo_scheduler_timeline --budget 8 --chunk 4 --requests 6
"""

from __future__ import annotations

import argparse

import numpy as np

from ..core.scheduler import Scheduler
from ..monitoring.metrics import request_times
from ..monitoring.timeline import Phase, state_matrix, tokens_matrix
from ._common import make_workload, positive_int, sparkline

# How the chart draws each Phase of monitoring.timeline.state_matrix.
PHASE_CHARS = {Phase.NOT_ARRIVED: " ", Phase.WAITING: ".", Phase.PREFILL: "P",
               Phase.DECODE: "D", Phase.DONE: " "}


def timeline_rows(requests, history) -> list[str]:
    """One string per request, one character per step of ``history``.

    The phases come from :func:`~cblab_src.monitoring.timeline.state_matrix` (the same data
    as the book's Gantt chart). A running request that had no token in a step's batch is drawn
    '-' (only possible when a plugin shrinks the budget mid-run); 'x' marks the step in which
    it was preempted.
    """
    states = state_matrix(requests, len(history))
    ran = tokens_matrix(history, [r.req_id for r in requests]) > 0
    rows = []
    for i, r in enumerate(requests):
        chars = [PHASE_CHARS[Phase(c)] for c in states[i]]
        for s, c in enumerate(states[i]):
            if c in (Phase.PREFILL, Phase.DECODE) and not ran[i, s]:
                chars[s] = "-"
        for s in r.preempted_steps:
            if s < len(chars):
                chars[s] = "x"
        rows.append("".join(chars))
    return rows


def gantt(rows: list[str], labels, extra_rows=()) -> list[str]:
    """Text lines of the chart: a two-line step ruler, one row per request (from
    :func:`timeline_rows`), then any ``(name, text)`` extra rows (one character per step)."""
    steps = np.arange(len(rows[0]) if rows else 0)
    names = [f"req {x}" for x in labels] + [name for name, _ in extra_rows]
    width = max(len(x) for x in names + ["step"]) + 2
    rows = list(rows) + [t for _, t in extra_rows]
    lines = ["step".ljust(width) + "".join(str(s // 10) if s % 10 == 0 else " " for s in steps),
             " " * width + "".join(str(s % 10) for s in steps)]
    lines += [name.ljust(width) + text for name, text in zip(names, rows)]
    return [line.rstrip() for line in lines]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="demo_scheduler_timeline",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--budget", type=positive_int, default=8, help="max_tokens_per_step")
    parser.add_argument("--chunk", type=positive_int, default=4, help="prefill_chunk_size")
    parser.add_argument("--requests", type=positive_int, default=6, help="number of requests")
    parser.add_argument("--mean-gap", type=float, default=2.0,
                        help="mean steps between arrivals (Poisson)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the workload")
    args = parser.parse_args(argv)

    # model=None: a scheduling-only run. No numbers are computed; the timeline is the same.
    scheduler = Scheduler(None, max_tokens_per_step=args.budget, prefill_chunk_size=args.chunk)
    requests = make_workload(args.requests, args.seed, prompt_lens=(3, 12),
                             max_new_tokens=(2, 6), mean_gap=args.mean_gap)
    for r in requests:
        scheduler.add_request(r)
    history = scheduler.run()

    print(f"{len(requests)} requests, budget {args.budget} tokens/step, chunk {args.chunk}: "
          f"{len(history)} steps")
    print("legend: '.' waiting  'P' prefill chunk  'D' decode  ' ' not arrived / finished"
          "  'x' preempted  ('-' running but left out: only if the budget shrinks mid-run)\n")
    rows = timeline_rows(requests, history)
    used = [stats.num_tokens for stats in history]
    budget_row = ("budget", sparkline(used, args.budget))
    print("\n".join(gantt(rows, [r.req_id for r in requests], [budget_row])))
    print(f"\ntokens per step (budget row, '█' = {args.budget}): {used}")
    print(f"budget use: {sum(used)} of {args.budget * len(used)} token slots "
          f"({sum(used) / (args.budget * len(used)):.0%})\n")

    print("req  arrival  prompt  new   TTFT   TPOT   e2e   (latencies in steps)")
    for r, m in zip(requests, request_times(requests)):
        tpot = "-" if m.tpot is None else f"{m.tpot:.2f}"
        print(f"{m.req_id:>3}  {r.arrival_step:>7}  {m.prompt_len:>6}  {m.num_generated:>3}  "
              f"{m.ttft:>5}  {tpot:>5}  {m.e2e:>4}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
