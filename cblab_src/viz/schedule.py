"""Figures of a schedule: tokens per step against the budget, and a Gantt chart of requests."""

from __future__ import annotations

import numpy as np
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from ..monitoring.timeline import Phase, state_matrix, tokens_matrix
from .colors import WAITING, request_color, rgba


def _bars(ax, x, bottom, height, colors, width: float = 0.85, **kwargs) -> None:
    """Bars as ONE collection (a slider redraws hundreds of them: one artist draws fast).
    ``x, bottom, height (n,)``, ``colors (n, 4)``; zero-height bars are left out."""
    keep = height > 0
    x, bottom, height, colors = x[keep], bottom[keep], height[keep], colors[keep]
    left, right, top = x - width / 2, x + width / 2, bottom + height
    verts = np.stack([np.stack([left, bottom], 1), np.stack([left, top], 1),
                      np.stack([right, top], 1), np.stack([right, bottom], 1)], 1)   # (n, 4, 2)
    ax.add_collection(PolyCollection(verts, facecolors=colors, **kwargs))


def _draw_budget(ax, history, req_ids, budget: int, legend: bool = True) -> None:
    """Stacked bars: one segment per request, solid for decode, hatched for prefill."""
    steps = np.arange(len(history))
    bottom = np.zeros(len(history))
    decode = np.zeros((len(req_ids), len(history)))
    prefill = np.zeros((len(req_ids), len(history)))
    row = {rid: i for i, rid in enumerate(req_ids)}
    for j, s in enumerate(history):
        for rid in s.decode_ids:
            decode[row[rid], j] += 1
        for rid, _, n in s.prefill_chunks:
            prefill[row[rid], j] += n
    x, lows, highs, solid, light = [], [], [], [], []
    for i, rid in enumerate(req_ids):
        x.append(steps)
        lows.append(bottom.copy())
        highs.append(decode[i])
        solid.append(np.tile(request_color(rid), (len(steps), 1)))
        bottom += decode[i]
    if x:
        _bars(ax, np.concatenate(x), np.concatenate(lows), np.concatenate(highs),
              np.concatenate(solid), linewidths=0)
    x, lows, highs = [], [], []
    for i, rid in enumerate(req_ids):
        x.append(steps)
        lows.append(bottom.copy())
        highs.append(prefill[i])
        light.append(np.tile(request_color(rid, 0.45), (len(steps), 1)))
        bottom += prefill[i]
    if x:
        _bars(ax, np.concatenate(x), np.concatenate(lows), np.concatenate(highs),
              np.concatenate(light), hatch="///", edgecolors="white", linewidths=0)
    ax.set_xlim(-0.5, max(len(history), 1) - 0.5)
    ax.axhline(budget, color="black", ls="--", lw=1)
    ax.set_ylim(0, budget * 1.15)
    ax.set_ylabel("tokens in step")
    if not legend:
        return
    ax.legend(handles=[Patch(color="0.35", label="decode"),
                       Patch(facecolor="0.8", hatch="///", edgecolor="white", label="prefill"),
                       Patch(facecolor="none", edgecolor="black", ls="--", label="budget")],
              loc="lower right", bbox_to_anchor=(1, 1), fontsize=7, ncols=3, frameon=False)


def _draw_gantt(ax, history, requests) -> None:
    """One row per request: waiting grey, prefill light, decode solid; numbers = tokens run."""
    num_steps = len(history)
    states = state_matrix(requests, num_steps)
    tokens = tokens_matrix(history, [r.req_id for r in requests])
    image = np.empty((*states.shape, 4))
    image[:] = rgba("white")
    image[states == Phase.WAITING] = rgba(WAITING)
    for i, r in enumerate(requests):
        image[i, states[i] == Phase.PREFILL] = request_color(r.req_id, 0.45)
        image[i, states[i] == Phase.DECODE] = request_color(r.req_id)
    ax.imshow(image, aspect="auto", interpolation="nearest")
    marks = [(p, i) for i, r in enumerate(requests) for p in r.preempted_steps if p < num_steps]
    if marks:                                  # preemptions: a cross where the KV was freed
        xs, ys = zip(*marks)
        ax.plot(xs, ys, ls="none", marker="x", color="black", ms=7, mew=2)
    if np.count_nonzero(tokens) <= 60:          # numbers only where they stay legible (and
        for i, j in zip(*np.nonzero(tokens)):   # cheap: each text costs a slider ~1 ms)
            ax.text(j, i, str(tokens[i, j]), ha="center", va="center", fontsize=6,
                    in_layout=False)           # inside the axes: no need to measure it
    ax.set_yticks(range(len(requests)), [f"req {r.req_id}" for r in requests], fontsize=8)
    ax.set_xlabel("step")
    ax.set_xlim(-0.5, max(num_steps, 1) - 0.5)


def plot_budget(run) -> Figure:
    """Tokens per step of a :class:`~cblab_src.simulate.ScheduleRun`, by request and kind."""
    fig = Figure(figsize=(7, 2.6), layout="constrained")
    ax = fig.add_subplot()
    _draw_budget(ax, run.history, run.req_ids, run.max_tokens_per_step)
    ax.set_xlabel("step")
    return fig


def plot_timeline(run) -> Figure:
    """Gantt chart of every request over steps, with the budget bars above it."""
    n = len(run.requests)
    fig = Figure(figsize=(7.5, 2.2 + 0.28 * n), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[1.2, max(1.0, 0.3 * n)])
    _draw_budget(top, run.history, run.req_ids, run.max_tokens_per_step, legend=False)
    _draw_gantt(bottom, run.history, run.requests)
    # Few, integer ticks: each tick is an artist, and drawing them is most of a slider move.
    bottom.xaxis.set_major_locator(MaxNLocator(8, integer=True))
    top.yaxis.set_major_locator(MaxNLocator(3, integer=True))
    top.tick_params(axis="x", bottom=False)
    # One legend for both panels (prefill: hatched bars above, light cells below).
    bottom.legend(handles=[Patch(color=WAITING, label="waiting"),
                           Patch(facecolor="0.8", hatch="///", edgecolor="white", label="prefill"),
                           Patch(color="0.35", label="decode"),
                           Line2D([], [], color="black", ls="--", lw=1, label="budget"),
                           Line2D([], [], color="black", marker="x", ls="none", mew=2,
                                  label="preempted")],
                  loc="upper center", bbox_to_anchor=(0.5, -0.25 if n > 3 else -0.5),
                  fontsize=7, ncols=5, frameon=False)
    return fig
