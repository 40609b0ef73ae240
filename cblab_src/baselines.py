"""Static batching, the baseline continuous batching replaced, under the same cost model.

Request-level (static) batching, as Hugging Face pipelines or FasterTransformer without a
scheduler do it:

* when the engine is free, it takes up to ``batch_size`` waiting requests (the oldest; it
  does not wait to fill the batch);
* it pads their prompts to the longest and prefills the padded batch in ONE step of
  ``batch_size x longest prompt`` tokens (one forward pass, as a pipeline does);
* then every step decodes one token for every row of the batch, finished or not, each row
  attending to the padded context, until the longest output is done;
* only then are the replies returned and the next batch starts. A request's output tokens
  are produced step by step, but its reply (``RequestTimes.finish``) is the end of its batch.

Decode-first continuous batching and the prefill-first baseline are
``Scheduler(policy="decode_first" | "prefill_first")``; this module is the third policy, in
milliseconds from the start, since it is only ever a point of comparison.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validate import positive_int
from .costmodel import DEFAULT_COST_MODEL, CostModel, StepArrays
from .monitoring.metrics import LatencySummary, RequestTimes
from .workloads import Workload


@dataclass(frozen=True)
class StaticRun:
    """A static-batching run: every request's times, and what the batches held."""

    times: list[RequestTimes]
    num_steps: int
    batch_size: int
    num_batches: int
    padded_tokens: int        # tokens computed: padding and finished rows included
    useful_tokens: int        # tokens the requests needed: prompts + (outputs - 1) decodes
    peak_kv_tokens: int       # KV slots of the largest batch: rows x (longest prompt + output)
    cost_model: CostModel

    def summary(self) -> LatencySummary:
        return LatencySummary.of(self.times, self.num_steps, unit="ms")


def _batch_steps(prompt: int, longest_output: int, rows: int) -> StepArrays:
    """The padded batch's steps: one prefill of ``rows x prompt`` tokens, then
    ``longest_output - 1`` decodes of ``rows`` tokens, row contexts ``prompt + 1, + 2, ...``."""
    decodes = np.arange(1, longest_output, dtype=np.float64)       # (n - 1,)
    n = decodes.size + 1
    zeros = np.zeros(n)
    tokens = np.concatenate([[rows * prompt], np.full(decodes.size, rows)]).astype(np.float64)
    chunk = np.concatenate([[float(rows)], np.zeros(decodes.size)])
    return StepArrays(
        num_tokens=tokens,
        num_decodes=np.concatenate([[0.0], np.full(decodes.size, float(rows))]),
        decode_kv_tokens=np.concatenate([[0.0], rows * (prompt + decodes)]),
        num_chunks=chunk,
        prefill_tokens=np.concatenate([[rows * prompt], zeros[1:]]).astype(np.float64),
        prefill_kv_tokens=np.concatenate([[rows * prompt], zeros[1:]]).astype(np.float64),
        prefill_pairs=np.concatenate([[rows * prompt * (prompt + 1) / 2], zeros[1:]]),
        num_sampled=np.full(n, float(rows)))


def simulate_static(workload: Workload, cost_model: CostModel = DEFAULT_COST_MODEL, *,
                    batch_size: int) -> StaticRun:
    """Serve ``workload`` with static batches of up to ``batch_size`` requests.

    Arrivals: ``arrival_ms`` if the workload has them, else all at 0. Every request generates
    exactly its ``max_new_tokens`` (at least one token: a static batch has no zero-length
    rows).
    """
    batch_size = positive_int("batch_size", batch_size)
    if not isinstance(cost_model, CostModel):
        raise TypeError(f"cost_model must be a CostModel, got {cost_model!r}")
    arrivals = workload.arrivals_in_ms("simulate_static needs arrivals in milliseconds "
                                       "(arrival_ms) or all at once")
    order = np.argsort(arrivals, kind="stable")
    prompts = np.array(workload.prompt_lens)
    outputs = np.maximum(np.array(workload.output_lens), 1)
    clock, i, steps, batches, padded, peak = 0.0, 0, 0, 0, 0, 0
    times: list[RequestTimes | None] = [None] * len(order)
    while i < len(order):
        clock = max(clock, float(arrivals[order[i]]))
        j = i
        while j < len(order) and j - i < batch_size and arrivals[order[j]] <= clock:
            j += 1
        batch = order[i:j]
        prompt, longest = int(prompts[batch].max()), int(outputs[batch].max())
        plan = _batch_steps(prompt, longest, len(batch))
        ends = clock + np.cumsum(cost_model.steps_ms(plan))           # (longest,)
        for r in batch:
            times[r] = RequestTimes(workload.specs[r].req_id, int(prompts[r]),
                                    float(arrivals[r]), tuple(ends[:outputs[r]].tolist()),
                                    float(ends[-1]), unit="ms")
        clock = float(ends[-1])
        steps += len(plan)
        batches += 1
        padded += int(plan.num_tokens.sum())
        peak = max(peak, len(batch) * (prompt + longest - 1))
        i = j
    useful = int(prompts.sum() + (outputs - 1).sum())
    return StaticRun(times, steps, batch_size, batches, padded, useful, peak, cost_model)
