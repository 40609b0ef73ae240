"""Workload shapes: the prompt and output lengths of the papers the course reproduces.

A :class:`WorkloadShape` is two :class:`~cblab_src.workloads.lengths.LengthDist` (prompts and
outputs), a cap on their sum (the model's context) and where the numbers come from. The named
shapes are :data:`SHAREGPT` (vLLM), :data:`SHAREGPT4_SARATHI` (Sarathi-Serve) and
:func:`anyscale_shape` (Anyscale's continuous-batching benchmark);
:func:`~cblab_src.workloads.generators.synthetic_workload` draws requests from any of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .._validate import non_negative_int, positive_int
from .lengths import LengthDist


@dataclass(frozen=True)
class WorkloadShape:
    """Prompt and output length distributions, a cap on their sum, and where they come from."""

    prompt: LengthDist
    output: LengthDist
    max_total: int | None = None       # prompt + output <= max_total (the model's context)
    source: str = ""

    def __post_init__(self) -> None:
        for name in ("prompt", "output"):
            if not isinstance(getattr(self, name), LengthDist):
                raise TypeError(f"{name} must be a LengthDist, got {getattr(self, name)!r}")
        # Lengths are clipped so prompt + output <= max_total, with a prompt of >= 1 token and
        # room for at least one output token.
        if self.max_total is not None and non_negative_int("max_total", self.max_total) < 2:
            raise ValueError(f"max_total must be >= 2 (a 1-token prompt and 1 output token), "
                             f"got {self.max_total!r}")
        if not isinstance(self.source, str):
            raise TypeError(f"source must be a str, got {self.source!r}")


# vLLM (Kwon et al., SOSP'23), Fig. 11: ShareGPT input mean 161.31, output mean 337.99 tokens
# (OPT tokenizer), with a model context of 2048. The paper gives means and histograms, not the
# spread: sigma 1.0 (prompts) and 0.8 (outputs) are our choice, for a long tail of pasted
# documents and long answers. Clipping to the context lowers the means by a few percent.
SHAREGPT = WorkloadShape(
    prompt=LengthDist.lognormal(161.31, sigma=1.0), output=LengthDist.lognormal(337.99, sigma=0.8),
    max_total=2048,
    source="vLLM (Kwon et al., SOSP'23) Fig. 11: ShareGPT mean input 161.31, mean output 337.99 "
           "tokens; log-normal spreads (sigma 1.0 / 0.8) are ours")

# Sarathi-Serve (Agrawal et al., OSDI'24) Table 2, openchat_sharegpt4: prompt median 1730,
# P90 5696; output median 415, P90 834; requests longer than 8192 tokens removed. A log-normal
# with the same median and P90 has sigma = ln(P90 / median) / 1.2816.
SHAREGPT4_SARATHI = WorkloadShape(
    prompt=LengthDist.lognormal(median=1730, sigma=math.log(5696 / 1730) / 1.2816),
    output=LengthDist.lognormal(median=415, sigma=math.log(834 / 415) / 1.2816),
    max_total=8192,
    source="Sarathi-Serve (Agrawal et al., OSDI'24) Table 2, openchat_sharegpt4: prompt median "
           "1730 / P90 5696, output median 415 / P90 834, total <= 8192; log-normal fit to "
           "median and P90")


def anyscale_shape(max_output: int) -> WorkloadShape:
    """Anyscale's throughput benchmark (Daniel et al., 2023): 512-token prompts, outputs drawn
    from an exponential of mean 128 keeping only draws <= ``max_output`` (32, 128, 512, 1536)."""
    return WorkloadShape(
        prompt=LengthDist.fixed(512),
        output=LengthDist.exponential(128, high=positive_int("max_output", max_output),
                                      truncate="resample"),
        max_total=None,
        source="Anyscale blog 'How continuous batching enables 23x throughput in LLM "
               "inference' (Daniel et al., 2023): 1000 prompts x 512 tokens, outputs "
               "exponential(mean 128) <= cap, ignore EOS")
