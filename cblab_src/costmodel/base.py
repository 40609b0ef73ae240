"""The interface every cost model offers: milliseconds per step, and the parts they add up from."""

from __future__ import annotations

import abc
from collections.abc import Sequence

import numpy as np

from .composition import StepArrays, StepComposition

PARTS = ("dense", "attention", "lm_head", "allreduce", "overhead")


class CostModel(abc.ABC):
    """Turns what a step computes into the milliseconds it takes on some GPU.

    Implementations give :meth:`parts`: each part's milliseconds per step, ``(S,)`` arrays under
    the names of :data:`PARTS` (those a model does not have are zero). A step with no token
    costs 0 ms.
    """

    name: str                          # shown in tables and figures

    @abc.abstractmethod
    def parts(self, steps: StepArrays) -> dict[str, np.ndarray]:
        """``{part: (S,) milliseconds}`` for every name in :data:`PARTS`."""

    def steps_ms(self, steps: StepArrays) -> np.ndarray:
        """``(S,)`` milliseconds of each step: the sum of its parts (0 for an empty step)."""
        total = sum(self.parts(steps).values())
        return np.where(steps.num_tokens > 0, total, 0.0)

    def step_ms(self, composition: StepComposition) -> float:
        """Milliseconds of one step."""
        if not isinstance(composition, StepComposition):
            raise TypeError(f"composition must be a StepComposition, got {composition!r}")
        return float(self.steps_ms(StepArrays.of([composition]))[0])

    def history_ms(self, history: Sequence) -> np.ndarray:
        """``(S,)`` milliseconds of each step of a scheduler run's ``StepStats`` list."""
        return self.steps_ms(StepArrays.from_history(history))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"
