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
    return tokenizer.decode(request.generated)


def format_completions(requests: Sequence[Request], tokenizer) -> str:
    """Two lines per request: its prompt, then its completion and why it stopped.

    Texts are shown with ``repr`` so leading spaces and newlines are visible.
    """
    if not requests:
        raise ValueError("requests must not be empty")
    width = max(len(str(r.req_id)) for r in requests)
    lines = []
    for r in requests:
        reason = "running" if r.finish_reason is None else r.finish_reason.value
        lines.append(f"{str(r.req_id):<{width}}  prompt     {tokenizer.decode(r.prompt)!r}")
        plural = "" if r.num_generated == 1 else "s"
        lines.append(f"{'':<{width}}  completion {completion(r, tokenizer)!r}  "
                     f"[{r.num_generated} token{plural}, {reason}]")
    return "\n".join(lines)
