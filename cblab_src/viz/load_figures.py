"""Figures of serving under load (chapter 12): latency against the arrival rate, queues over
time, capacity and goodput under latency targets, and the rate explorer's picture.

Every function takes plain numbers — rates, latencies, ``(t_ms, n)`` queue arrays — keyed by
policy name, never a run: figures import no experiment code (:mod:`cblab_src.load` makes the
runs). A policy has one colour, marker and line style in every figure (:func:`policy_style`):
static batching dark grey, prefill-first orange, decode-first blue, vLLM v1 green and dashed
(it often coincides with decode-first, and the dashes keep both lines visible). Any other name
(a server configuration, a paper) gets the next of :data:`~cblab_src.viz.perf.SERIES_COLORS`.

:func:`knee_rate` is the one computation here: where a latency curve leaves its low-load level,
read off the points a figure draws.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from .perf import MARKERS, SERIES_COLORS, _minor_number, _number

# name -> (colour, marker, line style, label)
POLICY_STYLES = {
    "static": ("0.25", "s", "-", "static"),
    "prefill_first": ("#ff7f0e", "^", "-", "prefill-first"),
    "decode_first": ("#1f77b4", "o", "-", "decode-first"),
    "vllm_v1": ("#2ca02c", "x", "--", "vLLM v1"),
}


def policy_style(name: str, index: int = 0) -> tuple[str, str, str, str]:
    """``(colour, marker, line style, label)`` of a policy; another name gets the ``index``-th
    series colour and marker, a solid line, and itself as label."""
    if name in POLICY_STYLES:
        return POLICY_STYLES[name]
    return (SERIES_COLORS[index % len(SERIES_COLORS)], MARKERS[index % len(MARKERS)], "-",
            str(name))


def _width(name: str) -> float:
    """Line width: vLLM v1's dashed line thinner, so the line it covers shows around it."""
    return 1.0 if name == "vllm_v1" else 1.8


def knee_rate(rates: Sequence[float], values: Sequence[float], factor: float = 10.0) -> float:
    """The rate at which ``values`` (e.g. p99 TTFT, one per rate, rates ascending) first exceed
    ``factor`` times their value at the lowest rate: linear in the rate and in ``log(value)``
    between the last point below and the first above. NaN if no point exceeds it."""
    r = np.asarray(rates, dtype=float)
    v = np.asarray(values, dtype=float)
    if r.ndim != 1 or r.shape != v.shape or r.size < 2:
        raise ValueError(f"rates and values must be 1-D of the same length >= 2, got shapes "
                         f"{r.shape} and {v.shape}")
    if np.any(np.diff(r) <= 0):
        raise ValueError(f"rates must be strictly ascending, got {r.tolist()}")
    if not factor > 1:
        raise ValueError(f"factor must be > 1, got {factor!r}")
    if not np.all(v > 0):
        raise ValueError("values must be positive (latencies)")
    limit = factor * v[0]
    above = np.flatnonzero(v > limit)
    if not above.size:
        return float("nan")
    i = int(above[0])                      # i >= 1: v[0] < limit
    share = (np.log(limit) - np.log(v[i - 1])) / (np.log(v[i]) - np.log(v[i - 1]))
    return float(r[i - 1] + share * (r[i] - r[i - 1]))


def _log_y(ax) -> None:
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(_number))
    ax.yaxis.set_minor_formatter(FuncFormatter(_minor_number))


def _legend(ax, **kwargs) -> None:
    ax.legend(fontsize=7, frameon=False, **kwargs)


def plot_latency_vs_load(rates: Sequence[float],
                         panels: Mapping[str, Mapping[str, Sequence[float]]], *,
                         knees: Mapping[str, float] | None = None,
                         xlabel: str = "arrival rate (requests/s)") -> Figure:
    """Latency-versus-load curves, one panel per entry of ``panels`` (``{y label: {policy:
    (n,) values in ms}}``, one value per rate of ``rates``, shape ``(n,)``), log y axes. Each
    policy of ``knees`` gets a dotted vertical line at its knee (a rate) in its colour, in
    every panel; a NaN knee (none in the range) is left out."""
    x = np.asarray(rates, dtype=float)
    fig = Figure(figsize=(3.1 * len(panels) + 0.6, 3.0), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, (ylabel, series) in zip(axes, panels.items()):
        for i, (name, y) in enumerate(series.items()):
            color, marker, ls, label = policy_style(name, i)
            ax.plot(x, np.asarray(y, dtype=float), marker=marker, ms=4, ls=ls, color=color,
                    lw=_width(name), label=label)
        for i, (name, knee) in enumerate((knees or {}).items()):
            if np.isfinite(knee):
                ax.axvline(knee, color=policy_style(name, i)[0], ls=":", lw=1.2)
        _log_y(ax)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    _legend(axes[0])
    return fig


def plot_queues(panels: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]]) -> Figure:
    """Requests waiting for their first token over time: one panel per entry of ``panels``
    (``{title: {policy: (t_ms, n)}}``, two arrays of the same length, as
    ``LoadRun.queue()`` returns them), as steps, time in seconds."""
    fig = Figure(figsize=(3.4 * len(panels) + 0.4, 2.9), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, (title, series) in zip(axes, panels.items()):
        for i, (name, (t, n)) in enumerate(series.items()):
            color, _, ls, label = policy_style(name, i)
            ax.step(np.asarray(t, dtype=float) / 1000.0, np.asarray(n), where="post",
                    color=color, ls=ls, lw=0.6 * _width(name), label=label)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("time (s)")
        ax.set_ylabel("waiting for a first token")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    _legend(axes[0], loc="upper left")
    return fig


def plot_capacity_goodput(capacity: Mapping[str, Mapping[str, float]], rates: Sequence[float],
                          goodput: Mapping[str, Mapping[str, Sequence[float]]]) -> Figure:
    """Left: each policy's capacity (requests/s, log scale) under each pair of targets,
    ``capacity = {targets label: {policy: rate}}``, as grouped bars with their values. Right:
    goodput (requests/s meeting both targets) against the arrival rate, ``goodput = {targets
    label: {policy: (n,) values}}`` over ``rates`` (shape ``(n,)``): one line style per pair
    (solid, dashed), one colour per policy, and the grey diagonal where every request meets
    them."""
    labels = list(capacity)
    policies = list(dict.fromkeys(p for caps in capacity.values() for p in caps))
    fig = Figure(figsize=(8.6, 3.2), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=(1, 1.25))
    width = 0.8 / len(policies)
    x = np.arange(len(labels))
    floor = 1e-3
    for j, name in enumerate(policies):
        color, _, _, label = policy_style(name, j)
        values = [capacity[lab].get(name, np.nan) for lab in labels]
        bars = left.bar(x + (j - (len(policies) - 1) / 2) * width,
                        [max(v, floor) for v in values], width, color=color, label=label,
                        hatch="//" if name == "vllm_v1" else None, edgecolor="white", lw=0)
        for bar, v in zip(bars, values):
            left.annotate(f"{v:.3g}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                          ha="center", va="bottom", fontsize=6, xytext=(0, 1),
                          textcoords="offset points")
    _log_y(left)
    left.set_ylim(floor, 10 ** np.ceil(np.log10(max(np.nanmax(
        [v for caps in capacity.values() for v in caps.values()]), floor)) + 1))
    left.set_xticks(x, labels, fontsize=8)
    left.set_ylabel("capacity (requests/s)")
    left.grid(alpha=0.3, axis="y")
    _legend(left, loc="upper left", ncol=2)
    r = np.asarray(rates, dtype=float)
    right.plot(r, r, color="0.7", lw=1, label="every request meets them")
    for k, (lab, series) in enumerate(goodput.items()):
        ls = ("-", "--", ":")[k % 3]
        for j, (name, y) in enumerate(series.items()):
            color, marker, _, _ = policy_style(name, j)
            right.plot(r, np.asarray(y, dtype=float), color=color, ls=ls, marker=marker, ms=3,
                       lw=0.7 * _width(name))
        right.plot([], [], color="0.3", ls=ls, label=lab)
    right.set_xlabel("arrival rate (requests/s)")
    right.set_ylabel("goodput (requests/s)")
    right.set_ylim(bottom=0)
    right.grid(alpha=0.3)
    _legend(right, loc="upper left")
    return fig


def plot_gains(gains: Mapping[str, float], *, ours: Sequence[str] = (),
               xlabel: str = "capacity gain (x)") -> Figure:
    """Horizontal bars of ratios (``{label: value}``, top to bottom), each with its value;
    the labels in ``ours`` blue, the others (a paper's numbers) dark grey; a line at 1."""
    labels = list(gains)
    fig = Figure(figsize=(6.4, 0.45 * len(labels) + 0.9), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(labels))[::-1]
    values = [float(gains[k]) for k in labels]
    colors = ["#1f77b4" if k in ours else "0.35" for k in labels]
    ax.barh(y, values, color=colors, height=0.6)
    for yi, v in zip(y, values):
        ax.annotate(f"{v:.2f}x", (v, yi), va="center", fontsize=8, xytext=(3, 0),
                    textcoords="offset points")
    ax.axvline(1.0, color="0.6", lw=0.8)
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xlim(0, max(values) * 1.2)
    ax.set_xlabel(xlabel)
    ax.grid(alpha=0.3, axis="x")
    return fig


def plot_goodput_per_gpu(rates: Sequence[float],
                         panels: Mapping[str, Mapping[str, Sequence[float]]]) -> Figure:
    """One panel per pair of targets, ``panels = {targets label: {layout: (n,) goodput per
    GPU}}`` against the arrival rate per GPU ``rates`` (``(n,)``): one line per way of using
    the GPUs ("2 colocated", "1 prefill + 1 decode", ...), colocated ones solid, split ones
    dashed."""
    fig = Figure(figsize=(8.6, 3.0), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels), sharey=True))
    r = np.asarray(rates, dtype=float)
    for ax, (title, series) in zip(axes, panels.items()):
        ax.plot(r, r, color="0.75", lw=1, label="every request meets them")
        for j, (name, y) in enumerate(series.items()):
            color, marker, _, label = policy_style(name, j)
            ax.plot(r, np.asarray(y, dtype=float), color=color, marker=marker, ms=4,
                    ls="-" if "colocated" in name else "--", lw=1.5, label=label)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("arrival rate per GPU (requests/s)")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("goodput per GPU (requests/s)")
    _legend(axes[-1], loc="upper left")
    return fig


def plot_latency_vs_throughput(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
                               *, ylabel: str = "p50 end-to-end latency (s)") -> Figure:
    """One line per policy through its points ``(throughput, latency)`` (``{policy: ((n,)
    output tokens/s, (n,) latency)}``, in increasing arrival rate), both axes logarithmic."""
    fig = Figure(figsize=(5.2, 3.2), layout="constrained")
    ax = fig.subplots()
    for i, (name, (x, y)) in enumerate(curves.items()):
        color, marker, ls, label = policy_style(name, i)
        ax.plot(np.asarray(x, dtype=float), np.asarray(y, dtype=float), marker=marker, ms=4,
                ls=ls, color=color, lw=_width(name), label=label)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(_number))
    _log_y(ax)
    ax.set_xlabel("throughput (output tokens/s)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    _legend(ax, loc="upper left")
    return fig


def plot_rate_explorer(rate: float, queues: Mapping[str, tuple[np.ndarray, np.ndarray]],
                       rates: Sequence[float], p99: Mapping[str, Sequence[float]],
                       here: Mapping[str, float]) -> Figure:
    """The rate explorer's picture. Left: requests waiting for a first token over time at
    ``rate`` (``{policy: (t_ms, n)}``). Right: p99 TTFT (ms, log) against the rate for every
    policy (``{policy: (n,) values}`` over ``rates``), the value at ``rate`` ringed
    (``{policy: ms}``) and a grey line at ``rate``."""
    fig = Figure(figsize=(7.6, 3.0), layout="constrained")
    left, right = fig.subplots(1, 2)
    for i, (name, (t, n)) in enumerate(queues.items()):
        color, _, ls, label = policy_style(name, i)
        left.step(np.asarray(t, dtype=float) / 1000.0, np.asarray(n), where="post",
                  color=color, ls=ls, lw=0.6 * _width(name), label=label)
    left.set_title(f"{rate:g} requests/s", fontsize=9)
    left.set_xlabel("time (s)")
    left.set_ylabel("waiting for a first token")
    left.set_ylim(bottom=0)
    left.grid(alpha=0.3)
    _legend(left, loc="upper left")
    x = np.asarray(rates, dtype=float)
    for i, (name, y) in enumerate(p99.items()):
        color, marker, ls, label = policy_style(name, i)
        right.plot(x, np.asarray(y, dtype=float), marker=marker, ms=3, ls=ls, color=color,
                   lw=_width(name), label=label)
        if name in here:
            right.scatter([rate], [here[name]], s=60, facecolor="none", edgecolor=color, lw=1.5,
                          zorder=3)
    right.axvline(rate, color="0.6", lw=1)
    _log_y(right)
    right.set_xlabel("arrival rate (requests/s)")
    right.set_ylabel("p99 TTFT (ms)")
    right.grid(alpha=0.3)
    return fig
