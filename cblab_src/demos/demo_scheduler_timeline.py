"""Phase 4 (调度时间线): a text Gantt chart of a workload going through the scheduler.

Observe: one row per request, one column per step. A request waits ('.') until the
scheduler admits it, is prefilled in chunks ('P'), then decodes one token per step ('D')
until it finishes and leaves ('-': admitted but left out of a step, which happens only if a
plugin shrinks the budget mid-run). New requests join while others are mid-flight: that is
continuous batching. The budget row shows how full each step was. Try a smaller ``--budget`` or
``--chunk`` and watch TTFT, TPOT and end-to-end latency (in steps) move.

    python -m cblab_src.demos.demo_scheduler_timeline --budget 8 --chunk 4 --requests 6
"""

from __future__ import annotations

import argparse

import numpy as np

from ..core.scheduler import Scheduler
from ..monitoring.metrics import request_metrics
from ._common import make_workload, positive_int, sparkline

# State codes of one request in one step, and how the chart draws them.
NOT_ARRIVED, WAITING, PREFILL, DECODE, STALLED, FINISHED = range(6)
STATE_CHARS = " .PD- "


def timeline_states(requests, history) -> np.ndarray:
    """``(R, S)`` state codes: request ``r`` (in ``requests`` order) during ``history[s]``.

    Reads only the steps' ``decode_ids`` / ``prefill_chunks`` and each request's
    ``arrival_step``, ``admitted_step`` and ``finish_step``. A request in a step's batch is
    PREFILL or DECODE; otherwise it has not arrived, is WAITING (not admitted), FINISHED (after
    its finish step; from it, for a request with ``max_new_tokens=0``, which never runs), or
    STALLED (admitted but left out of the step: the budget shrank).
    """
    row = {r.req_id: i for i, r in enumerate(requests)}
    in_prefill = np.zeros((len(requests), len(history)), dtype=bool)
    in_decode = np.zeros_like(in_prefill)
    for s, stats in enumerate(history):
        in_decode[[row[rid] for rid in stats.decode_ids], s] = True
        in_prefill[[row[rid] for rid, _, _ in stats.prefill_chunks], s] = True

    def column(values):  # (R, 1); a step that has not happened yet counts as +infinity
        return np.array([np.inf if v is None else v for v in values], dtype=float)[:, None]

    step = np.array([stats.step_id for stats in history])[None, :]              # (1, S)
    arrival = column(r.arrival_step for r in requests)
    admitted = column(r.admitted_step for r in requests)
    done = column(None if r.finish_step is None else r.finish_step + (r.num_generated > 0)
                  for r in requests)
    return np.select(
        [step < arrival, step >= done, in_prefill, in_decode, step < admitted],
        [NOT_ARRIVED, FINISHED, PREFILL, DECODE, WAITING], default=STALLED)


def gantt(states: np.ndarray, labels, extra_rows=()) -> list[str]:
    """Text rows of the chart: a two-line step ruler, one row per request, then any
    ``(name, text)`` extra rows (one character per step)."""
    steps = np.arange(states.shape[1])
    names = [f"req {x}" for x in labels] + [name for name, _ in extra_rows]
    width = max(len(x) for x in names + ["step"]) + 2
    rows = ["".join(STATE_CHARS[c] for c in row) for row in states] + [t for _, t in extra_rows]
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
          "  ('-' admitted but left out: only if the budget shrinks mid-run)\n")
    states = timeline_states(requests, history)
    used = [stats.num_tokens for stats in history]
    budget_row = ("budget", sparkline(used, args.budget))
    print("\n".join(gantt(states, [r.req_id for r in requests], [budget_row])))
    print(f"\ntokens per step (budget row, '█' = {args.budget}): {used}")
    print(f"budget use: {sum(used)} of {args.budget * len(used)} token slots "
          f"({sum(used) / (args.budget * len(used)):.0%})\n")

    print("req  arrival  prompt  new   TTFT   TPOT   e2e   (latencies in steps)")
    for r, m in zip(requests, request_metrics(requests)):
        tpot = "-" if m.tpot is None else f"{m.tpot:.2f}"
        print(f"{m.req_id:>3}  {r.arrival_step:>7}  {m.prompt_len:>6}  {m.num_generated:>3}  "
              f"{m.ttft:>5}  {tpot:>5}  {m.e2e:>4}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
