"""Figures of attention paths: how paged attention gathers one request's K/V (chapter 6)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import ConnectionPatch, Patch

from .._math import ceil_div
from .colors import EMPTY, request_color, rgba


def _block_image(rows: Sequence[int | None], block_size: int, context_len: int,
                 table: Sequence[int], req_id: Hashable) -> np.ndarray:
    """``(len(rows), block_size, 4)`` RGBA: slot ``s`` of a row holding logical block ``i`` is
    solid when position ``i * block_size + s < context_len``, a light tint otherwise; rows that
    are ``None`` (blocks the request does not own) are grey."""
    image = np.empty((len(rows), block_size, 4))
    image[:] = rgba(EMPTY)
    for r, logical in enumerate(rows):
        if logical is None:
            continue
        filled = logical * block_size + np.arange(block_size) < context_len
        image[r] = request_color(req_id, 0.18)
        image[r, filled] = request_color(req_id)
    return image


def plot_gather(block_table: Sequence[int], context_len: int, block_size: int, num_blocks: int,
                *, req_id: Hashable = 0) -> Figure:
    """How paged attention reads one request's context through its block table.

    Left: the shared pool, ``num_blocks`` rows of ``block_size`` slots; the request's blocks are
    in its colour (solid slots hold a token, labelled with its position; light ones are empty);
    grey blocks are not read. Right: the contiguous ``(context_len, H, D)``
    context that :func:`~cblab_src.attention.paged_attention.gather_kv` builds, one row per
    block-table entry, each slot labelled with the token position it holds. Arrows join each
    pool block to its place in the gathered context.

    ``plot_gather([5, 1, 6], context_len=11, block_size=4, num_blocks=8)``: positions 0-3 come
    from block 5, 4-7 from block 1, 8-10 from block 6.
    """
    table = [int(b) for b in block_table]
    assert len(table) == ceil_div(context_len, block_size), (table, context_len, block_size)
    assert all(0 <= b < num_blocks for b in table) and len(set(table)) == len(table), table
    logical_of = {b: i for i, b in enumerate(table)}

    fig = Figure(figsize=(min(4.0 + 0.5 * block_size, 10), 1.2 + 0.3 * max(num_blocks, 4)),
                 layout="constrained")
    pool_ax, gap, ctx_ax = fig.subplots(1, 3, width_ratios=[1, 0.35, 1])
    gap.axis("off")                                  # room for the arrows

    pool_rows = [logical_of.get(b) for b in range(num_blocks)]
    pool_ax.imshow(_block_image(pool_rows, block_size, context_len, table, req_id),
                   aspect="auto", interpolation="nearest")
    pool_ax.set_yticks(range(num_blocks), [str(b) for b in range(num_blocks)], fontsize=7)
    pool_ax.set_ylabel("pool block id")
    pool_ax.set_xlabel("slot in block")

    ctx_ax.imshow(_block_image(list(range(len(table))), block_size, context_len, table, req_id),
                  aspect="auto", interpolation="nearest")
    ctx_ax.yaxis.tick_right()
    ctx_ax.yaxis.set_label_position("right")
    ctx_ax.set_yticks(range(len(table)), [f"table[{i}] = {b}" for i, b in enumerate(table)],
                      fontsize=7)
    ctx_ax.set_ylabel("gathered context")
    ctx_ax.set_xlabel("slot in block")
    ctx_ax.set_ylim(num_blocks - 0.5, -0.5)        # same row height as the pool
    if block_size <= 16:                           # label each token with its position
        for i, b in enumerate(table):
            for s in range(block_size):
                pos = i * block_size + s
                if pos < context_len:
                    for ax, row in ((pool_ax, b), (ctx_ax, i)):
                        ax.text(s, row, str(pos), ha="center", va="center", fontsize=7,
                                color="white")

    for ax, nrows in ((pool_ax, num_blocks), (ctx_ax, len(table))):
        ax.set_xticks(range(block_size) if block_size <= 16 else [])
        ax.set_yticks(np.arange(-0.5, nrows, 1), minor=True)
        ax.grid(which="minor", axis="y", color="white", lw=1.5)
        ax.tick_params(which="minor", length=0)

    for i, b in enumerate(table):
        fig.add_artist(ConnectionPatch(xyA=(block_size - 0.5, b), coordsA=pool_ax.transData,
                                       xyB=(-0.5, i), coordsB=ctx_ax.transData,
                                       arrowstyle="->", color="0.35", lw=0.8))
    ctx_ax.legend(handles=[Patch(color=request_color(req_id), label=f"req {req_id}: token"),
                           Patch(color=request_color(req_id, 0.18), label="empty slot"),
                           Patch(color=EMPTY, label="not read")],
                  loc="lower right", fontsize=7, frameon=False)
    return fig
