"""The model of a scheduling-only run: it computes nothing; every request "samples" token -1.

``Scheduler(None, ...)`` uses it. The scheduler then does all its work — queues, budgets,
KV blocks, preemption, prefix caching — without any arithmetic, which is what a simulation of
thousands of requests needs. Lengths decide a schedule, token values do not: the placeholder
-1 is no token id, so it never equals an EOS token and never makes a generated block match a
prompt's block in the prefix cache. A scheduling-only run therefore takes exactly the steps of
a real run of greedy requests that do not stop early.
"""

from __future__ import annotations

import numpy as np

NO_MODEL_TOKEN = -1   # what every request samples in a scheduling-only run (no token id)


class NullModel:
    """A stand-in for :class:`~cblab_src.model.TinyLLM` with no weights and no cache storage."""

    n_layers = n_heads = head_dim = None     # the KV cache keeps accounting only
    dtype = np.float64

    def check_request(self, req) -> None:
        """Any request can be scheduled: lengths are all this model looks at."""

    def forward_step(self, batch, cache, attend=None) -> None:
        """No logits: the scheduler then samples :data:`NO_MODEL_TOKEN` for every request."""
        return None

    def __repr__(self) -> str:
        return "NullModel()"
