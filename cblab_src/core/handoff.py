"""Prefill here, decode there: a request's KV cache handed from one scheduler to another.

Disaggregated serving (DistServe, Splitwise) runs prompts on *prefill instances* and
generation on *decode instances*, so a long prefill never stalls anyone's next token. A
request is prefilled on one GPU, which samples its first token; its prompt's keys and values
then travel to a decode GPU, which carries on from there.

In the engine that is two schedulers, each over its own KV pool:

* the prefill scheduler is built with ``kv_hand_off=True`` and runs the request with
  ``max_new_tokens=1``. When it finishes, its KV stays in the pool (the transfer has not
  happened yet) until :meth:`Scheduler.hand_off <cblab_src.core.scheduler.Scheduler.hand_off>`
  takes it out: a :class:`KVHandoff` holding a copy of every layer's keys and values and the
  state of the request's random generator, and the blocks go back to the pool;
* the decode scheduler gets the request as the prompt *plus its first token*, asking for the
  remaining tokens: ``add_request(continuation, kv=handoff)``. Admitting it writes the
  received keys and values into its own pool instead of computing them; only the first token's
  own K/V is computed there (a one-token chunk), and the next token is sampled from the same
  random stream. The texts are those of running the request in one scheduler.

:func:`continuation` builds that second request. The cost of the move is the
``nbytes`` of the hand-off over the link between the GPUs (see :mod:`cblab_src.disagg`).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np

from .null_model import NO_MODEL_TOKEN
from .request import Request


@dataclass(frozen=True, eq=False)
class KVHandoff:
    """What a prefill instance sends: the K/V of a request's first ``num_tokens`` tokens."""

    req_id: Hashable
    num_tokens: int
    layers: tuple[tuple[np.ndarray, np.ndarray], ...] | None   # per layer (k, v), each (T, H, D)
    rng_state: dict | None                 # the request's generator after its first token

    @property
    def nbytes(self) -> int:
        """Bytes of keys and values moved (0 for a scheduling-only run: no values)."""
        return sum(k.nbytes + v.nbytes for k, v in self.layers) if self.layers else 0


def export_kv(cache, req: Request) -> KVHandoff:
    """Copy ``req``'s keys and values out of ``cache`` (every layer; none without storage)."""
    layers = None
    if cache.has_storage:
        layers = tuple((k.copy(), v.copy()) for k, v in
                       (cache.read(layer, req.req_id) for layer in range(cache.n_layers)))
    state = None if req._rng is None else req._rng.bit_generator.state
    return KVHandoff(req.req_id, cache.num_computed_tokens(req.req_id), layers, state)


def receive_kv(cache, req_id: Hashable, handoff: KVHandoff) -> int:
    """Write a hand-off into ``cache`` for ``req_id`` (admitted, empty): it then holds the
    ``num_tokens`` tokens it received. Returns that number."""
    cache.extend(req_id, handoff.num_tokens)
    if cache.has_storage:
        if handoff.layers is None or len(handoff.layers) != cache.n_layers:
            raise ValueError(f"the hand-off of {req_id!r} carries no keys and values for this "
                             f"cache's {cache.n_layers} layers")
        for layer, (k, v) in enumerate(handoff.layers):
            cache.write(layer, req_id, 0, k, v)
    return handoff.num_tokens


def continuation(prefilled: Request, max_new_tokens: int, **kwargs) -> Request:
    """The request a decode instance runs after ``prefilled`` (which sampled its first token):
    the same id, the prompt followed by that token, the same sampling, asking for the
    ``max_new_tokens - 1`` tokens left."""
    if prefilled.num_generated != 1:
        raise ValueError(f"request {prefilled.req_id!r} must have sampled exactly its first "
                         f"token, got {prefilled.num_generated}")
    first = prefilled.generated[0]
    if first == NO_MODEL_TOKEN:     # a scheduling-only run: any token id will do, lengths
        first = 0                   # alone decide the schedule
    return Request(prefilled.req_id, prefilled.prompt + (first,), max_new_tokens - 1,
                   sampling=prefilled.sampling, **kwargs)
