"""The numpy transformer the scheduler drives."""

from .sampling import (LogitsProcessor, SamplingParams, apply_logits_processors, probabilities,
                       sample_token)
from .tiny_llm import PrefillOutput, TinyLLM

__all__ = ["PrefillOutput", "TinyLLM", "LogitsProcessor", "SamplingParams",
           "apply_logits_processors", "probabilities", "sample_token"]
