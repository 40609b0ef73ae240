"""Figures of step costs in milliseconds: cost models side by side, a step's parts, and a
timed run's step durations (:mod:`cblab_src.costmodel`, :mod:`cblab_src.timing`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from ..costmodel import PARTS, CostModel, StepArrays, StepComposition
from .perf import MARKERS, SERIES_COLORS, _number, _plain_log_axis

PART_COLORS = {"dense": "#1f77b4", "attention": "#ff7f0e", "lm_head": "#2ca02c",
               "allreduce": "#d62728", "overhead": "#7f7f7f"}


def plot_step_costs(models: Mapping[str, CostModel], *, context_len: int = 512,
                    batch_sizes: Sequence[int] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)) -> Figure:
    """Decode-only steps of ``B`` requests, each with ``context_len`` cached tokens, under each
    cost model: left, the step's milliseconds; right, milliseconds per token (log-log). The
    flat start is the weights read once per step; the per-token cost falls until the step
    turns compute-bound (or the KV reads dominate)."""
    b = np.asarray(batch_sizes)
    steps = StepArrays.of([StepComposition.uniform(int(n), context_len) for n in b])
    fig = Figure(figsize=(8, 3.0), layout="constrained")
    left, right = fig.subplots(1, 2)
    values = []
    for i, (label, model) in enumerate(models.items()):
        ms = model.steps_ms(steps)
        values.append(ms)
        style = dict(marker=MARKERS[i % len(MARKERS)], ms=4, color=SERIES_COLORS[i % len(SERIES_COLORS)])
        left.plot(b, ms, label=label, **style)
        right.plot(b, ms / b, label=label, **style)
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.set_xticks(b, [_number(v) for v in b])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_yscale("log")
        ax.set_xlabel(f"decode requests in the step (context {context_len})")
        ax.grid(alpha=0.3)
    all_ms = np.concatenate(values)
    _plain_log_axis(left.yaxis, all_ms.min(), all_ms.max())
    per = np.concatenate([v / b for v in values])
    _plain_log_axis(right.yaxis, per.min(), per.max())
    left.set_ylabel("step time (ms)")
    right.set_ylabel("ms per token")
    left.legend(fontsize=7, frameon=False)
    return fig


def plot_step_parts(model: CostModel, steps: Mapping[str, StepComposition]) -> Figure:
    """Stacked horizontal bars: each named step's milliseconds split into the model's parts
    (dense, attention, LM head, all-reduce, overhead)."""
    names = list(steps)
    arrays = StepArrays.of(steps.values())
    parts = model.parts(arrays)
    fig = Figure(figsize=(7, 0.5 + 0.45 * len(names)), layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(len(names))
    left = np.zeros(len(names))
    for part in PARTS:
        width = parts[part]
        if not np.any(width > 0):
            continue
        ax.barh(y, width, left=left, color=PART_COLORS[part], label=part)
        left += width
    for yi, total in zip(y, left):
        ax.text(total, yi, f" {total:.1f} ms", va="center", fontsize=7)
    ax.set_yticks(y, names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, left.max() * 1.2)
    ax.set_xlabel(f"step time (ms), {model.name}")
    ax.legend(fontsize=7, frameon=False, ncols=len(PARTS), loc="lower right",
              bbox_to_anchor=(1, 1))
    return fig


def plot_step_times(run) -> Figure:
    """A :class:`~cblab_src.timing.TimedRun` over time: each step as a bar from its start to its
    end (height: its tokens, split into decode and prefill), so long prefill steps show as wide
    bars that stall every decode."""
    end = np.asarray(run.step_end_ms)
    width = np.asarray(run.step_ms)
    start = end - width
    decode = np.array([len(s.decode_ids) for s in run.history])
    prefill = np.array([s.num_prefill_tokens for s in run.history])
    fig = Figure(figsize=(8, 2.8), layout="constrained")
    ax = fig.add_subplot()
    ax.bar(start, decode, width=width, align="edge", color=SERIES_COLORS[1], label="decode tokens")
    ax.bar(start, prefill, width=width, bottom=decode, align="edge", color="#ff7f0e",
           alpha=0.6, label="prefill tokens")
    ax.set_xlabel(f"time (ms), {run.cost_model.name}")
    ax.set_ylabel("tokens in the step")
    ax.set_xlim(0, end[-1] if len(end) else 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False)
    return fig
