"""Chunked prefill: decode stalls against time to first token (Sarathi-Serve's trade-off).

Sarathi-Serve's workload shape (:data:`~cblab_src.workloads.SHAREGPT4_SARATHI`: prompts of
median 1730 tokens), 128 requests arriving as a Poisson process, served by:

* decode-first without chunking — whole prompts ride along with the decodes (Orca's hybrid
  batching): a step holding a 5000-token prompt stalls every decode for its whole duration;
* prefill-first without chunking — prefill-only steps of whole prompts, decodes wait
  (vLLM before chunked prefill, nano-vllm): the longest stalls;
* prefill-first with chunks — prefill-only steps of bounded size, but consecutive ones
  until the prompts are done;
* decode-first with a token budget and chunks (Sarathi-Serve's stall-free batching).

Then decode-first over a range of token budgets (chunk = budget): smaller budgets bound the
inter-token latency (ITL, Sarathi's TBT) but split prompts into more chunks, so the first
token comes later.

How ours differ from the paper's Table 4: it served Yi-34B on two A100s, we cost steps for
Llama-3-8B on one H200 (about 4x less work per token on a faster GPU), so milliseconds are
not comparable; the ratios are (:meth:`PrefillResult.ratios`: chunking cuts the p99 ITL ~5x
and raises the median TTFT ~1.4x, in both). Those ratios depend on how loaded the server is:
without the table's launch overhead (:data:`~cblab_src.costmodel.H200_LLAMA3_8B_ROOFLINE`) steps
are faster, the same 6 requests per second load the server less, and chunking cuts the p99 ITL
2.9x for a median TTFT 1.1x longer. Sarathi's "chunked-prefills-only" ablation
interleaves chunks with decode iterations, which none of our policies does, so that row has no
counterpart here; our prefill-first-with-chunks runs chunk after chunk and stalls decodes
longer than whole prompts do.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..costmodel import DEFAULT_COST_MODEL, CostModel, kv_capacity_tokens
from ..timing import simulate_timed
from ..workloads import SHAREGPT4_SARATHI, WorkloadShape, synthetic_workload
from .common import format_table
from .papers import SARATHI_CLAIMS, SARATHI_TABLE4, SARATHI_TABLE4_SOURCE


@dataclass(frozen=True)
class PrefillRow:
    """One server configuration's latencies (ms) and throughput (output tokens/s)."""

    name: str
    policy: str
    budget: int                  # max_tokens_per_step
    chunk: int                   # prefill_chunk_size
    ttft_p50_ms: float
    itl_p99_ms: float
    itl_max_ms: float
    throughput_tok_s: float
    paper_ttft_p50_ms: float | None = None   # Sarathi-Serve Table 4, if the row lines up
    paper_itl_p99_ms: float | None = None


@dataclass(frozen=True)
class PrefillResult:
    configs: tuple[PrefillRow, ...]    # the four named servers
    sweep: tuple[PrefillRow, ...]      # decode-first, chunk = budget, over budgets
    qps: float
    num_requests: int
    cost_model: str

    def table(self) -> str:
        return format_table(self.configs, [
            ("name", "server", "s"), ("ttft_p50_ms", "TTFT p50 ms", ".0f"),
            ("itl_p99_ms", "ITL p99 ms", ".1f"), ("itl_max_ms", "ITL max ms", ".0f"),
            ("throughput_tok_s", "out tok/s", ",.0f"),
            ("paper_ttft_p50_ms", "paper TTFT p50 ms", ".0f"),
            ("paper_itl_p99_ms", "paper TBT p99 ms", ".0f")])

    def sweep_table(self) -> str:
        return format_table(self.sweep, [
            ("budget", "budget", "d"), ("ttft_p50_ms", "TTFT p50 ms", ".0f"),
            ("itl_p99_ms", "ITL p99 ms", ".1f"), ("itl_max_ms", "ITL max ms", ".0f"),
            ("throughput_tok_s", "out tok/s", ",.0f")])

    def ratios(self) -> dict:
        """The comparable numbers: hybrid / Sarathi ITL p99 and Sarathi / hybrid TTFT p50,
        ours and the paper's (different model and GPUs, so ratios, not milliseconds)."""
        by = {r.name: r for r in self.configs}
        hybrid, sarathi = by["decode-first, whole prompts"], by["decode-first, chunked"]
        paper_h, paper_s = SARATHI_TABLE4["hybrid batching only"], SARATHI_TABLE4["Sarathi-Serve"]
        return {"itl_reduction": hybrid.itl_p99_ms / sarathi.itl_p99_ms,
                "paper_itl_reduction": paper_h["tbt_p99_s"] / paper_s["tbt_p99_s"],
                "ttft_increase": sarathi.ttft_p50_ms / hybrid.ttft_p50_ms,
                "paper_ttft_increase": paper_s["ttft_p50_s"] / paper_h["ttft_p50_s"]}

    @staticmethod
    def paper() -> str:
        rows = "; ".join(f"{k}: TTFT p50 {v['ttft_p50_s']} s, TBT p99 {v['tbt_p99_s']} s"
                         for k, v in SARATHI_TABLE4.items())
        claims = SARATHI_CLAIMS
        return (f"{SARATHI_TABLE4_SOURCE}: {rows}. Token budgets {claims['budget_strict'].value:g} "
                f"(strict SLO) and {claims['budget_relaxed'].value:g} (relaxed); "
                f"{claims['capacity_mistral'].value:g}x / {claims['capacity_yi'].value:g}x the "
                f"capacity of vLLM (Mistral-7B / Yi-34B).")

    def figure(self):
        from ..viz.reproductions import plot_chunked_prefill
        return plot_chunked_prefill(self)


def _row(name, policy, budget, chunk, workload, cost_model, num_blocks, paper=None) -> PrefillRow:
    s = simulate_timed(workload, cost_model, policy=policy, max_tokens_per_step=budget,
                       prefill_chunk_size=chunk, num_blocks=num_blocks).summary()
    return PrefillRow(name, policy, budget, chunk, s.ttft.p50, s.itl.p99, s.itl.max,
                      s.throughput_tok_s,
                      paper and 1000 * paper["ttft_p50_s"], paper and 1000 * paper["tbt_p99_s"])


def chunked_prefill_tradeoff(*, qps: float = 6.0, num_requests: int = 128,
                             shape: WorkloadShape = SHAREGPT4_SARATHI, budget: int = 1024,
                             budgets=(256, 512, 1024, 2048, 4096, 8192),
                             cost_model: CostModel = DEFAULT_COST_MODEL, seed: int = 0,
                             quick: bool = False) -> PrefillResult:
    """Latencies of the four servers (token budget ``budget`` where there is one) and of
    decode-first chunked prefill over ``budgets``, at ``qps`` requests per second.

    The KV pool is an H200's for Llama-3-8B (:func:`~cblab_src.costmodel.kv_capacity_tokens`);
    "whole prompts" means a budget and chunk as long as the longest request
    (``shape.max_total``). ``quick`` uses 48 requests and three budgets.
    """
    n = 48 if quick else num_requests
    if quick:
        budgets = (256, 1024, 4096)
    w = synthetic_workload(n, shape, arrival_rate=qps, seed=seed)
    whole = shape.max_total or max(p + o for p, o in zip(w.prompt_lens, w.output_lens))
    blocks = kv_capacity_tokens() // 16
    configs = (
        _row("decode-first, whole prompts", "decode_first", whole, whole, w, cost_model, blocks,
             SARATHI_TABLE4["hybrid batching only"]),
        _row("prefill-first, whole prompts", "prefill_first", whole, whole, w, cost_model, blocks),
        _row("prefill-first, chunked", "prefill_first", budget, budget, w, cost_model, blocks),
        _row("decode-first, chunked", "decode_first", budget, budget, w, cost_model, blocks,
             SARATHI_TABLE4["Sarathi-Serve"]),
    )
    sweep = tuple(_row(f"budget {b}", "decode_first", b, b, w, cost_model, blocks)
                  for b in budgets)
    return PrefillResult(configs, sweep, qps, n, cost_model.name)
