"""What one scheduler step did: :class:`StepStats` and the :class:`Preemption` records in it."""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass, fields

from .kv_cache import KVUsage


@dataclass(frozen=True)
class Preemption:
    """A running request evicted from the KV cache so another could get a block."""

    req_id: Hashable          # the request preempted (its KV freed; it will recompute)
    for_req_id: Hashable      # the request whose tokens needed the block
    blocks_needed: int        # new blocks that request needed
    blocks_available: int     # blocks available when it asked
    recomputed_tokens: int    # cached tokens thrown away, to be computed again

    def reason(self) -> str:
        """``"req 3 needed 1 block, 0 available"``, the log's explanation."""
        s = "" if self.blocks_needed == 1 else "s"
        return (f"req {self.for_req_id} needed {self.blocks_needed} block{s}, "
                f"{self.blocks_available} available")


@dataclass(frozen=True)
class StepStats(Mapping):
    """What one step did. Every public name reads the same as an attribute
    (``stats.num_tokens``, ``stats.preempted_ids``) and as a mapping key
    (``stats["preempted_ids"]``, ``metrics.record_step(**stats)``)."""

    step_id: int
    decode_ids: tuple                  # requests that decoded one token, in batch order
    prefill_chunks: tuple              # (req_id, start, length) per prefill chunk
    num_tokens: int                    # tokens in the step's batch (<= the budget)
    sampled: tuple                     # (req_id, token) for every token sampled this step
    finished_ids: tuple                # requests that finished in this step
    num_waiting: int                   # arrived but not admitted, after the step
    num_running: int                   # admitted and unfinished, after the step
    kv: KVUsage                        # KV memory after the step
    preemptions: tuple = ()            # Preemption records, in the order they happened
    cached_tokens: int = 0             # prompt tokens admitted this step from the prefix cache
    decode_context_lens: tuple = ()    # keys each decode attended: its num_computed_tokens
    batch_order: tuple = ()            # every request scheduled, in batch order

    @property
    def scheduled(self) -> tuple:
        """``(req_id, num_tokens)`` for every request scheduled, in batch order."""
        chunks = {req_id: n for req_id, _, n in self.prefill_chunks}
        return tuple((req_id, chunks.get(req_id, 1)) for req_id in self.batch_order)

    @property
    def preempted_ids(self) -> tuple:
        return tuple(p.req_id for p in self.preemptions)

    @property
    def num_decode_tokens(self) -> int:
        return len(self.decode_ids)

    @property
    def num_prefill_tokens(self) -> int:
        return sum(length for _, _, length in self.prefill_chunks)

    def __getitem__(self, key: str):
        if key not in self._names():
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    @classmethod
    def _names(cls) -> tuple[str, ...]:
        """The fields, then the derived properties."""
        derived = [name for name, v in vars(cls).items() if isinstance(v, property)]
        return tuple(f.name for f in fields(cls)) + tuple(derived)
