"""Figures of ragged batching (chapter 2): a padded batch beside the same tokens packed ragged,
and how many slots padding costs as a batch grows."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from .colors import EMPTY, request_color, rgba


def plot_padding(lengths: Sequence[int], req_ids: Sequence[Hashable] | None = None) -> Figure:
    """The same requests laid out padded (top) and ragged (bottom), one cell per token slot.

    ``lengths`` is ``(B,)``: tokens of each request. Top: the padded batch, ``(B, max(lengths))``
    slots, one row per request; real tokens take the request's colour, padding slots are grey
    with a cross. Bottom: the ragged batch, one row of ``sum(lengths)`` tokens, end to end.
    ``req_ids`` (default ``0 .. B-1``) picks the colours.
    """
    lengths = [int(n) for n in lengths]
    assert lengths and min(lengths) > 0, lengths
    req_ids = list(req_ids) if req_ids is not None else list(range(len(lengths)))
    assert len(req_ids) == len(lengths), (req_ids, lengths)
    num_reqs, longest, total = len(lengths), max(lengths), sum(lengths)
    width = max(longest, total)

    padded = np.empty((num_reqs, longest, 4))              # (B, L, rgba)
    padded[:] = rgba(EMPTY)
    for i, (rid, n) in enumerate(zip(req_ids, lengths)):
        padded[i, :n] = request_color(rid)
    ragged = np.concatenate([[request_color(rid)] * n for rid, n in zip(req_ids, lengths)])

    fine = width <= 40                                       # small enough for cell borders
    row = 0.3                                                # inches per row of cells
    fig = Figure(figsize=(min(10.0, 2.6 + 0.3 * width), 1.3 + row * (num_reqs + 1)),
                 layout="constrained")
    top, bottom = fig.subplots(2, 1, height_ratios=[num_reqs, 1])
    top.imshow(padded, interpolation="nearest", aspect="auto")
    if fine:
        pad_rows, pad_cols = np.nonzero(np.arange(longest)[None, :] >= np.array(lengths)[:, None])
        top.scatter(pad_cols, pad_rows, marker="x", color="0.55", s=18, lw=1)
    bottom.imshow(ragged[None], interpolation="nearest", aspect="auto")
    for ax, rows, cols in ((top, num_reqs, longest), (bottom, 1, total)):
        ax.set_xlim(-0.5, width - 0.5)
        if fine:
            ax.set_xticks(np.arange(-0.5, cols, 1), minor=True)
            ax.set_yticks(np.arange(-0.5, rows, 1), minor=True)
            ax.grid(which="minor", color="white", lw=1.2)
        ax.tick_params(which="minor", length=0)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    top.set_yticks(range(num_reqs), [f"req {rid}" for rid in req_ids], fontsize=7)
    top.set_xlabel(f"slot in padded row ({num_reqs} x {longest} = {num_reqs * longest} slots, "
                   f"{num_reqs * longest - total} padding)", fontsize=8)
    bottom.set_yticks([])
    bottom.set_xlabel(f"token in ragged batch ({total} tokens, no padding)", fontsize=8)
    top.legend(handles=[Patch(color=request_color(r), label=f"req {r}") for r in req_ids]
               + [Patch(facecolor=EMPTY, edgecolor="0.55", label="padding")],
               loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=7, frameon=False)
    return fig


def plot_padding_cost(num_requests: Sequence[int], padded_slots: Sequence[int],
                      ragged_tokens: Sequence[int]) -> Figure:
    """Slots a padded batch needs against the tokens a ragged batch needs, per batch size.

    All three sequences are ``(K,)``: for each batch size ``num_requests[k]``, the padded
    batch's ``B * max(lengths)`` slots and the ragged batch's ``sum(lengths)`` tokens. The gap
    between the two lines is :func:`~cblab_src.core.batch_builder.padding_waste`.
    """
    x = np.asarray(num_requests)
    padded, ragged = np.asarray(padded_slots), np.asarray(ragged_tokens)
    assert x.shape == padded.shape == ragged.shape, (x.shape, padded.shape, ragged.shape)
    fig = Figure(figsize=(5, 2.8), layout="constrained")
    ax = fig.add_subplot()
    ax.fill_between(x, ragged, padded, color="0.85", step=None, label="padding waste")
    ax.plot(x, padded, marker="o", ms=3, color="0.45", label="padded slots")
    ax.plot(x, ragged, marker="o", ms=3, color="black", label="ragged tokens")
    ax.set_xlabel("requests in the batch")
    ax.set_ylabel("token slots")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7, frameon=False, loc="upper left")
    return fig
