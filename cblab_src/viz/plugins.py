"""Figures for chapter 8 (plugins): several schedules of one workload, one above the other."""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.figure import Figure

from .schedule import _draw_budget


def plot_budget_runs(runs: Sequence, labels: Sequence[str]) -> Figure:
    """Tokens per step of several :class:`~cblab_src.simulate.ScheduleRun` s, stacked.

    One row per run, sharing the step axis, so the same workload under different policies
    (a fixed chunk size, a plugin that changes it) can be compared step by step. Each row is
    the chart of :func:`~cblab_src.viz.plot_budget` (decode solid, prefill hatched, budget
    dashed); ``labels[i]`` names row ``i`` on its y axis. ``len(runs) == len(labels) >= 1``.
    """
    if len(runs) != len(labels) or not runs:
        raise ValueError(f"need one label per run and at least one run, got {len(runs)} runs "
                         f"and {len(labels)} labels")
    fig = Figure(figsize=(7, 0.4 + 1.9 * len(runs)), layout="constrained")
    axes = fig.subplots(len(runs), 1, sharex=True, squeeze=False)[:, 0]
    for i, (ax, run, label) in enumerate(zip(axes, runs, labels)):
        _draw_budget(ax, run.history, run.req_ids, run.max_tokens_per_step)
        ax.set_ylabel(f"{label}\ntokens in step", fontsize=8)
        if i > 0:                       # one legend, above the top row
            ax.get_legend().remove()
    axes[-1].set_xlabel("step")
    return fig
