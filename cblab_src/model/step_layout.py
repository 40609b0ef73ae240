"""StepLayout: where one scheduler step's tokens read and write the KV cache, for every layer.

:meth:`TinyLLM.forward_step <cblab_src.model.tiny_llm.TinyLLM.forward_step>` runs every layer
over the same ragged batch, so which rows are decodes, which pool slots the new K/V go to and
which slots each decode's context is gathered from are the same in every layer.
:meth:`StepLayout.of` works them out once per step; each layer then calls
:meth:`StepLayout.write` (one scatter of the step's K/V with a paged cache) and
:meth:`StepLayout.attend` (all decodes in one batched attention, as a paged-attention kernel
does; prompt chunks one at a time).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..attention.dense_attention import causal_mask, masked_attention
from ..attention.paged_attention import (context_slots, gather_contexts, padded_block_tables,
                                         slot_mapping)
from ..attention.ragged_attention import decode_attention, pad_contexts


@dataclass(frozen=True)
class StepLayout:
    """How one step's tokens meet the KV cache, worked out once for all layers.

    Single-token segments (decodes) are attended all at once with
    :func:`~cblab_src.attention.ragged_attention.decode_attention`; multi-token segments (prompt
    chunks) one at a time. With a paged cache every new token also gets its pool slot, so a
    layer writes the whole step's K/V with one scatter, and every decode context gets the slots
    it is gathered from (the same slots in every layer's pool); a dense cache is read request
    by request. Nothing here depends on the layer, so no layer repeats it.
    """

    single: np.ndarray | slice       # batch rows of the B single-token segments (a slice if all)
    single_ids: tuple                # (B,) their request ids
    context_lens: np.ndarray         # (B,) keys each attends: its num_computed_tokens, new one too
    chunks: tuple                    # the multi-token segments
    slots: np.ndarray | None         # (N,) flat pool slot of every new token (paged only)
    context_slots: np.ndarray | None  # (B, L_max) pool slots of the single ones' contexts (paged)

    @classmethod
    def of(cls, batch, cache) -> "StepLayout":
        segs = batch.segments
        single = [i for i, s in enumerate(segs) if s.length == 1]
        context_lens = np.array([segs[i].num_computed_tokens for i in single], dtype=np.int64)
        # A decode-only step, the common case, is all single rows: a slice instead of a gather.
        rows = (slice(None) if single and len(single) == len(segs)
                else np.array([segs[i].offset for i in single], dtype=np.int64))
        slots = context = None
        if getattr(cache, "layout", None) == "paged":
            tables = padded_block_tables([cache.block_tables[s.req_id] for s in segs])
            seq_index = np.repeat(np.arange(len(segs)), [s.length for s in segs])   # (N,)
            slots = slot_mapping(tables, seq_index, batch.positions, cache.block_size)
            if single:
                context = context_slots(tables[single], context_lens, cache.block_size)
        return cls(rows, tuple(segs[i].req_id for i in single), context_lens,
                   tuple(s for s in segs if s.length > 1), slots, context)

    def write(self, layer: int, batch, cache, k: np.ndarray, v: np.ndarray) -> None:
        """Store the step's new ``k, v (N, H, D)`` for one layer."""
        if self.slots is not None:
            cache.write_slots(layer, self.slots, k, v)
            return
        for seg in batch.segments:
            rows = slice(seg.offset, seg.offset + seg.length)
            cache.write(layer, seg.req_id, seg.start_pos, k[rows], v[rows])

    def attend(self, layer: int, q: np.ndarray, cache, workspace=None) -> np.ndarray:
        """Attention of every query ``q (N, H, D)`` over its request's context: ``(N, H, D)``.
        ``workspace`` is scratch memory for the paged gather (see ``gather_contexts``)."""
        decodes = None                                                      # (B, H, D)
        if self.context_slots is not None:
            # Every layer gathers the same slots of its own pool: worked out once, in ``of``.
            k, v = gather_contexts(cache.k_pool[layer], cache.v_pool[layer], self.context_slots,
                                   workspace)                               # (B, L_max, H, D)
            decodes = decode_attention(q[self.single], k, v, self.context_lens)
        elif len(self.context_lens):
            contexts = [cache.read(layer, rid) for rid in self.single_ids]
            decodes = decode_attention(q[self.single], pad_contexts([k for k, _ in contexts]),
                                       pad_contexts([v for _, v in contexts]), self.context_lens)
        if isinstance(self.single, slice):              # a decode-only step: nothing to place
            return decodes
        out = np.empty_like(q)
        if decodes is not None:
            out[self.single] = decodes
        for seg in self.chunks:
            rows = slice(seg.offset, seg.offset + seg.length)
            k_ctx, v_ctx = cache.read(layer, seg.req_id)
            out[rows] = masked_attention(q[rows], k_ctx, v_ctx,
                                         causal_mask(seg.length, seg.num_computed_tokens))
        return out
