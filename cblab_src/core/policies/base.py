"""What every scheduling policy is: one method that fills a step's plan."""

from __future__ import annotations

import abc


class Policy(abc.ABC):
    """Decides, each step, which requests get how many tokens.

    :meth:`schedule` is called once per step, with the step's
    :class:`~cblab_src.core.step_plan.StepPlan`, after its arrivals joined the waiting queue.
    It spends ``plan.budget`` with ``plan.schedule(r, n)`` (a running request ``r`` gets ``n``
    more tokens) and ``plan.admit(r, cap)`` (the head of the waiting queue starts, with a first
    chunk of at most ``cap`` tokens). Both return ``False`` when memory says no;
    what the policy does then is part of the policy.
    """

    name: str = "custom"
    # Whether a block joins the prefix cache as soon as its tokens are scheduled (vLLM), so a
    # request admitted later in the same step can share it, or only once computed (after the step).
    cache_blocks_when_scheduled: bool = False
    # Whether the prefix cache keeps every block holding a cached prefix (vLLM: a copy computed
    # alongside the first is cached too) or only the first (the copy is freed when released).
    # Read once, when the scheduler builds its KV cache.
    keep_duplicate_blocks: bool = False

    @abc.abstractmethod
    def schedule(self, plan) -> None:
        """Fill ``plan`` with this step's work."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
