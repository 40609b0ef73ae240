"""Where a scheduling-only simulation's time goes: ``run_all.py``'s 10k-request run, part by part.

    python benchmarks/profile_simulation.py [--requests 10000]

Runs the workload of ``run_all.py``'s ``sim_10k_requests_s`` (ShareGPT-like requests, all at
once, an H200-sized pool, 8192 tokens and 256 requests per step) with the engine's functions
wrapped in timers, and prints each part's seconds, its microseconds per step and its
nanoseconds per decode token (a decode token is one running request given one token in one
step: the run's bulk). Then what the 2 s target asks per decode token. The timers add about
a microsecond per wrapped call, so the total is above ``run_all.py``'s figure.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from part_timer import PartTimer  # noqa: E402
from run_all import TARGETS, sim_10k_knobs  # noqa: E402  (also sets the BLAS threads)

from cblab_src import simulate  # noqa: E402
from cblab_src.core import scheduler  # noqa: E402
from cblab_src.core.history import History  # noqa: E402
from cblab_src.core.paged_kv_cache import PagedKVCache  # noqa: E402
from cblab_src.core.policies import decode_first  # noqa: E402
from cblab_src.core.queues import RequestQueues  # noqa: E402
from cblab_src.core.scheduler import Scheduler  # noqa: E402
from cblab_src.core.step_plan import StepPlan  # noqa: E402
from cblab_src.workloads import SHAREGPT, Workload, synthetic_workload  # noqa: E402

# (where the function lives, its name, what the table calls it), in the order a step runs
PARTS = (
    (Workload, "requests", "making the Request objects"),
    (RequestQueues, "add_request", "adding them (checks, arrival queue)"),
    (RequestQueues, "_take_arrivals", "arrivals"),
    (decode_first, "schedule_decodes", "policy: listing the decoding requests"),
    (StepPlan, "schedule_decodes", "plan: one item per decode"),
    (PagedKVCache, "try_extend_decodes", "KV: every decode's slot, new blocks"),
    (decode_first, "schedule_prefills", "policy: prefills and admissions"),
    (StepPlan, "admit", "plan: admissions (prefix match, first chunk)"),
    (Scheduler, "_sample", "sampling (scheduling only: placeholders)"),
    (scheduler, "append_tokens", "commit: append each token, check done"),
    (Scheduler, "_finish", "commit: finish (free KV)"),
    (Scheduler, "_commit", "commit: progress, running list, samples"),
    (Scheduler, "_stats", "StepStats (the step's record)"),
    (History, "append", "history"),
    (Scheduler, "step", "rest of a step (undo log, plugin hooks)"),
    (Scheduler, "run", "the run loop"),
    (simulate, "simulate_schedule", "rest of the run (set-up, collector)"),
)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=10_000, help="requests in the workload")
    args = parser.parse_args(argv)
    workload = synthetic_workload(args.requests, SHAREGPT, seed=0)
    timer = PartTimer()
    start = time.perf_counter()
    with timer.installed(PARTS):
        run = simulate.simulate_schedule(workload, **sim_10k_knobs())
    wall = time.perf_counter() - start
    steps, decodes = run.num_steps, sum(len(s.decode_ids) for s in run.history)

    print(f"{args.requests} requests: {steps} steps, {decodes:,} decode tokens, "
          f"{wall:.2f} s with the timers")
    print(f"{'part':<46}{'s':>7}{'us/step':>10}{'ns/decode':>11}")
    for _, _, label in PARTS:
        seconds = timer.seconds[label]
        print(f"{label:<46}{seconds:7.2f}{1e6 * seconds / steps:10.1f}{1e9 * seconds / decodes:11.0f}")
    total = sum(timer.seconds.values())
    print(f"{'whole run':<46}{total:7.2f}{1e6 * total / steps:10.1f}{1e9 * total / decodes:11.0f}")
    target = TARGETS["sim_10k_requests_s"][1]
    print(f"\nThe {target:g} s target leaves {1e9 * target / decodes:.0f} ns per decode token for "
          f"everything, set-up and admissions included.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
