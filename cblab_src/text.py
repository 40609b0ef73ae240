"""Reading what requests wrote: their prompts and completions as text.

The scheduler only ever sees token ids; a tokenizer (usually ``TinyLLM.pretrained().tokenizer``)
sits at both ends. :meth:`cblab_src.workloads.Workload.from_texts` builds requests from prompts;
these functions turn finished (or running) requests back into text.
"""

from __future__ import annotations

from collections.abc import Sequence

from .core.request import Request


def completion(request: Request, tokenizer) -> str:
    """The text ``request`` has generated so far (an EOS at the end writes nothing)."""
    _check(request, tokenizer)
    return tokenizer.decode(request.generated)


def format_completions(requests: Sequence[Request], tokenizer) -> str:
    """Two lines per request: its prompt, then its completion and why it stopped.

    Texts are shown with ``repr`` so leading spaces and newlines are visible.
    """
    if isinstance(requests, (str, bytes)) or not isinstance(requests, Sequence):
        raise TypeError(f"requests must be a list of Requests, got {requests!r}")
    if not requests:
        raise ValueError("requests must not be empty")
    for i, r in enumerate(requests):
        _check(r, tokenizer, f"requests[{i}]")
    width = max(len(str(r.req_id)) for r in requests)
    lines = []
    for r in requests:
        reason = "running" if r.finish_reason is None else r.finish_reason.value
        lines.append(f"{str(r.req_id):<{width}}  prompt     {tokenizer.decode(r.prompt)!r}")
        plural = "" if r.num_generated == 1 else "s"
        lines.append(f"{'':<{width}}  completion {completion(r, tokenizer)!r}  "
                     f"[{r.num_generated} token{plural}, {reason}]")
    return "\n".join(lines)


def _check(request, tokenizer, name: str = "request") -> None:
    if not isinstance(request, Request):
        raise TypeError(f"{name} must be a Request, got {request!r}")
    if not callable(getattr(tokenizer, "decode", None)):
        raise TypeError(f"tokenizer must have a decode(ids) method (e.g. a CharTokenizer), "
                        f"got {tokenizer!r}")
