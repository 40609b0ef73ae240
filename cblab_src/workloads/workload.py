"""The workload types: :class:`RequestSpec` (one request) and :class:`Workload` (a set of them).

A :class:`Workload` is an immutable description (prompts, output lengths, arrival times). Each
call to :meth:`Workload.requests` makes new, unstarted requests, so one workload can be run
under many budgets, chunk sizes or block sizes and the runs compared.

Arrivals are counted in scheduler steps (``arrival_step``), or in milliseconds
(``arrival_ms``) for a run timed by a cost model (:func:`cblab_src.timing.simulate_timed`).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .._validate import non_negative_int, positive_int, real, token_ids
from ..core.request import Request
from ..model.sampling import GREEDY, SamplingParams
from .lengths import MAX_LENGTH

MAX_VOCAB = 2**62              # token ids are drawn as int64


@dataclass(frozen=True)
class RequestSpec:
    """Everything needed to make one request.

    Checked when built, as :class:`~cblab_src.core.request.Request` checks its fields: an int
    or str ``req_id``; a non-empty ordered prompt of token ids (stored as a tuple);
    ``max_new_tokens`` and ``arrival_step`` integers >= 0; ``arrival_ms`` ``None`` or a finite
    number >= 0 (a NaN or infinite arrival would stall a timed run forever).
    """

    req_id: Hashable
    prompt: tuple[int, ...]
    max_new_tokens: int
    arrival_step: int = 0
    sampling: SamplingParams = GREEDY
    arrival_ms: float | None = None      # arrival time of a timed run (None: use arrival_step)

    def __post_init__(self) -> None:
        if not isinstance(self.req_id, (int, str)) or isinstance(self.req_id, bool):
            raise TypeError(f"req_id must be an int or a str, got {self.req_id!r}")
        object.__setattr__(self, "prompt", token_ids("prompt", self.prompt))
        non_negative_int("max_new_tokens", self.max_new_tokens)
        non_negative_int("arrival_step", self.arrival_step)
        if not isinstance(self.sampling, SamplingParams):
            raise TypeError(f"sampling must be a SamplingParams, got {self.sampling!r}")
        if self.arrival_ms is not None:
            object.__setattr__(self, "arrival_ms", real("arrival_ms", self.arrival_ms,
                                                        minimum=0.0))


@dataclass(frozen=True)
class Workload:
    """An ordered, immutable set of request specifications."""

    specs: tuple[RequestSpec, ...]

    def __post_init__(self) -> None:
        if isinstance(self.specs, (str, bytes)) or not isinstance(self.specs, Sequence):
            raise TypeError(f"specs must be a tuple of RequestSpecs, got {self.specs!r}")
        ids = set()
        for i, spec in enumerate(self.specs):
            if not isinstance(spec, RequestSpec):
                raise TypeError(f"specs[{i}] must be a RequestSpec, got {spec!r}")
            if spec.req_id in ids:
                raise ValueError(f"specs[{i}] repeats req_id {spec.req_id!r}")
            ids.add(spec.req_id)
        object.__setattr__(self, "specs", tuple(self.specs))

    def requests(self) -> list[Request]:
        """Fresh, unstarted ``Request`` objects for this workload."""
        return [Request(s.req_id, s.prompt, s.max_new_tokens, s.arrival_step, s.sampling)
                for s in self.specs]

    def __len__(self) -> int:
        return len(self.specs)

    @property
    def req_ids(self) -> list[Hashable]:
        return [s.req_id for s in self.specs]

    @property
    def prompt_lens(self) -> list[int]:
        return [len(s.prompt) for s in self.specs]

    @property
    def output_lens(self) -> list[int]:
        """Each request's ``max_new_tokens`` (what it generates: no model samples EOS here)."""
        return [s.max_new_tokens for s in self.specs]

    @property
    def arrival_ms(self) -> np.ndarray | None:
        """``(R,)`` arrival times in milliseconds, or ``None`` if arrivals are counted in steps."""
        if all(s.arrival_ms is None for s in self.specs):
            return None
        return np.array([0.0 if s.arrival_ms is None else s.arrival_ms for s in self.specs])

    def arrivals_in_ms(self, instead: str) -> np.ndarray:
        """``(R,)`` arrival times in ms for a clock-driven run: ``arrival_ms``, or all at 0 when
        every request arrives at once. Arrivals counted in steps are refused; ``instead`` says
        what to run for them."""
        if self.arrival_ms is not None:
            return self.arrival_ms
        if any(s.arrival_step for s in self.specs):
            raise ValueError(f"this workload's arrivals are counted in steps: {instead}")
        return np.zeros(len(self))

    @classmethod
    def from_lengths(cls, prompt_lens: Sequence[int], max_new_tokens: Sequence[int] | int,
                     arrival_steps: Sequence[int] | int = 0, *, seed: int = 0,
                     vocab_size: int = 128,
                     arrival_ms: Sequence[float] | None = None) -> "Workload":
        """Requests ``0, 1, ...`` with the given prompt lengths (random seeded tokens).

        ``arrival_ms`` (one time per request, in milliseconds) makes a workload for timed runs.
        """
        if isinstance(prompt_lens, (str, bytes)) or not isinstance(prompt_lens,
                                                                   (Sequence, np.ndarray)):
            raise TypeError(f"prompt_lens must be a sequence of ints, got {prompt_lens!r}")
        n = len(prompt_lens)
        new = _broadcast("max_new_tokens", max_new_tokens, n)
        arrivals = _broadcast("arrival_steps", arrival_steps, n)
        times = [None] * n if arrival_ms is None else list(_broadcast("arrival_ms", arrival_ms, n,
                                                                    scalar=False))
        times = [None if t is None else real(f"arrival_ms[{i}]", t, minimum=0.0)
                 for i, t in enumerate(times)]
        rng = np.random.default_rng(non_negative_int("seed", seed))
        specs = []
        for i, (p, m, a, t) in enumerate(zip(prompt_lens, new, arrivals, times)):
            prompt = rng.integers(0, positive_int("vocab_size", vocab_size, maximum=MAX_VOCAB),
                                  positive_int("prompt_len", p, maximum=MAX_LENGTH))   # -> tuple
            specs.append(RequestSpec(i, prompt, non_negative_int("max_new_tokens", m),
                                     non_negative_int("arrival_step", a), arrival_ms=t))
        return cls(tuple(specs))

    @classmethod
    def from_texts(cls, prompts: Mapping[Hashable, str] | Sequence[str], tokenizer,
                   max_new_tokens: Sequence[int] | int, arrival_steps: Sequence[int] | int = 0,
                   *, sampling: SamplingParams | None = None) -> "Workload":
        """Requests whose prompts are texts, encoded with ``tokenizer``.

        ``prompts`` maps request ids to texts (a plain sequence gets ids ``0, 1, ...``).
        ``sampling`` defaults to greedy decoding that stops at ``tokenizer.eos_id``, as real
        servers stop at EOS; pass ``SamplingParams()`` to always run ``max_new_tokens``.
        """
        items = list(prompts.items()) if isinstance(prompts, Mapping) else list(enumerate(prompts))
        if not items:
            raise ValueError(f"prompts must not be empty, got {prompts!r}")
        new = _broadcast("max_new_tokens", max_new_tokens, len(items))
        arrivals = _broadcast("arrival_steps", arrival_steps, len(items))
        params = SamplingParams(eos_token_id=tokenizer.eos_id) if sampling is None else sampling
        return cls(tuple(RequestSpec(rid, tuple(tokenizer.encode(text)),
                                     non_negative_int("max_new_tokens", m),
                                     non_negative_int("arrival_step", a), params)
                         for (rid, text), m, a in zip(items, new, arrivals)))


def _broadcast(name: str, value, n: int, *, scalar: bool = True) -> list:
    """``value`` as ``n`` entries: an int repeated (if ``scalar``), or a sequence of ``n``."""
    if scalar and isinstance(value, (int, np.integer)):
        return [value] * n
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
        kind = "an int or a sequence" if scalar else "a sequence"
        raise TypeError(f"{name} must be {kind} of {n} entries, got {value!r}")
    if len(value) != n:
        raise ValueError(f"{name} must have {n} entries, got {len(value)}")
    return list(value)
