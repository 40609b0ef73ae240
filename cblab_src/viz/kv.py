"""Figures of KV memory: the block pool, block tables, and fragmentation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from .colors import CACHED, EMPTY, request_color, rgba


def plot_block_pool(snapshot, *, max_cols: int | None = None) -> Figure:
    """Heatmap of a :class:`~cblab_src.monitoring.pool_snapshot.PoolSnapshot`: one row per
    block, one column per slot. Filled slots take the owner's colour, empty slots of a used block
    a light tint of it (internal fragmentation), free blocks stay light grey; blocks kept only
    for prefix reuse are mid grey, and a block shared by several requests is labelled with its
    reference count."""
    owners, fill = snapshot.owners, snapshot.fill
    num_blocks, block_size = fill.shape
    image = np.empty((num_blocks, block_size, 4))
    image[:] = rgba(EMPTY)
    image[snapshot.cached] = rgba(CACHED)
    for b, owner in enumerate(owners):
        if owner is not None:
            image[b] = request_color(owner, 0.18)
            image[b, fill[b]] = request_color(owner)
    height = min(1.0 + 0.22 * num_blocks, 9)
    fig = Figure(figsize=(min(3.0 + 0.25 * block_size, 8), height + 0.5), layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(image, aspect="auto", interpolation="nearest")
    if num_blocks <= 40:
        ax.set_yticks(range(num_blocks), [f"{b}" for b in range(num_blocks)], fontsize=7)
        ax.hlines(np.arange(0.5, num_blocks - 1, 1), -0.5, block_size - 0.5, color="white",
                  lw=1.5)
        for b, owner in enumerate(owners):
            refs = snapshot.ref_counts[b]
            label = f" req {owner}" + (f" shared x{refs}" if refs > 1 else "")
            if owner is not None:
                ax.text(block_size - 0.5, b, label, va="center", ha="left", fontsize=7)
            elif snapshot.cached[b]:
                ax.text(block_size - 0.5, b, " cached", va="center", ha="left", fontsize=7)
    ax.tick_params(which="minor", length=0)
    if block_size <= 16:
        ax.set_xticks(range(block_size))
    ax.set_xlabel("slot in block")
    ax.set_ylabel("block id")
    used = sorted({o for o in owners if o is not None}, key=str)
    extra = [Patch(color=CACHED, label="cached")] if snapshot.cached.any() else []
    ax.legend(handles=[Patch(color=request_color(o), label=f"req {o}") for o in used]
              + extra + [Patch(color=EMPTY, label="free")],
              loc="upper center", bbox_to_anchor=(0.5, -0.12 if num_blocks > 12 else -0.25),
              fontsize=7, frameon=False, ncols=4)
    return fig


def plot_fragmentation(block_sizes: Sequence[int], wasted_fraction: Sequence[float]) -> Figure:
    """Share of allocated KV slots left empty, against block size."""
    fig = Figure(figsize=(5, 2.8), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(block_sizes, 100 * np.asarray(wasted_fraction), marker="o", color="0.25")
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(block_sizes), [str(b) for b in block_sizes])
    ax.set_xlabel("block size (tokens)")
    ax.set_ylabel("empty slots (% of allocated)")
    return fig
