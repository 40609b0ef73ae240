"""Three attention paths that compute the same numbers: dense (v1), ragged (v2), paged (v3)."""

from .dense_attention import causal_mask, dense_causal_attention, masked_attention
from .paged_attention import gather_kv, paged_attention, slot_indices
from .ragged_attention import ragged_attention, segmented_attention

__all__ = ["causal_mask", "dense_causal_attention", "masked_attention", "gather_kv",
           "paged_attention", "slot_indices", "ragged_attention", "segmented_attention"]
