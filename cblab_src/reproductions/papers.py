"""The numbers the papers reported, with where they come from — the other column of every
reproduction table. Each constant is a :class:`Reported` value; nothing here is computed."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reported:
    """One figure from a paper: its value, unit, what was measured and where it is printed."""

    value: float
    unit: str
    what: str
    source: str


ANYSCALE = ("Anyscale blog 'How continuous batching enables 23x throughput in LLM inference "
            "while reducing p50 latency' (Daniel, Shen, Liang, Liaw, 2023)")
ANYSCALE_SETUP = ("OPT-13B on one A100-40GB; 1000 prompts of 512 tokens; output lengths drawn "
                  "from an exponential of mean 128, keeping only draws <= 32, 128, 512 or 1536; "
                  "EOS ignored; all requests at once; throughput = (prompt + output) tokens/s")
VLLM = "vLLM: Kwon et al., Efficient Memory Management for LLM Serving with PagedAttention, SOSP'23"
SARATHI = "Sarathi-Serve: Agrawal et al., Taming Throughput-Latency Tradeoff in LLM Inference, OSDI'24"

# ---------------------------------------------------------------- continuous vs static batching
ANYSCALE_CAPS = (32, 128, 512, 1536)
# benchmark_configs/naive_hf_variable_size in anyscale/llm-continuous-batching-benchmarks: the
# naive static baseline (Hugging Face pipelines) ran batches of 16, 12, 8, 4 for the four caps.
ANYSCALE_STATIC_BATCH_SIZES = (16, 12, 8, 4)
ANYSCALE_CLAIMS = {
    "continuous": Reported(8.0, "x", "throughput of continuous batching (text-generation-"
                           "inference, Ray Serve) over naive static batching, best case", ANYSCALE),
    "paged": Reported(23.0, "x", "throughput of vLLM (continuous batching + paged KV memory) "
                      "over naive static batching, best case", ANYSCALE),
    "optimized_static": Reported(4.0, "x", "throughput of FasterTransformer (static batching, "
                                 "optimized kernels) over naive static batching", ANYSCALE),
    "naive_static_1536": Reported(81.0, "tokens/s", "naive static batching at output cap 1536",
                                  ANYSCALE),
}

# ---------------------------------------------------------------- KV memory waste (vLLM Fig. 2)
# Average share of KV-cache memory during the experiment of §6.2 (OPT-13B, ShareGPT), in %.
VLLM_FIG2 = {
    "max": {"token_states": 20.4, "reservation": 13.3, "internal_frag": 57.3, "external_frag": 8.9},
    "pow2": {"token_states": 26.8, "reservation": 17.9, "internal_frag": 13.6, "external_frag": 41.6},
    "oracle": {"token_states": 38.2, "reservation": 25.2, "internal_frag": 0.0, "external_frag": 36.6},
    "paged": {"token_states": 96.3, "reservation": 0.0, "internal_frag": 3.7, "external_frag": 0.0},
}
VLLM_FIG2_SOURCE = VLLM + ", Fig. 2 (block size 16)"
# Fig. 13a: average requests batched at once serving OPT-13B on ShareGPT at 2 req/s.
VLLM_FIG13_BATCHED = {"max": 7.00, "pow2": 9.81, "oracle": 13.62, "paged": 30.42}
VLLM_KV_SLOTS_OPT13B = 15_700   # Table 1: KV-cache slots of OPT-13B on one A100-40GB
VLLM_PAGED_WASTE = Reported(4.0, "%", "memory waste with paging: 'under 4%', only the last "
                            "block of each sequence", "vLLM blog (2023-06-20) and " + VLLM)
VLLM_BLOCK_SIZES = "block sizes 16 to 128 perform best on ShareGPT; default 16 (§7.2, Fig. 18b)"

# ---------------------------------------------------------------- chunked prefill (Sarathi-Serve)
# Table 4: Yi-34B on two A100s (TP2), openchat_sharegpt4, 128 requests, token budget 1024.
SARATHI_TABLE4 = {
    "hybrid batching only": {"ttft_p50_s": 0.53, "tbt_p99_s": 0.68},
    "chunked prefills only": {"ttft_p50_s": 1.04, "tbt_p99_s": 0.17},
    "Sarathi-Serve": {"ttft_p50_s": 0.76, "tbt_p99_s": 0.14},
}
SARATHI_TABLE4_SOURCE = (SARATHI + ", Table 4: Yi-34B, 2 x A100 (TP2), openchat_sharegpt4, "
                         "128 requests, token budget 1024")
SARATHI_CLAIMS = {
    "capacity_mistral": Reported(2.6, "x", "serving capacity over vLLM under a P99 TBT SLO, "
                                 "Mistral-7B on one A100", SARATHI),
    "capacity_yi": Reported(3.7, "x", "serving capacity over vLLM, Yi-34B on two A100s", SARATHI),
    "hybrid_tbt": Reported(28.3, "x", "TBT of a decode batch with a whole prefill riding along "
                           "(Orca's hybrid batching), over a decode-only batch (Fig. 9)", SARATHI),
    "chunk_overhead_512": Reported(25.0, "%", "most extra prefill time from chunks of 512 "
                                   "(Yi-34B); negligible at 2048 (Fig. 14)", SARATHI),
    "budget_strict": Reported(512, "tokens", "token budget under the strict SLO", SARATHI),
    "budget_relaxed": Reported(2048, "tokens", "token budget under the relaxed SLO", SARATHI),
    "prefill_saturation": Reported(512, "tokens", "prompt length where prefill throughput "
                                   "saturates (Mistral-7B, A100, Fig. 4)", SARATHI),
}
