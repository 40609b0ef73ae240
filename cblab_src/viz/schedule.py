"""Figures of a schedule: tokens per step against the budget, and a Gantt chart of requests."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ..monitoring.timeline import Phase, state_matrix, tokens_matrix
from .colors import EMPTY, WAITING, request_color, rgba


def _draw_budget(ax, history, req_ids, budget: int) -> None:
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
    for i, rid in enumerate(req_ids):
        ax.bar(steps, decode[i], bottom=bottom, color=request_color(rid), width=0.85)
        bottom += decode[i]
    for i, rid in enumerate(req_ids):
        ax.bar(steps, prefill[i], bottom=bottom, color=request_color(rid, 0.45), width=0.85,
               hatch="///", edgecolor="white", linewidth=0)
        bottom += prefill[i]
    ax.axhline(budget, color="black", ls="--", lw=1)
    ax.set_ylim(0, budget * 1.15)
    ax.set_ylabel("tokens in step")
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
    for i, r in enumerate(requests):           # preemptions: a cross where the KV was freed
        for p in r.preempted_steps:
            if p < num_steps:
                ax.plot(p, i, marker="x", color="black", ms=7, mew=2)
    if num_steps <= 40 and len(requests) <= 16:
        for i, j in zip(*np.nonzero(tokens)):
            ax.text(j, i, str(tokens[i, j]), ha="center", va="center", fontsize=6)
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
    _draw_budget(top, run.history, run.req_ids, run.max_tokens_per_step)
    _draw_gantt(bottom, run.history, run.requests)
    bottom.legend(handles=[Patch(color=WAITING, label="waiting"),
                           Patch(color="0.8", label="prefill"),
                           Patch(color="0.35", label="decode"),
                           Line2D([], [], color="black", marker="x", ls="none", mew=2,
                                  label="preempted")],
                  loc="upper center", bbox_to_anchor=(0.5, -0.25 if n > 3 else -0.5),
                  fontsize=7, ncols=4, frameon=False)
    return fig
