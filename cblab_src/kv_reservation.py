"""How much KV memory holds tokens: contiguous reservation versus paging, from lengths alone.

Before paging, servers stored each request's KV cache in one contiguous region reserved when
the request started (vLLM's paper calls the schemes Orca-Max, -Pow2 and -Oracle):

* ``"max"``: the model's maximum sequence length (e.g. 2048) for every request;
* ``"pow2"``: the prompt plus the output length rounded up to a power of two (at most 2x
  over-reservation of the output; "if the true output length is 25, it reserves 32");
* ``"oracle"``: exactly prompt + output (the output length known in advance: impossible in
  practice, an upper bound);
* ``"paged"``: blocks of ``block_size`` slots allocated as tokens arrive; only the last
  block's tail is empty.

A request with prompt ``p`` and output ``o`` stays resident for the ``o`` steps that sample its
tokens; at the ``j``-th it holds ``p + j - 1`` tokens (the last token's K/V is never computed),
so it ends holding ``F = p + o - 1``. Summed over requests and steps (memory x time, each step
equally long), the reserved slots split into:

* token states: slots holding a token now;
* reservation: slots the request will fill later (``F`` - held now);
* internal fragmentation: slots it will never fill (reserved - ``F``; for paging, the empty
  tail of the last block).

External fragmentation (free memory split into pieces too small for a new contiguous
reservation) needs an allocator simulation and is left out; the vLLM paper's Fig. 2 counts it,
which is one reason its contiguous schemes look worse than ours.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validate import one_of, positive_int

SCHEMES = ("max", "pow2", "oracle", "paged")


@dataclass(frozen=True)
class KVFootprint:
    """Shares (0..1) of reserved KV memory x time, for one scheme on one workload."""

    scheme: str
    block_size: int | None              # paged only
    token_states: float                 # holding a token
    reservation: float                  # reserved for tokens still to come
    internal_frag: float                # reserved, never used
    mean_reserved_tokens: float         # slots a resident request occupies, time-averaged

    @property
    def waste(self) -> float:
        """Share of reserved memory not holding a token now: ``1 - token_states``."""
        return 1.0 - self.token_states

    def requests_that_fit(self, capacity_tokens: int) -> float:
        """Requests resident at once in ``capacity_tokens`` KV slots, on average."""
        return capacity_tokens / self.mean_reserved_tokens


def _ceil_sum(n: np.ndarray, b: int) -> np.ndarray:
    """``sum(ceil(h / b) for h in 1..n)``, elementwise: ``b q (q + 1) / 2 + r (q + 1)``
    with ``n = q b + r``."""
    q, r = np.divmod(n, b)
    return b * q * (q + 1) // 2 + r * (q + 1)


def kv_footprint(prompt_lens, output_lens, scheme: str, *, max_seq_len: int = 2048,
                 block_size: int = 16) -> KVFootprint:
    """Time-averaged KV memory use of requests with these lengths under ``scheme``.

    ``prompt_lens`` and ``output_lens`` are ``(R,)``; outputs of 0 tokens are ignored (never
    resident). ``kv_footprint([10], [4], "paged", block_size=4)``: held 10, 11, 12, 13 tokens
    in 12, 12, 12, 16 slots -> token states 46/52.
    """
    one_of("scheme", scheme, SCHEMES)
    p = np.asarray(prompt_lens, dtype=np.int64)
    o = np.asarray(output_lens, dtype=np.int64)
    if p.shape != o.shape or p.ndim != 1:
        raise ValueError(f"prompt_lens and output_lens must be 1-D of equal length, got "
                         f"{p.shape} and {o.shape}")
    keep = o > 0
    p, o = p[keep], o[keep]
    final = p + o - 1                                   # tokens held at the end
    held = (o * p + o * (o - 1) // 2).sum()             # sum over steps of p + j - 1
    will_hold = (o * final).sum()                       # sum over steps of F
    if scheme == "paged":
        b = positive_int("block_size", block_size)
        slots = b * (_ceil_sum(final, b) - _ceil_sum(p - 1, b)).sum()   # b * ceil(h / b)
        reservation, frag = 0, slots - held
    else:
        if scheme == "max":
            reserve = np.full_like(p, positive_int("max_seq_len", max_seq_len))
            if (p + o > reserve).any():
                raise ValueError(f"a request is longer than max_seq_len {max_seq_len}")
        elif scheme == "pow2":
            reserve = p + (1 << np.ceil(np.log2(np.maximum(o, 1))).astype(np.int64))
        else:
            reserve = p + o
        slots = (o * reserve).sum()
        reservation, frag = will_hold - held, slots - will_hold
    total = float(slots)
    return KVFootprint(scheme, block_size if scheme == "paged" else None, float(held / total),
                       float(reservation / total), float(frag / total),
                       total / max(int(o.sum()), 1))
