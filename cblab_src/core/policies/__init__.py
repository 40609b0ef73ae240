"""Scheduling policies: each step, which requests get how many tokens.

A policy is one small file. It reads the step being built (a
:class:`~cblab_src.core.step_plan.StepPlan`: the budget left, the running and waiting queues,
the knobs) and makes two moves, ``plan.schedule(request, n)`` (or, for many decodes at once,
``plan.schedule_decodes(requests)``) and ``plan.admit(request, cap)``; the mechanism behind
those moves (KV blocks, preemption, bookkeeping) is the same for every policy. To add a policy, write a :class:`Policy` subclass in a new file and pass an
instance, ``Scheduler(model, ..., policy=MyPolicy())``, or register its name below.
"""

from __future__ import annotations

from .base import Policy
from .decode_first import DecodeFirst
from .prefill_first import PrefillFirst
from .vllm_v1 import VllmV1

POLICIES: dict[str, type[Policy]] = {p.name: p for p in (DecodeFirst, PrefillFirst, VllmV1)}


def resolve_policy(policy) -> Policy:
    """The :class:`Policy` that ``policy`` names (or ``policy`` itself if it is one)."""
    if isinstance(policy, Policy):
        return policy
    if not isinstance(policy, str) or policy not in POLICIES:
        raise ValueError(f"policy must be one of {tuple(POLICIES)} or a Policy, got {policy!r}")
    return POLICIES[policy]()


__all__ = ["POLICIES", "Policy", "DecodeFirst", "PrefillFirst", "VllmV1", "resolve_policy"]
