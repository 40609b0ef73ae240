"""The token-budget knee: throughput and inter-token latency against ``max_tokens_per_step``.

A step's dense part costs about the same from 1 to ~256 tokens on the H200 (its weights are
read once per step), then grows in proportion to its tokens. So raising the budget buys
throughput almost for free until steps turn compute-bound — the knee — and past it buys
little throughput while every decode waits for bigger steps: the inter-token latency grows
with the budget. ShareGPT-like requests, all at once, decode-first with chunk = budget, an
H200's KV pool for Llama-3-8B.

The papers give no such curve for this GPU; what lines up is where the knee falls: on the
measured H200 table throughput is within 10% of its best from a budget of 512, the budget
Sarathi-Serve chose for strict latency targets, and the roofline's ridge (~206 tokens per step)
is where the dense part stops being free. That 512 rests on the table's eager-mode launch
overhead, which makes small steps expensive: without it
(:data:`~cblab_src.costmodel.H200_LLAMA3_8B_ROOFLINE`, :func:`budget_knees`) the knee falls at
256.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..costmodel import DEFAULT_COST_MODEL, CostModel, Roofline, kv_capacity_tokens
from ..timing import simulate_timed
from ..workloads import SHAREGPT, WorkloadShape, synthetic_workload
from .common import format_table, retimed
from .papers import SARATHI_CLAIMS


@dataclass(frozen=True)
class KneeRow:
    """One budget: throughput and latency of the run."""

    budget: int
    tokens_per_step: float
    step_ms_mean: float
    throughput_tok_s: float          # output tokens per second
    total_tok_s: float               # prompt + output tokens per second
    itl_p50_ms: float
    itl_p99_ms: float
    ttft_p50_ms: float


@dataclass(frozen=True)
class KneeResult:
    rows: tuple[KneeRow, ...]
    knee_budget: int                 # smallest budget with >= 90% of the best throughput
    ridge_tokens: float              # H200 roofline: tokens where a step turns compute-bound
    num_requests: int
    cost_model: str

    def table(self) -> str:
        return format_table(self.rows, [
            ("budget", "budget", "d"), ("tokens_per_step", "tokens/step", ".0f"),
            ("step_ms_mean", "step ms", ".1f"), ("throughput_tok_s", "out tok/s", ",.0f"),
            ("total_tok_s", "total tok/s", ",.0f"), ("itl_p50_ms", "ITL p50", ".1f"),
            ("itl_p99_ms", "ITL p99", ".1f"), ("ttft_p50_ms", "TTFT p50", ",.0f")])

    @staticmethod
    def paper() -> str:
        c = SARATHI_CLAIMS
        return (f"Sarathi-Serve (OSDI'24) uses token budgets of {c['budget_strict'].value:g} "
                f"(strict TBT SLO) and {c['budget_relaxed'].value:g} (relaxed), and reports "
                f"prefill throughput saturating around {c['prefill_saturation'].value:g}-token "
                f"prompts (Fig. 4); chunks of 512 cost up to ~25% extra prefill time, 2048 "
                f"almost none (Fig. 14).")

    def figure(self):
        from ..viz.reproductions import plot_budget_knee
        return plot_budget_knee(self)


def budget_knee(*, budgets=(64, 128, 256, 512, 1024, 2048, 4096, 8192),
                num_requests: int = 600, shape: WorkloadShape = SHAREGPT,
                cost_model: CostModel = DEFAULT_COST_MODEL, seed: int = 0,
                quick: bool = False) -> KneeResult:
    """Throughput and ITL of ``num_requests`` requests, all arriving at once, at each budget
    (``quick``: 200 requests, four budgets)."""
    return budget_knees((cost_model,), budgets=budgets, num_requests=num_requests, shape=shape,
                        seed=seed, quick=quick)[0]


def budget_knees(cost_models, *, budgets=(64, 128, 256, 512, 1024, 2048, 4096, 8192),
                 num_requests: int = 600, shape: WorkloadShape = SHAREGPT, seed: int = 0,
                 quick: bool = False) -> list[KneeResult]:
    """:func:`budget_knee` under each of ``cost_models``. The requests all arrive at once, so
    the schedule does not depend on the cost model: each budget is scheduled once and timed
    under every model."""
    n = 200 if quick else num_requests
    if quick:
        budgets = (64, 256, 1024, 8192)
    w = synthetic_workload(n, shape, seed=seed)
    blocks = kv_capacity_tokens() // 16
    rows: list[list[KneeRow]] = [[] for _ in cost_models]
    for b in budgets:
        first = simulate_timed(w, cost_models[0], max_tokens_per_step=b, prefill_chunk_size=b,
                               num_blocks=blocks)
        tokens = sum(st.num_tokens for st in first.history) / max(first.num_steps, 1)
        for i, m in enumerate(cost_models):
            run = first if i == 0 else retimed(first, m)
            s = run.summary()
            rows[i].append(KneeRow(b, tokens, run.busy_ms / max(run.num_steps, 1),
                                   s.throughput_tok_s, s.total_tok_s, s.itl.p50, s.itl.p99,
                                   s.ttft.p50))
    ridge = Roofline.of("H200").ridge_tokens
    results = []
    for m, model_rows in zip(cost_models, rows):
        best = max(r.throughput_tok_s for r in model_rows)
        knee = min(r.budget for r in model_rows if r.throughput_tok_s >= 0.9 * best)
        results.append(KneeResult(tuple(model_rows), knee, ridge, n, m.name))
    return results
