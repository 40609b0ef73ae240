"""The field's headline results, reproduced with this engine under the measured H200 cost model.

Each function runs at the book's settings in a few seconds (``quick=True``: well under one)
and returns a result with ``.table()`` (our numbers, with the paper's beside them where the
two line up), ``.paper()`` (what the paper reported, with its source) and ``.figure()``:

* :func:`continuous_vs_static` — Anyscale's 23x blog post: static vs continuous batching as
  output lengths vary more;
* :func:`kv_memory_waste` — vLLM's Fig. 2: KV memory holding tokens under contiguous
  reservation vs paging, and paging's waste against block size;
* :func:`chunked_prefill_tradeoff` — Sarathi-Serve: decode stalls vs time to first token,
  with and without chunked prefill, over token budgets;
* :func:`budget_knee` — throughput and inter-token latency against the token budget;

and :func:`cost_model_comparison` reruns their headline numbers under other cost models: the
measured table with one attention launch per mixed step, and the launch-free roofline of the
same GPU (which conclusions rest on the eager-mode launch overhead of the measurements).

The papers' numbers are in :mod:`cblab_src.reproductions.papers`, each with its source.
"""

from .budget_knee import KneeResult, KneeRow, budget_knee
from .chunked_prefill import PrefillResult, PrefillRow, chunked_prefill_tradeoff
from .continuous_vs_static import BatchingResult, BatchingRow, continuous_vs_static, paper_gain
from .cost_models import CostModelComparison, Finding, cost_model_comparison
from .kv_waste import KVWasteResult, KVWasteRow, kv_memory_waste

__all__ = ["continuous_vs_static", "kv_memory_waste", "chunked_prefill_tradeoff",
           "budget_knee", "BatchingResult", "BatchingRow", "KVWasteResult", "KVWasteRow",
           "PrefillResult", "PrefillRow", "KneeResult", "KneeRow", "paper_gain",
           "cost_model_comparison", "CostModelComparison", "Finding"]
