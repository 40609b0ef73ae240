"""KV memory that actually holds tokens: contiguous reservation versus paging (vLLM Fig. 2).

On ShareGPT-like lengths (:data:`~cblab_src.workloads.SHAREGPT`), we split reserved KV memory x
time into token states, reservation for tokens still to come, and internal fragmentation
(:func:`~cblab_src.kv_reservation.kv_footprint`), for the three contiguous schemes vLLM compared
against (Orca-Max, -Pow2, -Oracle) and for paging with block sizes 1 to 128.

vLLM's Fig. 2 also counts external fragmentation (the buddy allocator's holes), which we do
not model; ``paper_without_external`` rescales the paper's token-state share to the memory
that is not externally fragmented, the quantity our model computes.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..kv_reservation import kv_footprint
from ..workloads import SHAREGPT, WorkloadShape, synthetic_workload
from .common import format_table
from .papers import (VLLM_BLOCK_SIZES, VLLM_FIG2, VLLM_FIG2_SOURCE, VLLM_FIG13_BATCHED,
                     VLLM_KV_SLOTS_OPT13B, VLLM_PAGED_WASTE)

SCHEME_LABELS = {"max": "Orca (Max)", "pow2": "Orca (Pow2)", "oracle": "Orca (Oracle)",
                 "paged": "paged (vLLM)"}


@dataclass(frozen=True)
class KVWasteRow:
    """One scheme: shares of reserved KV memory x time, in %, ours beside the paper's."""

    scheme: str
    block_size: int | None
    token_states: float               # %
    reservation: float                # %
    internal_frag: float              # %
    requests_fit: float               # resident at once in the paper's 15.7k KV slots
    paper_token_states: float | None  # vLLM Fig. 2
    paper_external_frag: float | None
    paper_without_external: float | None   # paper token states / (100 - external frag)
    paper_requests: float | None      # vLLM Fig. 13a, batched requests

    @property
    def label(self) -> str:
        base = SCHEME_LABELS[self.scheme]
        return base if self.block_size is None else f"{base} b={self.block_size}"


@dataclass(frozen=True)
class KVWasteResult:
    schemes: tuple[KVWasteRow, ...]     # max, pow2, oracle, paged at block 16
    block_sweep: tuple[KVWasteRow, ...]  # paged at each block size
    num_requests: int
    mean_prompt: float
    mean_output: float

    def table(self) -> str:
        cols = [("label", "scheme", "s"), ("token_states", "tokens %", ".1f"),
                ("reservation", "reserved %", ".1f"), ("internal_frag", "int. frag %", ".1f"),
                ("paper_token_states", "paper tokens %", ".1f"),
                ("paper_external_frag", "paper ext. frag %", ".1f"),
                ("paper_without_external", "paper w/o ext. %", ".1f"),
                ("requests_fit", "fit in 15.7k", ".1f"), ("paper_requests", "paper batch", ".2f")]
        return format_table(self.schemes, cols)

    def sweep_table(self) -> str:
        return format_table(self.block_sweep, [("block_size", "block size", "d"),
                                               ("token_states", "tokens %", ".2f"),
                                               ("internal_frag", "waste %", ".2f"),
                                               ("requests_fit", "fit in 15.7k", ".1f")])

    @staticmethod
    def paper() -> str:
        return (f"{VLLM_FIG2_SOURCE}: only 20.4%-38.2% of KV memory holds tokens in the "
                f"contiguous schemes, 96.3% with paging: waste under {VLLM_PAGED_WASTE.value:g}%, "
                f"only in the last block of each sequence. "
                f"{VLLM_BLOCK_SIZES}.")

    def figure(self):
        from ..viz.reproductions import plot_kv_waste
        return plot_kv_waste(self, VLLM_FIG2)


def kv_memory_waste(*, num_requests: int = 2000, shape: WorkloadShape = SHAREGPT,
                    block_sizes=(1, 2, 4, 8, 16, 32, 64, 128), max_seq_len: int = 2048,
                    capacity_tokens: int = VLLM_KV_SLOTS_OPT13B, seed: int = 0,
                    quick: bool = False) -> KVWasteResult:
    """The KV-memory split of each scheme on ``num_requests`` ShareGPT-like requests.

    Computed from the lengths alone (vectorised), so it is instant; ``quick`` uses 300 requests.
    """
    n = 300 if quick else num_requests
    w = synthetic_workload(n, shape, seed=seed)
    prompts, outputs = w.prompt_lens, w.output_lens

    def row(scheme: str, block: int | None) -> KVWasteRow:
        f = kv_footprint(prompts, outputs, scheme, max_seq_len=max_seq_len,
                         block_size=block or 16)
        paper = VLLM_FIG2[scheme] if block in (None, 16) else None
        return KVWasteRow(
            scheme, block, 100 * f.token_states, 100 * f.reservation, 100 * f.internal_frag,
            f.requests_that_fit(capacity_tokens),
            paper and paper["token_states"], paper and paper["external_frag"],
            paper and 100 * paper["token_states"] / (100 - paper["external_frag"]),
            VLLM_FIG13_BATCHED[scheme] if paper else None)

    schemes = tuple(row(s, None) for s in ("max", "pow2", "oracle")) + (row("paged", 16),)
    sweep = tuple(row("paged", b) for b in block_sizes)
    return KVWasteResult(schemes, sweep, n, sum(prompts) / n, sum(outputs) / n)
