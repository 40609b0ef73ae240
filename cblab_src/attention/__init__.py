"""Three attention paths that compute the same numbers: dense (v1), ragged (v2), paged (v3)."""

from .dense_attention import causal_mask, dense_causal_attention, masked_attention
from .paged_attention import (decode_workspace_size, gather_kv, padded_block_tables,
                              paged_attention, paged_decode_attention, slot_indices, slot_mapping)
from .ragged_attention import (decode_attention, pad_contexts, ragged_attention,
                               segmented_attention)

__all__ = ["causal_mask", "dense_causal_attention", "masked_attention", "gather_kv",
           "paged_attention", "paged_decode_attention", "decode_workspace_size",
           "padded_block_tables", "slot_indices", "slot_mapping", "ragged_attention",
           "segmented_attention", "decode_attention", "pad_contexts"]
