"""Mutation check: plant a plausible bug in the engine, run the fast tests, see them fail.

    .venv/bin/python tools/mutation_check.py            # every mutant (about 10 minutes)
    .venv/bin/python tools/mutation_check.py watermark_ignored eos_ignored

Each mutant is one textual edit of one engine file: a bug someone could plausibly write (a
clip dropped from a ``min``, a ``>=`` turned into ``>``, an order reversed). For each, the
repository's ``cblab_src`` and ``tests`` are copied to a scratch folder, the edit is applied
there (never to the working tree), and the fast tests below run with a per-test time limit, so
a mutant that makes the engine hang counts as caught, not as a hung check. A mutant is
*killed* if at least one test fails. The result is printed one line per mutant, then the score.

Run on demand, not in CI (it takes minutes); record the score in tests/README.md.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAST_TESTS = ["tests/test_mutants.py", "tests/test_scheduler_examples.py",
              "tests/test_preemption.py", "tests/test_prefix_caching.py",
              "tests/test_basic_scheduler.py", "tests/test_vllm_replay.py",
              "tests/test_sampling.py", "tests/test_monitoring.py", "tests/test_timing.py",
              "tests/test_atomic_step.py", "tests/test_bad_input_peripheral.py",
              "tests/test_handoff.py"]

# name: (file, the exact text, the plausible bug). Each text occurs exactly once in its file.
MUTANTS = {
    "admit_ignores_budget": ("cblab_src/core/step_plan.py",
                             "n = min(cap, len(tokens) - cached, self.budget)",
                             "n = min(cap, len(tokens) - cached)"),
    "watermark_ignored": ("cblab_src/core/step_plan.py",
                          "keep_free = self.config.watermark_blocks if self.running else 0",
                          "keep_free = 0"),
    "watermark_always": ("cblab_src/core/step_plan.py",
                         "keep_free = self.config.watermark_blocks if self.running else 0",
                         "keep_free = self.config.watermark_blocks"),
    "preempt_oldest": ("cblab_src/core/step_plan.py",
                       "victim = self.running[-1]", "victim = self.running[0]"),
    "preempt_keeps_budget": ("cblab_src/core/step_plan.py",
                             "                self.budget += n\n", "\n"),
    "admit_after_preemption": ("cblab_src/core/policies/decode_first.py",
                               "    if plan.preempted:\n        return", "    if False:\n        return"),
    "max_seqs_gt": ("cblab_src/core/policies/decode_first.py",
                    "len(plan.running) >= max_seqs", "len(plan.running) > max_seqs"),
    "decodes_youngest_first": ("cblab_src/core/policies/decode_first.py",
                               "[r for r in plan.running if r.state is RequestState.DECODE]",
                               "[r for r in reversed(plan.running) if r.state is RequestState.DECODE]"),
    # The decodes scheduled in one pass (StepPlan.schedule_decodes, try_extend_decodes).
    "decodes_ignore_budget": ("cblab_src/core/step_plan.py", "batch = decoding[:self.budget]",
                              "batch = decoding"),
    "decode_block_one_early": ("cblab_src/core/paged_kv_cache.py",
                               "if length % bs == 0]", "if length % bs == bs - 1]"),
    "chunk_not_clipped": ("cblab_src/core/policies/decode_first.py",
                          "min(chunk, r.tokens_to_compute, plan.budget)",
                          "min(chunk, r.tokens_to_compute)"),
    "vllm_cap_always_on": ("cblab_src/core/policies/vllm_v1.py",
                           "cap = plan.budget if alone else plan.config.prefill_chunk_size",
                           "cap = plan.config.prefill_chunk_size"),
    "vllm_admits_by_chunk": ("cblab_src/core/policies/vllm_v1.py",
                             "plan.admit(plan.waiting[0], cap, reserve_all=True)",
                             "plan.admit(plan.waiting[0], cap)"),
    "preempt_no_reset": ("cblab_src/core/request.py",
                         "lost, self.num_computed_tokens = self.num_computed_tokens, 0",
                         "lost = self.num_computed_tokens"),
    "eos_ignored": ("cblab_src/core/request.py",
                    "bool(tokens) and tokens[-1] == self._sampling.eos_token_id)",
                    "False)"),
    "request_not_frozen": ("cblab_src/core/request.py",
                           '        self._unless_added("max_new_tokens")\n', "\n"),
    "arrival_late": ("cblab_src/core/queues.py",
                     "while self._future and self._future[0][0] <= self.step_count:",
                     "while self._future and self._future[0][0] < self.step_count:"),
    "eos_reason": ("cblab_src/core/scheduler.py",
                   "r.finish_reason = FinishReason.STOP if stopped else FinishReason.LENGTH",
                   "r.finish_reason = FinishReason.LENGTH"),
    "kv_not_freed_at_finish": ("cblab_src/core/scheduler.py",
                               "            self.kv_cache.free(r.req_id)\n        eos",
                               "            pass\n        eos"),
    "topp_tie": ("cblab_src/model/sampling.py", "before < params.top_p", "before <= params.top_p"),
    "ttft_no_plus1": ("cblab_src/monitoring/metrics.py",
                      "tuple(s + 1 for s in req.token_steps)", "tuple(req.token_steps)"),
    "hash_no_parent": ("cblab_src/core/prefix_match.py",
                       "return hash((parent_hash, tokens))", "return hash((None, tokens))"),
    "ceil_div_floors": ("cblab_src/_math.py", "return -(-a // b)", "return a // b"),
    # A failed step must be undone whole (tests/test_atomic_step.py).
    "rollback_keeps_kv": ("cblab_src/core/step_undo.py", "        s.kv_cache.rollback()\n",
                          "        s.kv_cache.drop_checkpoint()\n"),
    "rollback_keeps_kv_values": ("cblab_src/core/paged_kv_cache.py",
                                 "self._log(flat.__setitem__, slots, flat[slots])", "pass"),
    "rollback_keeps_rng": ("cblab_src/core/step_undo.py",
                           "rng.bit_generator.state = state", "pass"),
    "rollback_keeps_lru_order": ("cblab_src/core/block_pool.py",
                                 "self._log(self._reset_lru, list(self._lru))", "pass"),
    "rollback_keeps_moves": ("cblab_src/core/step_undo.py", "r._restore_progress(progress)",
                             "pass"),
    # A request handed from a prefill scheduler to a decode one (tests/test_handoff.py).
    "handoff_not_received": ("cblab_src/core/step_plan.py",
                             "            receive_kv(self.kv_cache, r.req_id, received)\n",
                             "            pass\n"),
    "handoff_fresh_rng": ("cblab_src/core/queues.py",
                          "                req._rng.bit_generator.state = kv.rng_state\n",
                          "                pass\n"),
    "idle_steps_walked": ("cblab_src/core/scheduler.py",
                          "return 0 if self.plugins.scheduler_plugins else self._steps_until_arrival()",
                          "return 0"),
}


def run_mutant(name: str, timeout_s: int) -> tuple[str, list[str]]:
    """Apply one mutant in a scratch copy, run the fast tests; ``(verdict, failing tests)``."""
    path, old, new = MUTANTS[name]
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        for part in ("cblab_src", "tests", "pyproject.toml"):
            source = ROOT / part
            (shutil.copytree if source.is_dir() else shutil.copy)(source, work / part)
        text = (work / path).read_text()
        if text.count(old) != 1:
            return "STALE (the mutated text is not in the file once)", []
        (work / path).write_text(text.replace(old, new))
        cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-o", "addopts=", "-p", "no:nbval",
               "-p", "no:cacheprovider", f"--timeout={timeout_s}", *FAST_TESTS]
        env = {"PYTHONPATH": str(work), "OPENBLAS_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
        proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
    out = proc.stdout
    failed = [line.split(" ")[1] for line in out.splitlines()
              if line.startswith(("FAILED", "ERROR"))]
    # Any failure counts: a failing test, an error collecting one, a timeout (pytest's exit
    # status is 0 only when every test passed).
    return ("KILLED" if proc.returncode != 0 else "SURVIVED"), failed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help=f"mutants to run (default: all {len(MUTANTS)})")
    parser.add_argument("--timeout", type=int, default=60, help="seconds per test")
    args = parser.parse_args(argv)
    names = args.names or list(MUTANTS)
    killed = 0
    for name in names:
        verdict, failed = run_mutant(name, args.timeout)
        killed += verdict == "KILLED"
        sys.stdout.write(f"{name:26} {verdict:9} {' '.join(failed[:2])}\n")
        sys.stdout.flush()
    sys.stdout.write(f"score: {killed} of {len(names)} mutants killed\n")
    return 0 if killed == len(names) else 1


if __name__ == "__main__":
    sys.exit(main())
