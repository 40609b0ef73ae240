"""Per-request, per-step views of a finished run: who was waiting, prefilling, decoding.

Both functions return plain arrays, so a text Gantt chart (the demos), a matplotlib one
(:mod:`cblab_src.viz`) and the tests all read the same numbers.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable, Sequence

import numpy as np


class Phase(enum.IntEnum):
    """What a request is doing during one step (the codes of :func:`state_matrix`)."""

    NOT_ARRIVED = 0
    WAITING = 1     # arrived, no KV memory yet
    PREFILL = 2     # admitted, prompt not fully cached (includes the step of the first token)
    DECODE = 3      # generating one token per step
    DONE = 4        # finished in an earlier step


def state_matrix(requests: Sequence, num_steps: int) -> np.ndarray:
    """``(len(requests), num_steps)`` int array of :class:`Phase` codes, from request timestamps.

    A request is WAITING from ``arrival_step`` until it is admitted, PREFILL from
    ``admitted_step`` to ``first_token_step`` (the step that completes the prompt samples the
    first token), DECODE until ``finish_step``, and DONE afterwards. A request that never ran
    (``max_new_tokens = 0``) goes from WAITING to DONE. A preemption in step ``p`` makes it
    WAITING from ``p`` until it is resumed, then PREFILL (recomputing) until the step that
    samples its next token.
    """
    steps = np.arange(num_steps)
    out = np.zeros((len(requests), num_steps), dtype=np.int64)
    for i, r in enumerate(requests):
        end = r.finish_step if r.finish_step is not None else num_steps
        admitted = r.admitted_step if r.admitted_step is not None else end + 1
        first = r.first_token_step if r.first_token_step is not None else end
        row = out[i]
        row[steps >= r.arrival_step] = Phase.WAITING
        row[steps >= admitted] = Phase.PREFILL
        row[steps > first] = Phase.DECODE
        for k, p in enumerate(r.preempted_steps):
            resumed = r.resumed_steps[k] if k < len(r.resumed_steps) else end + 1
            later = [t for t in r.token_steps if t > p]
            resampled = later[0] if later else end
            row[(steps >= p) & (steps < resumed)] = Phase.WAITING
            row[(steps >= resumed) & (steps <= resampled)] = Phase.PREFILL
        row[steps > end] = Phase.DONE
        if r.num_generated == 0 and r.finish_step is not None:
            row[steps >= r.finish_step] = Phase.DONE
    return out


def tokens_matrix(history: Sequence, req_ids: Sequence[Hashable]) -> np.ndarray:
    """``(len(req_ids), len(history))`` int array: tokens each request had in each step's batch."""
    row_of = {rid: i for i, rid in enumerate(req_ids)}
    out = np.zeros((len(req_ids), len(history)), dtype=np.int64)
    for j, stats in enumerate(history):
        for rid in stats.decode_ids:
            out[row_of[rid], j] += 1
        for rid, _, length in stats.prefill_chunks:
            out[row_of[rid], j] += length
    return out
