"""The numpy transformer the scheduler drives."""

from .tiny_llm import PrefillOutput, TinyLLM

__all__ = ["PrefillOutput", "TinyLLM"]
