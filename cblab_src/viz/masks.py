"""Heatmaps of attention masks: dense causal (one request) and ragged (many)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
from matplotlib.figure import Figure

from .colors import EMPTY, request_color, rgba


def plot_mask(mask: np.ndarray, req_ids: Sequence[Hashable] | None = None,
              positions: Sequence[int] | None = None, *, key_req_ids=None, key_positions=None,
              size: float = 3.6) -> Figure:
    """Draw a bool ``(Nq, Nk)`` mask; allowed cells take the colour of the query's request.

    Rows are queries, columns keys. Ticks read ``req:pos`` when the token table is given and
    the mask is small enough to label. Lines separate requests.
    """
    nq, nk = mask.shape
    req_ids = list(req_ids) if req_ids is not None else [0] * nq
    positions = list(positions) if positions is not None else list(range(nq))
    key_req_ids = list(key_req_ids) if key_req_ids is not None else req_ids
    key_positions = list(key_positions) if key_positions is not None else positions
    image = np.empty((nq, nk, 4))
    image[:] = rgba(EMPTY)
    for i, rid in enumerate(req_ids):
        image[i, mask[i]] = request_color(rid)
    width = size * max(nk / max(nq, 1), 0.6)
    fig = Figure(figsize=(min(width, 10), size), layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(image, interpolation="nearest", aspect="equal")
    _grid(ax, nq, nk, fine=max(nq, nk) <= 48)
    for b in _boundaries(req_ids):
        ax.axhline(b - 0.5, color="black", lw=1.2)
    for b in _boundaries(key_req_ids):
        ax.axvline(b - 0.5, color="black", lw=1.2)
    if max(nq, nk) <= 32:
        ax.set_yticks(range(nq), [f"{r}:{p}" for r, p in zip(req_ids, positions)], fontsize=7)
        ax.set_xticks(range(nk), [f"{r}:{p}" for r, p in zip(key_req_ids, key_positions)],
                      fontsize=7, rotation=90)
    ax.set_ylabel("query (req:pos)")
    ax.set_xlabel("key (req:pos)")
    return fig


def _boundaries(req_ids: Sequence[Hashable]) -> list[int]:
    return [i for i in range(1, len(req_ids)) if req_ids[i] != req_ids[i - 1]]


def _grid(ax, nrows: int, ncols: int, *, fine: bool) -> None:
    """White lines between cells: two line collections (a minor tick per cell would cost a
    slider redraw ~1 ms each)."""
    if fine:
        ax.hlines(np.arange(-0.5, nrows, 1), -0.5, ncols - 0.5, color="white", lw=0.8)
        ax.vlines(np.arange(-0.5, ncols, 1), -0.5, nrows - 0.5, color="white", lw=0.8)
