"""The model of a scheduling-only run: it computes nothing and always "samples" token 0.

``Scheduler(None, ...)`` uses it. The scheduler then does all its work — queues, budgets,
KV blocks, preemption, prefix caching — without any arithmetic, which is what a simulation of
thousands of requests needs. Lengths decide a schedule, token values do not (except for a
request that stops at its EOS token, which this model refuses: it would stop after one token).
"""

from __future__ import annotations

import numpy as np

NO_MODEL_TOKEN = 0   # what every request samples in a scheduling-only run


class NullModel:
    """A stand-in for :class:`~cblab_src.model.TinyLLM` with no weights and no cache storage."""

    n_layers = n_heads = head_dim = None     # the KV cache keeps accounting only
    dtype = np.float64

    def check_request(self, req) -> None:
        """Refuse a request whose EOS token is the placeholder every request samples."""
        if req.sampling.eos_token_id == NO_MODEL_TOKEN:
            raise ValueError(f"request {req.req_id!r} stops at eos_token_id {NO_MODEL_TOKEN}, "
                             f"the token every request samples when model is None, so it would "
                             f"end after one token: give the scheduler a model, or the request "
                             f"sampling without that EOS")

    def forward_step(self, batch, cache, attend=None) -> np.ndarray:
        """The logits of :meth:`logits`, one row per sampling segment of ``batch``."""
        return self.logits(batch.num_samples)

    @staticmethod
    def logits(num_samples: int) -> np.ndarray:
        """``(num_samples, 1)`` zero logits: every argmax is token 0."""
        return np.zeros((num_samples, 1))

    def __repr__(self) -> str:
        return "NullModel()"
