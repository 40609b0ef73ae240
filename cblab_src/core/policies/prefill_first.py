"""Prefill-first, the baseline from before chunked prefill was mixed with decodes.

A step with any prefill work does only prefill (the same chunks and admissions as
decode-first, under the same budget); only a step with no prefill work decodes. It never mixes
the two, so every prefill step stalls the running decodes: Sarathi-Serve's "generation
stalls". This is vLLM v0's default order (prefills first, decodes only in steps without
them). nano-vllm differs further: only the first request of a prefill step is chunked, a
request's whole prompt's blocks are allocated up front, and ``max_num_seqs`` caps the batch.
"""

from __future__ import annotations

from .base import Policy
from .decode_first import schedule_decodes, schedule_prefills


class PrefillFirst(Policy):
    """Prefill chunks and admissions if there are any; otherwise decodes."""

    name = "prefill_first"

    def schedule(self, plan) -> None:
        schedule_prefills(plan)
        if not plan.items:                      # never mix: decode only in a step without prefill
            schedule_decodes(plan)
