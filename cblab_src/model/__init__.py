"""The numpy transformer the scheduler drives."""

from .layers import PrefillOutput
from .sampling import (LogitsProcessor, SamplingParams, apply_logits_processors, probabilities,
                       sample_token)
from .tiny_llm import TinyLLM
from .tokenizer import ALPHABET, CharTokenizer, to_alphabet

__all__ = ["PrefillOutput", "TinyLLM", "CharTokenizer", "ALPHABET", "to_alphabet",
           "LogitsProcessor", "SamplingParams", "apply_logits_processors", "probabilities",
           "sample_token"]
