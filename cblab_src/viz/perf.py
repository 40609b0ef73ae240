"""Figures of how the cost of a step grows: line charts of work or time against a knob, and
the measured GPU curve of ``cblab_src/data/h200_step_costs.json`` (chapter 9)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

# Dark, clearly different colours for series that are not requests (workloads, variants).
SERIES_COLORS = ("0.15", "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b")
MARKERS = ("o", "s", "^", "D", "v", "P")


def _number(value: float, _pos=None) -> str:
    """Tick label: ``0.5``, ``20``, ``4096`` as they are; ``1e5``, ``1e-4`` beyond that range."""
    if value <= 0:
        return ""
    if 1e-3 <= value < 1e5:
        return f"{value:g}"
    return f"{value:.0e}".replace("e+0", "e").replace("e-0", "e-")


def _minor_number(value: float, _pos=None) -> str:
    """Label minor log ticks 2, 3 and 5 (x a power of ten); leave the others blank."""
    if value <= 0:
        return ""
    mantissa = round(value / 10 ** math.floor(math.log10(value)))
    return _number(value) if mantissa in (2, 3, 5) else ""


def _plain_log_axis(axis, low: float, high: float) -> None:
    """Plain-number labels on a log axis; minor ticks labelled when it spans < 1.5 decades."""
    axis.set_major_formatter(FuncFormatter(_number))
    few_decades = low > 0 and high / low < 10 ** 1.5
    axis.set_minor_formatter(FuncFormatter(_minor_number) if few_decades else NullFormatter())


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
            if len(x) <= 12:
                ax.set_xticks(x, [_number(v) for v in x])
            else:
                ax.xaxis.set_major_formatter(FuncFormatter(_number))
            ax.xaxis.set_minor_formatter(NullFormatter())
        if logy:
            ax.set_yscale("log")
            values = np.concatenate([np.asarray(y, dtype=float) for y in series.values()])
            _plain_log_axis(ax.yaxis, values[values > 0].min(), values.max())
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
    that many tokens; both panels multiply by ``n_layers`` and use log scales. Left: step time
    (flat, then growing in proportion to the tokens). Right: time per token of the step.
    Optional guides, per layer: ``floor_ms`` (a time every step pays whatever its size, e.g.
    reading the weights) and ``compute_ms_per_token`` (the slope at full matrix-multiply speed).
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
    low = min(step_ms.min(), floor_ms * n_layers if floor_ms is not None else np.inf)
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=4))
        ax.xaxis.set_major_formatter(FuncFormatter(_number))
        ax.yaxis.set_major_formatter(FuncFormatter(_number))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("tokens in the step")
        ax.grid(alpha=0.3)
    left.set_ylabel(f"step time, {n_layers} layers (ms)")
    left.set_ylim(low / 2, step_ms.max() * 2)
    right.set_ylabel("time per token (ms)")
    left.legend(fontsize=7, frameon=False, loc="upper left")
    return fig
