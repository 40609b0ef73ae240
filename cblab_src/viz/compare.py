"""Small multiples: the same figure under a few settings, side by side in one static figure.

A slider needs a live kernel; a row of precomputed settings does not. :func:`side_by_side`
takes figures already drawn by any ``cblab_src.viz`` function (one per setting) and lays them
out as panels with a caption each, so the static book shows what the slider would show.

``side_by_side([plot_budget(runs[b]) for b in (4, 8, 16)], ["budget 4", "budget 8", "budget 16"])``
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .._math import ceil_div


def render_rgba(fig: Figure, dpi: int = 80) -> np.ndarray:
    """Rasterise ``fig`` at ``dpi``: a ``(height, width, 4)`` uint8 array."""
    fig.set_dpi(dpi)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba()).copy()


def side_by_side(figures: Sequence[Figure], labels: Sequence[str], *, ncols: int | None = None,
                 dpi: int = 80) -> Figure:
    """Panels of ``figures`` (each rasterised at ``dpi``) in a grid of ``ncols`` columns
    (default: all in one row), each captioned by ``labels[i]`` below it. A column is as wide
    as its widest panel, a row as tall as its tallest.

    The panels keep their own pixels: the result's ``dpi`` equals ``dpi``, so displaying it at
    that resolution shows every panel at its native size.
    """
    if len(figures) == 0 or len(figures) != len(labels):
        raise ValueError(f"figures and labels must be non-empty and of equal length, got "
                         f"{len(figures)} and {len(labels)}")
    images = [render_rgba(f, dpi) for f in figures]        # each (h, w, 4)
    ncols = len(images) if ncols is None else max(1, min(int(ncols), len(images)))
    nrows = ceil_div(len(images), ncols)
    caption = 0.3                                         # inches below each panel
    # Each column as wide as its widest panel, each row as tall as its tallest (inches).
    col_w = [max(im.shape[1] for im in images[c::ncols]) / dpi for c in range(ncols)]
    row_h = [max(im.shape[0] for im in images[r * ncols:(r + 1) * ncols]) / dpi + caption
             for r in range(nrows)]
    total_w, total_h = sum(col_w), sum(row_h)
    fig = Figure(figsize=(total_w, total_h), dpi=dpi)
    for k, (image, label) in enumerate(zip(images, labels)):
        row, col = divmod(k, ncols)
        h, w = image.shape[0] / dpi, image.shape[1] / dpi
        left = sum(col_w[:col]) + (col_w[col] - w) / 2     # centred in its column
        top = sum(row_h[:row])                              # panels hang from the row's top
        ax = fig.add_axes((left / total_w, 1 - (top + h) / total_h, w / total_w, h / total_h))
        ax.imshow(image, interpolation="none")
        ax.set_axis_off()
        ax.text(0.5, -0.02, label, transform=ax.transAxes, ha="center", va="top", fontsize=10,
                fontweight="bold")
    return fig
