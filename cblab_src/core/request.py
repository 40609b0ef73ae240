"""One generation request and its lifecycle: WAITING -> PREFILL -> DECODE -> FINISHED.

A request owns its prompt, the tokens it has generated, how many of its tokens have their
K/V in the cache (``num_computed_tokens``), its sampling settings, and the step numbers the
metrics need (``arrival_step``, ``token_steps``, ...: the latencies read from them, in steps or
in milliseconds, are defined once, in :mod:`cblab_src.monitoring.metrics`). It knows nothing
about batches or memory: the scheduler moves it between states (appending a sampled token
makes it DECODE).

A preempted request goes back to WAITING with ``num_computed_tokens = 0`` and keeps its
generated tokens; when readmitted it prefills its prompt *and* those tokens again (recompute),
then carries on decoding.

The tokens in the cache have one name in the engine, vLLM's: ``num_computed_tokens``. The
request's count is the cache's, ``KVCache.num_computed_tokens(req_id)``, between steps (during
a step the cache already holds the step's new tokens, counted by the request when the step
commits); ``Segment.num_computed_tokens`` is the count once a batch segment is written, and
``PrefillOutput.num_computed_tokens`` a dense prefill's. The attention kernels keep their own
word, ``context_lens``, as vLLM's and FlashAttention's kernel arguments do: a kernel sees
sequences of keys, not requests, and ``context_lens[b]`` is the ``num_computed_tokens`` of the
request behind sequence ``b``, its new token included. ``StepStats.decode_context_lens`` and the
cost model's ``StepComposition`` describe what the kernel was given, so they use its word too.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable, Sequence

import numpy as np

from .._validate import non_negative_int, positive_int, token_ids
from ..model.sampling import GREEDY, SamplingParams, sample_token


class RequestState(enum.Enum):
    """Where a request is in its life."""

    WAITING = "waiting"    # arrived (or not yet), or preempted: holds no KV cache
    PREFILL = "prefill"    # admitted; its tokens are being written to the KV cache in chunks
    DECODE = "decode"      # everything cached but the newest token; one new token per step
    FINISHED = "finished"  # done (length or EOS); KV memory returned


class FinishReason(enum.Enum):
    LENGTH = "length"      # sampled max_new_tokens tokens
    STOP = "stop"          # sampled the EOS token


class Request:
    """A prompt to continue for up to ``max_new_tokens`` tokens, arriving at ``arrival_step``.

    Example: ``Request("a", prompt=[5, 6, 7], max_new_tokens=2)`` needs 3 prompt tokens
    prefilled, then samples 2 tokens; its KV cache ends holding 3 + 2 - 1 = 4 tokens.
    With ``arrival_step=None`` (the default) it arrives at the step it is added at.

    What was asked (``req_id``, ``prompt``, ``max_new_tokens``, ``arrival_step``, ``sampling``)
    is checked whenever it is set, and fixed once the request is added to a scheduler: the
    scheduler has planned memory for it (set one then and get an ``AttributeError``; make a new
    request instead). The progress fields below it are the scheduler's to write.
    """

    __slots__ = ("_req_id", "_prompt", "_max_new_tokens", "_arrival_step", "_sampling",
                 "num_computed_tokens", "generated", "state", "finish_reason", "admitted_step",
                 "first_token_step", "finish_step", "token_steps", "preempted_steps",
                 "resumed_steps", "num_cached_prompt_tokens", "_rng", "_owner", "_kv_handoff")

    def __init__(self, req_id: Hashable, prompt: Sequence[int], max_new_tokens: int,
                 arrival_step: int | None = None, sampling: SamplingParams = GREEDY):
        self._owner = None                          # the scheduler it was added to
        self.req_id, self.prompt, self.max_new_tokens = req_id, prompt, max_new_tokens
        self.arrival_step, self.sampling = arrival_step, sampling
        self.num_computed_tokens = 0                # its tokens with K/V in the cache
        self.generated: list[int] = []
        self.state = RequestState.WAITING
        self.finish_reason: FinishReason | None = None
        self.admitted_step: int | None = None
        self.first_token_step: int | None = None
        self.finish_step: int | None = None
        self.token_steps: list[int] = []            # the step of each generated token
        self.preempted_steps: list[int] = []
        self.resumed_steps: list[int] = []          # re-admissions after a preemption
        self.num_cached_prompt_tokens = 0           # prefix-cache hits at first admission
        self._rng: np.random.Generator | None = None
        self._kv_handoff = None                     # K/V received from a prefill instance

    # ----- what was asked: checked when set, fixed once added -----
    def _unless_added(self, name: str) -> None:
        if self._owner is not None:
            raise AttributeError(f"request {self._req_id!r} is added to a scheduler: its {name} "
                                 f"is fixed now (make a new Request)")

    @property
    def req_id(self) -> Hashable:
        return self._req_id

    @req_id.setter
    def req_id(self, value: Hashable) -> None:
        self._unless_added("req_id")
        if not isinstance(value, (int, str)) or isinstance(value, bool):
            raise TypeError(f"req_id must be an int or a str, got {value!r}")
        self._req_id = value

    @property
    def prompt(self) -> tuple[int, ...]:
        return self._prompt

    @prompt.setter
    def prompt(self, value: Sequence[int]) -> None:
        self._unless_added("prompt")
        self._prompt = token_ids("prompt", value)

    @property
    def max_new_tokens(self) -> int:
        return self._max_new_tokens

    @max_new_tokens.setter
    def max_new_tokens(self, value: int) -> None:
        self._unless_added("max_new_tokens")
        self._max_new_tokens = non_negative_int("max_new_tokens", value)

    @property
    def arrival_step(self) -> int | None:
        return self._arrival_step

    @arrival_step.setter
    def arrival_step(self, value: int | None) -> None:
        self._unless_added("arrival_step")
        self._arrival_step = None if value is None else non_negative_int("arrival_step", value)

    @property
    def sampling(self) -> SamplingParams:
        return self._sampling

    @sampling.setter
    def sampling(self, value: SamplingParams) -> None:
        self._unless_added("sampling")
        if not isinstance(value, SamplingParams):
            raise TypeError(f"sampling must be a SamplingParams, got {value!r}")
        self._sampling = value

    # ----- derived quantities (never stored, so they can never disagree) -----
    @property
    def prompt_len(self) -> int:
        return len(self._prompt)

    @property
    def num_generated(self) -> int:
        return len(self.generated)

    @property
    def all_tokens(self) -> tuple[int, ...]:
        """Prompt followed by the generated tokens."""
        return self._prompt + tuple(self.generated)

    @property
    def prefill_pos(self) -> int:
        """Prompt tokens whose K/V are cached."""
        return min(self.num_computed_tokens, self.prompt_len)

    @property
    def tokens_to_compute(self) -> int:
        """Tokens whose K/V must still be computed before the next token can be sampled:
        the rest of the prompt (plus, after a preemption, the generated tokens), or in
        DECODE exactly one, the newest token."""
        return len(self._prompt) + len(self.generated) - self.num_computed_tokens

    @property
    def remaining_prefill(self) -> int:
        """Prompt tokens whose K/V are not cached yet."""
        return self.prompt_len - self.prefill_pos

    @property
    def finished(self) -> bool:
        return self.state is RequestState.FINISHED

    @property
    def max_kv_tokens(self) -> int:
        """Most tokens this request will ever hold in the KV cache: ``P + N - 1`` (0 if N = 0).

        The last sampled token is never fed back, so its K/V are never computed.
        """
        return 0 if self.max_new_tokens == 0 else self.prompt_len + self.max_new_tokens - 1

    @property
    def is_done(self) -> bool:
        """True once the request sampled ``max_new_tokens`` tokens or its EOS token."""
        tokens = self.generated        # (no EOS token: eos_token_id is None, never a token)
        return len(tokens) >= self._max_new_tokens or (
            bool(tokens) and tokens[-1] == self._sampling.eos_token_id)

    # ----- progress -----
    def get_prefill_chunk(self, n: int) -> tuple[int, ...]:
        """The next at most ``n`` tokens to prefill (does not advance anything)."""
        n = positive_int("n", n)
        start = self.num_computed_tokens
        return self.all_tokens[start:start + min(n, self.tokens_to_compute)]

    def admit(self, num_cached_tokens: int, step: int) -> None:
        """The scheduler admitted this request in step ``step`` (again, after a preemption);
        its first ``num_cached_tokens`` tokens came from the prefix cache."""
        self.num_computed_tokens = num_cached_tokens
        self.state = RequestState.PREFILL
        if self.admitted_step is None:
            self.admitted_step = step
            self.num_cached_prompt_tokens = num_cached_tokens
        else:
            self.resumed_steps.append(step)

    def mark_computed(self, n: int) -> None:
        """Record that ``n`` more tokens now have their K/V cached."""
        assert 0 < n <= len(self._prompt) + len(self.generated) - self.num_computed_tokens, n
        self.num_computed_tokens += n

    def sample(self, logits: np.ndarray) -> int:
        """Choose the next token with this request's own generator."""
        if self._rng is None:
            self._rng = self.sampling.make_rng()
        return sample_token(logits, self.sampling, self._rng)

    def append_token(self, token: int, step: int) -> None:
        """Record a sampled token produced in scheduler step ``step``: the request decodes
        next (the scheduler finishes it as soon as it :attr:`is_done`, so no token follows
        an EOS token)."""
        assert self.state is not RequestState.FINISHED and not self.is_done
        append_tokens([self], [int(token)], step)

    @property
    def num_preemptions(self) -> int:
        return len(self.preempted_steps)

    def preempt(self, step: int) -> int:
        """Drop all cached progress (the scheduler freed the KV in step ``step``); return the
        number of tokens that will be computed again."""
        lost, self.num_computed_tokens = self.num_computed_tokens, 0
        self.state = RequestState.WAITING
        self.preempted_steps.append(step)
        return lost

    # ----- for a step that fails and is rolled back (see core/step_undo.py) -----
    def _progress(self) -> tuple:
        """What admitting or preempting changes (lists only grow, so their lengths do)."""
        return (self.num_computed_tokens, self.state, self.admitted_step,
                self.num_cached_prompt_tokens, len(self.resumed_steps), len(self.preempted_steps))

    def _restore_progress(self, progress: tuple) -> None:
        (self.num_computed_tokens, self.state, self.admitted_step, self.num_cached_prompt_tokens,
         resumed, preempted) = progress
        del self.resumed_steps[resumed:], self.preempted_steps[preempted:]

    def __repr__(self) -> str:
        return (f"Request({self.req_id!r}, prompt_len={self.prompt_len}, "
                f"max_new_tokens={self.max_new_tokens}, state={self.state.name}, "
                f"num_computed_tokens={self.num_computed_tokens}, generated={self.generated})")


def append_tokens(requests: Sequence[Request], tokens: Sequence[int], step: int) -> list[Request]:
    """:meth:`Request.append_token` for each request and its token (a Python ``int``), sampled
    in step ``step``; returns the requests now done (``max_new_tokens`` tokens, or EOS).

    (performance: one pass over a step's samplers, which can be hundreds.)
    """
    done, decode = [], RequestState.DECODE
    for r, token in zip(requests, tokens):
        generated = r.generated
        if not generated:
            r.first_token_step = step
        generated.append(token)
        r.token_steps.append(step)
        r.state = decode
        if r.is_done:
            done.append(r)
    return done
