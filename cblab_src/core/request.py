"""One generation request and its lifecycle: WAITING -> PREFILL -> DECODE -> FINISHED.

A request owns its prompt, its progress through the prompt (``prefill_pos``), the tokens it
has generated, and the step numbers the metrics need. It knows nothing about batches or
memory: the scheduler moves it from state to state.

Time is counted in scheduler steps. Step ``s`` is the interval ``[s, s + 1)``: a request
that arrives at step ``a`` and receives its first token in step ``s`` has waited
``s + 1 - a`` steps for it (its TTFT).
"""

from __future__ import annotations

import enum
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

from .._validate import non_negative_int, positive_int, token_ids


class RequestState(enum.Enum):
    """Where a request is in its life."""

    WAITING = "waiting"    # arrived (or not yet) but holds no KV cache
    PREFILL = "prefill"    # admitted; its prompt is being written to the KV cache in chunks
    DECODE = "decode"      # prompt cached, first token sampled; one new token per step
    FINISHED = "finished"  # produced max_new_tokens tokens; KV memory returned


@dataclass(eq=False)
class Request:
    """A prompt to continue for ``max_new_tokens`` tokens, arriving at ``arrival_step``.

    Example: ``Request("a", prompt=[5, 6, 7], max_new_tokens=2)`` needs 3 prompt tokens
    prefilled, then samples 2 tokens; its KV cache ends holding 3 + 2 - 1 = 4 tokens.
    """

    req_id: Hashable
    prompt: Sequence[int]
    max_new_tokens: int
    arrival_step: int = 0
    prefill_pos: int = field(default=0, init=False)
    generated: list[int] = field(default_factory=list, init=False)
    state: RequestState = field(default=RequestState.WAITING, init=False)
    admitted_step: int | None = field(default=None, init=False)
    first_token_step: int | None = field(default=None, init=False)
    finish_step: int | None = field(default=None, init=False)
    token_steps: list[int] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.req_id, (int, str)) or isinstance(self.req_id, bool):
            raise TypeError(f"req_id must be an int or a str, got {self.req_id!r}")
        self.prompt = token_ids("prompt", self.prompt)
        self.max_new_tokens = non_negative_int("max_new_tokens", self.max_new_tokens)
        self.arrival_step = non_negative_int("arrival_step", self.arrival_step)

    # ----- derived quantities (never stored, so they can never disagree) -----
    @property
    def prompt_len(self) -> int:
        return len(self.prompt)

    @property
    def num_generated(self) -> int:
        return len(self.generated)

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

    # ----- progress -----
    def get_prefill_chunk(self, n: int) -> tuple[int, ...]:
        """The next at most ``n`` prompt tokens to prefill (does not advance ``prefill_pos``)."""
        n = positive_int("n", n)
        return tuple(self.prompt[self.prefill_pos:self.prefill_pos + n])

    def mark_prefilled(self, n: int) -> None:
        """Record that ``n`` more prompt tokens now have their K/V cached."""
        assert 0 < n <= self.remaining_prefill, (n, self.remaining_prefill)
        self.prefill_pos += n

    def append_token(self, token: int, step: int) -> None:
        """Record a sampled token produced in scheduler step ``step``."""
        assert not self.finished and len(self.generated) < self.max_new_tokens
        if self.first_token_step is None:
            self.first_token_step = step
        self.generated.append(int(token))
        self.token_steps.append(step)

    @property
    def is_done(self) -> bool:
        """True once the request has sampled all ``max_new_tokens`` tokens."""
        return len(self.generated) >= self.max_new_tokens

    def __repr__(self) -> str:
        return (f"Request({self.req_id!r}, prompt_len={self.prompt_len}, "
                f"max_new_tokens={self.max_new_tokens}, state={self.state.name}, "
                f"prefill_pos={self.prefill_pos}, generated={self.generated})")
