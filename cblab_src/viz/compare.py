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


def render_rgba(fig: Figure, dpi: int = 80) -> np.ndarray:
    """Rasterise ``fig`` at ``dpi``: a ``(height, width, 4)`` uint8 array."""
    fig.set_dpi(dpi)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba()).copy()


def side_by_side(figures: Sequence[Figure], labels: Sequence[str], *, ncols: int | None = None,
                 dpi: int = 80) -> Figure:
    """Panels of ``figures`` (each rasterised at ``dpi``) in a grid of ``ncols`` columns
    (default: all in one row), each captioned by ``labels[i]`` below it.

    The panels keep their own pixels: the result's ``dpi`` equals ``dpi``, so displaying it at
    that resolution shows every panel at its native size.
    """
    if len(figures) == 0 or len(figures) != len(labels):
        raise ValueError(f"figures and labels must be non-empty and of equal length, got "
                         f"{len(figures)} and {len(labels)}")
    images = [render_rgba(f, dpi) for f in figures]        # each (h, w, 4)
    ncols = len(images) if ncols is None else max(1, min(int(ncols), len(images)))
    nrows = -(-len(images) // ncols)
    cell_w = max(im.shape[1] for im in images) / dpi     # inches
    cell_h = max(im.shape[0] for im in images) / dpi
    caption = 0.3                                         # inches below each panel
    fig = Figure(figsize=(cell_w * ncols, (cell_h + caption) * nrows), dpi=dpi)
    for k, (image, label) in enumerate(zip(images, labels)):
        row, col = divmod(k, ncols)
        h, w = image.shape[0] / dpi, image.shape[1] / dpi
        total_h = (cell_h + caption) * nrows
        left = col * cell_w / (cell_w * ncols)
        bottom = (total_h - (row * (cell_h + caption)) - h) / total_h
        ax = fig.add_axes((left, bottom, w / (cell_w * ncols), h / total_h))
        ax.imshow(image, interpolation="none")
        ax.set_axis_off()
        ax.text(0.5, -0.02, label, transform=ax.transAxes, ha="center", va="top", fontsize=10,
                fontweight="bold")
    return fig
