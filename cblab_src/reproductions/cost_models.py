"""Which reproduced conclusions rest on how the cost model prices a small step.

The default cost model, the measured H200 table, ran its kernels eagerly, without CUDA graphs:
a small step costs ~0.28 ms per layer, of which only ~0.10 ms is reading the weights; the rest,
mostly kernel launches, is what servers remove by capturing decode steps in CUDA graphs. It
also charges a step that mixes decodes and prefill chunks two attention launches where vLLM v1
issues one. :func:`cost_model_comparison` reruns the reproductions' headline numbers under
several cost models, by default:

* :data:`~cblab_src.costmodel.H200_LLAMA3_8B` — the measured table, as the chapters use it;
* :data:`~cblab_src.costmodel.H200_LLAMA3_8B_ONE_LAUNCH` — the same, one attention launch per
  mixed step;
* :data:`~cblab_src.costmodel.H200_LLAMA3_8B_ROOFLINE` — the launch-free floor of the same model
  and GPU.

A conclusion that holds in every column does not depend on the launch overhead; one that moves
does. The KV-memory reproduction (vLLM's Fig. 2) is computed from lengths alone: no cost model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..costmodel import (H200_LLAMA3_8B, H200_LLAMA3_8B_ONE_LAUNCH, H200_LLAMA3_8B_ROOFLINE,
                         CostModel)
from ..timing import simulate_timed
from ..workloads import anyscale_shape, synthetic_workload
from .budget_knee import budget_knees
from .chunked_prefill import chunked_prefill_tradeoff
from .continuous_vs_static import continuous_vs_static_under, paper_gain
from .common import retimed
from .kv_waste import kv_memory_waste
from .papers import ANYSCALE_CAPS, ANYSCALE_STATIC_BATCH_SIZES, SARATHI_CLAIMS, VLLM_PAGED_WASTE

DEFAULT_COST_MODELS = (H200_LLAMA3_8B, H200_LLAMA3_8B_ONE_LAUNCH, H200_LLAMA3_8B_ROOFLINE)


@dataclass(frozen=True)
class Finding:
    """One headline number of a reproduction, under each cost model, beside the paper's."""

    reproduction: str
    what: str
    values: tuple[float, ...]        # one per cost model, in the comparison's order
    paper: float | None
    fmt: str = ".1f"


@dataclass(frozen=True)
class CostModelComparison:
    cost_models: tuple[str, ...]
    findings: tuple[Finding, ...]

    def get(self, what: str) -> Finding:
        """The finding whose ``what`` starts with ``what``."""
        return next(f for f in self.findings if f.what.startswith(what))

    def table(self, labels: Sequence[str] | None = None) -> str:
        """Fixed-width text: a row per finding, a column per cost model (headed by ``labels``,
        default the cost models' names), then the paper's value."""
        labels = tuple(labels or self.cost_models)
        if len(labels) != len(self.cost_models):
            raise ValueError(f"labels must name the {len(self.cost_models)} cost models, got "
                             f"{len(labels)}")
        header = ("", *labels, "paper")
        rows = [header]
        section = None
        for f in self.findings:
            if f.reproduction != section:
                section = f.reproduction
                rows.append((f"{section}:", *[""] * (len(header) - 1)))
            rows.append((f"  {f.what}", *(format(v, f.fmt) for v in f.values),
                         "-" if f.paper is None else format(f.paper, f.fmt)))
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        return "\n".join("  ".join([r[0].ljust(widths[0])]
                                   + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]).rstrip()
                         for r in rows)


def _prefill_first_tok_s(cost_models, num_requests: int, cap: int) -> list[float]:
    """Prefill-first throughput on Anyscale's workload at ``cap``, with chapter 10's knobs
    (the static batch as the cap on running requests, budget 4096, chunks of 512), under each
    model: all requests arrive at once, so the run is scheduled once and re-timed."""
    batch = dict(zip(ANYSCALE_CAPS, ANYSCALE_STATIC_BATCH_SIZES))[cap]
    w = synthetic_workload(num_requests, anyscale_shape(cap), seed=0)
    run = simulate_timed(w, cost_models[0], max_num_seqs=batch, policy="prefill_first",
                         max_tokens_per_step=4096, prefill_chunk_size=512)
    return [(run if i == 0 else retimed(run, m)).summary().total_tok_s
            for i, m in enumerate(cost_models)]


def cost_model_comparison(cost_models: Sequence[CostModel] = DEFAULT_COST_MODELS, *,
                          quick: bool = False) -> CostModelComparison:
    """The reproductions' headline numbers under each of ``cost_models`` (a few seconds per
    cost model at the book's settings; ``quick`` runs each reproduction's quick version)."""
    cost_models = tuple(cost_models)
    if not cost_models or not all(isinstance(m, CostModel) for m in cost_models):
        raise TypeError(f"cost_models must be CostModels, got {cost_models!r}")
    knees = budget_knees(cost_models, quick=quick)
    batching = continuous_vs_static_under(cost_models, quick=quick)
    prefill = [chunked_prefill_tradeoff(cost_model=m, quick=quick) for m in cost_models]
    first_cap = batching[0].rows[0].cap
    gaps = [b.rows[0].continuous_tok_s / pf for b, pf in
            zip(batching, _prefill_first_tok_s(cost_models, batching[0].num_requests, first_cap))]
    waste = kv_memory_waste(quick=quick)

    def knee_row(k, budget):
        return next(r for r in k.rows if r.budget == budget)

    big = max(r.budget for r in knees[0].rows)
    mid = 512 if any(r.budget == 512 for r in knees[0].rows) else 256    # quick: no 512
    last, first = batching[0].rows[-1].cap, batching[0].rows[0].cap
    ratios = [p.ratios() for p in prefill]
    by_name = [{r.name: r for r in p.configs} for p in prefill]
    paged_waste = next(r for r in waste.schemes if r.scheme == "paged").internal_frag
    findings = (
        Finding("budget knee (ch. 9)", "knee: smallest budget within 10% of the best",
                tuple(k.knee_budget for k in knees), SARATHI_CLAIMS["budget_strict"].value, ".0f"),
        Finding("budget knee (ch. 9)", "best output tokens/s",
                tuple(max(r.throughput_tok_s for r in k.rows) for k in knees), None, ",.0f"),
        Finding("budget knee (ch. 9)", f"output tokens/s, budget {mid} / budget 64",
                tuple(knee_row(k, mid).throughput_tok_s
                      / knee_row(k, 64).throughput_tok_s for k in knees), None, ".2f"),
        Finding("budget knee (ch. 9)", f"p99 ITL ms, budget {big}",
                tuple(knee_row(k, big).itl_p99_ms for k in knees), None, ".0f"),
        Finding("continuous vs static (ch. 10)", f"continuous / static, cap {last}",
                tuple(b.rows[-1].gain_continuous for b in batching), paper_gain("continuous"),
                ".2f"),
        Finding("continuous vs static (ch. 10)", f"paged / static, cap {last}",
                tuple(b.rows[-1].gain_paged for b in batching), paper_gain("paged"), ".2f"),
        Finding("continuous vs static (ch. 10)", f"paged / static, cap {first}",
                tuple(b.rows[0].gain_paged for b in batching), None, ".2f"),
        Finding("continuous vs static (ch. 10)", f"decode-first / prefill-first, cap {first_cap}",
                tuple(gaps), None, ".2f"),
        Finding("chunked prefill (ch. 4)", "p99 ITL, whole prompts / chunked",
                tuple(r["itl_reduction"] for r in ratios), ratios[0]["paper_itl_reduction"],
                ".2f"),
        Finding("chunked prefill (ch. 4)", "median TTFT, chunked / whole prompts",
                tuple(r["ttft_increase"] for r in ratios), ratios[0]["paper_ttft_increase"],
                ".2f"),
        Finding("chunked prefill (ch. 4)", "longest stall ms, prefill-first whole prompts",
                tuple(b["prefill-first, whole prompts"].itl_max_ms for b in by_name), None,
                ".0f"),
        Finding("chunked prefill (ch. 4)", "longest stall ms, decode-first chunked",
                tuple(b["decode-first, chunked"].itl_max_ms for b in by_name), None, ".0f"),
        Finding("KV memory (ch. 5)", "paged, block 16: % of KV memory wasted",
                (paged_waste,) * len(cost_models), VLLM_PAGED_WASTE.value, ".1f"),
    )
    return CostModelComparison(tuple(m.name for m in cost_models), findings)
