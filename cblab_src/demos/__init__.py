"""Command-line demos, one per roadmap phase that has something to watch run.

Run each with ``python -m cblab_src.demos.<name> --help`` to see its knobs:

* ``demo_prefill_only``        phase 1: one prompt through a dense prefill; KV length, causal mask,
  first token.
* ``demo_ragged_mask``         phase 2: several prompts packed with no padding; token table and
  ragged causal mask.
* ``demo_prefill_decode_mix``  phase 3: the scheduler's step log (``decode=… prefill=…``) and a
  check against generating each request alone.
* ``demo_scheduler_timeline``  phase 4: a text Gantt chart of a workload, budget use per step,
  TTFT/TPOT/e2e.
* ``demo_paged_attention``     phase 5: block tables and pool occupancy after every step; paged
  attention checked against dense attention.
* ``interactive_demo``         phase 9: a live terminal monitor of a running workload.

Demos are the only part of the package that prints. Shared helpers live in ``_common``.
"""
