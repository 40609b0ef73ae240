"""Figures for the exploration chapter (11): KV growth over a run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from .perf import SERIES_COLORS


def plot_kv_over_time(histories: Mapping[str, Sequence]) -> Figure:
    """Tokens held in the KV cache after each step, one line per run.

    ``histories`` maps a label to a run's list of :class:`~cblab_src.core.scheduler.StepStats`
    (``stats.kv.tokens`` is read from each).
    """
    fig = Figure(figsize=(7, 2.8), layout="constrained")
    ax = fig.add_subplot()
    for i, (label, history) in enumerate(histories.items()):
        tokens = [s.kv.tokens for s in history]
        ax.step(np.arange(len(tokens)), tokens, where="post", lw=1.5,
                color=SERIES_COLORS[i % len(SERIES_COLORS)], label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("tokens in kv cache")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False)
    return fig

