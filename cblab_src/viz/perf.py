"""Figures of how the cost of a step grows: line charts of work or time against a knob, and
the measured GPU curve of ``book/data/h200_step_costs.json`` (chapter 9)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

# Dark, clearly different colours for series that are not requests (workloads, variants).
SERIES_COLORS = ("0.15", "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b")
MARKERS = ("o", "s", "^", "D", "v", "P")


def plot_lines(x: Sequence[float], panels: Mapping[str, Mapping[str, Sequence[float]]], *,
               xlabel: str, logx: bool = False, logy: bool = False,
               width: float = 7.0) -> Figure:
    """Side-by-side line charts sharing one x axis.

    ``x`` has shape ``(n,)``; ``panels`` maps a y-axis label to ``{series label: (n,) values}``,
    one panel per entry, e.g. ``plot_lines([1, 2, 4], {"steps": {"chat": [9, 5, 3]}},
    xlabel="budget")``. Series keep the same colour and marker in every panel.
    """
    x = np.asarray(x, dtype=float)
    labels = list(dict.fromkeys(label for series in panels.values() for label in series))
    style = {label: (SERIES_COLORS[i % len(SERIES_COLORS)], MARKERS[i % len(MARKERS)])
             for i, label in enumerate(labels)}
    fig = Figure(figsize=(width, 2.9), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, (ylabel, series) in zip(axes, panels.items()):
        for label, y in series.items():
            color, marker = style[label]
            ax.plot(x, np.asarray(y, dtype=float), marker=marker, ms=4, color=color, label=label)
        if logx:
            ax.set_xscale("log", base=2)
        if logy:
            ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if len(series) > 1:
            ax.legend(fontsize=7, frameon=False)
    return fig


def plot_gpu_step_cost(tokens: Sequence[int], layer_ms: Sequence[float], n_layers: int, *,
                       floor_ms: float | None = None,
                       compute_ms_per_token: float | None = None) -> Figure:
    """Measured time of the dense part of a step against the tokens in the step.

    ``tokens`` and ``layer_ms`` have shape ``(n,)``: milliseconds of ONE layer for a step of
    that many tokens; both panels multiply by ``n_layers``. Left: step time (flat, then
    linear). Right: time per token of the step. Optional guides, per layer: ``floor_ms`` (a
    time every step pays whatever its size, e.g. reading the weights) and
    ``compute_ms_per_token`` (the slope at full matrix-multiply speed).
    """
    t = np.asarray(tokens, dtype=float)
    step_ms = np.asarray(layer_ms, dtype=float) * n_layers
    fig = Figure(figsize=(7.5, 3.0), layout="constrained")
    left, right = fig.subplots(1, 2)
    left.plot(t, step_ms, marker="o", ms=4, color="0.15", label="measured")
    right.plot(t, step_ms / t, marker="o", ms=4, color="0.15", label="measured")
    if floor_ms is not None:
        left.axhline(floor_ms * n_layers, color="#1f77b4", ls="--", lw=1,
                     label="reading the weights once")
    if compute_ms_per_token is not None:
        left.plot(t, t * compute_ms_per_token * n_layers, color="#d62728", ls=":", lw=1.2,
                  label="matmul at peak rate")
        left.set_ylim(bottom=0)
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("tokens in the step")
        ax.grid(alpha=0.3)
    left.set_ylabel(f"step time, {n_layers} layers (ms)")
    left.set_ylim(0, step_ms.max() * 1.08)
    right.set_yscale("log")
    right.set_ylabel("time per token (ms)")
    left.legend(fontsize=7, frameon=False, loc="upper left")
    return fig
