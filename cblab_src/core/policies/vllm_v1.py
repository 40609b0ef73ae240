"""vLLM v1's policy (``vllm.v1.core.sched.scheduler.Scheduler.schedule``, first come first
served), as recorded from vLLM 0.33.0 and replayed step for step by tests/test_vllm_replay.py.

vLLM has no decode phase and no prefill phase: every request just has tokens not yet
computed, and each step tries to let them catch up. Each step, in this order:

1. the running requests, in admission order, each get ``min(cap, tokens to compute,
   budget)`` tokens: a decode gets 1, a prefill a chunk; decodes and chunks interleave;
2. if no request was preempted in this step, waiting requests are admitted first come, first
   served, while budget is left and fewer than ``max_num_seqs`` run. A request is admitted
   only if blocks for *all* its tokens are free (``scheduler_reserve_full_isl=True``), although
   only its first chunk's blocks are allocated; the first one that does not fit stops
   admission.

``cap`` is ``long_prefill_token_threshold`` (our ``prefill_chunk_size``), except in a step
where only one request is running or waiting: vLLM then lifts the cap, "since there is
nobody to starve". When a running request needs a block and none is free, the mechanism
preempts the last request of the running list, repeatedly; that may be the requester itself,
which then gives up its turn, and nothing after it runs this step. With prefix caching, a
block is shared from the moment its tokens are scheduled, so a request admitted after another
in the same step can reuse blocks that this very step computes; and a block whose content is
already cached is cached too (vLLM does not deduplicate), so which prefixes survive eviction is
vLLM's (see :mod:`~cblab_src.core.block_pool`).
"""

from __future__ import annotations

from .base import Policy


class VllmV1(Policy):
    """vLLM v1's running-then-waiting loop (see the module docstring)."""

    name = "vllm_v1"
    cache_blocks_when_scheduled = True
    keep_duplicate_blocks = True

    def schedule(self, plan) -> None:
        alone = len(plan.running) + len(plan.waiting) == 1
        cap = plan.budget if alone else plan.config.prefill_chunk_size
        i = 0
        while i < len(plan.running) and plan.budget > 0:    # preemption shrinks the list
            r = plan.running[i]
            if not plan.schedule(r, min(cap, r.tokens_to_compute, plan.budget)):
                break                                        # r preempted itself
            i += 1
        if plan.preempted:
            return
        max_seqs = plan.config.max_num_seqs
        while plan.waiting and plan.budget > 0:
            if max_seqs is not None and len(plan.running) >= max_seqs:
                return
            if not plan.admit(plan.waiting[0], cap, reserve_all=True):
                return
