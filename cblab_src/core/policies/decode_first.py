"""Decode-first, the policy this course teaches (Sarathi-Serve's; Hugging Face's is alike).

Each step, in this order:

1. every running request that is decoding gets one token, oldest first;
2. every running request that is still prefilling gets one chunk of at most
   ``prefill_chunk_size`` tokens, oldest first, clipped by what is left of the budget;
3. waiting requests are admitted first come, first served, each with its first chunk, while
   budget is left, unless this step had to preempt (memory is short) or ``max_num_seqs``
   requests already run; the first request that cannot be admitted stops admission, so no
   later request overtakes it.

A request that needs a KV block when none is free makes the mechanism preempt the youngest
running request (see :meth:`~cblab_src.core.step_plan.StepPlan.schedule`); if that is the
request itself, it has lost its place and the step's prefill work stops there.
"""

from __future__ import annotations

from ..request import RequestState
from .base import Policy


def schedule_decodes(plan) -> None:
    """One token for each decoding request, oldest first, while the budget lasts."""
    plan.schedule_decodes([r for r in plan.running if r.state is RequestState.DECODE])


def schedule_prefills(plan) -> None:
    """One chunk for each prefilling request, then admissions, in arrival order."""
    chunk = plan.config.prefill_chunk_size
    for r in [r for r in plan.running if r.state is RequestState.PREFILL]:
        if plan.budget == 0:
            return
        if r.state is RequestState.PREFILL:     # (a request preempted meanwhile is WAITING)
            if not plan.schedule(r, min(chunk, r.tokens_to_compute, plan.budget)):
                return                          # r preempted itself: memory is exhausted
    if plan.preempted:
        return                                  # no admissions in a step that had to preempt
    max_seqs = plan.config.max_num_seqs
    while plan.waiting and plan.budget > 0:
        if max_seqs is not None and len(plan.running) >= max_seqs:
            return
        if not plan.admit(plan.waiting[0], chunk):
            return                              # first come, first served: nobody overtakes


class DecodeFirst(Policy):
    """Decodes first, then prefill chunks, then admissions (see the module docstring)."""

    name = "decode_first"

    def schedule(self, plan) -> None:
        schedule_decodes(plan)
        schedule_prefills(plan)
