"""Figures for the exploration chapter (11): token trajectories and KV growth over a run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from .perf import MARKERS, SERIES_COLORS


def plot_token_trajectories(trajectories: Mapping[str, Sequence[int]], *,
                            vocab_size: int | None = None) -> Figure:
    """Token id against generation step, one line per way of choosing tokens.

    ``trajectories`` maps a label (``"greedy"``, ``"T=1.0"`` ...) to the ``(n,)`` token ids it
    produced. Lines that overlap mean the same choices; where they part, the trajectories
    diverge.
    """
    fig = Figure(figsize=(7, 2.8), layout="constrained")
    ax = fig.add_subplot()
    for i, (label, ids) in enumerate(trajectories.items()):
        ids = np.asarray(ids)
        ax.plot(np.arange(len(ids)), ids, marker=MARKERS[i % len(MARKERS)], ms=4, lw=1.2,
                color=SERIES_COLORS[i % len(SERIES_COLORS)], label=label, alpha=0.9)
    if vocab_size is not None:
        ax.set_ylim(-2, vocab_size + 1)
    ax.set_xlabel("generation step")
    ax.set_ylabel("token id")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1, 1))
    return fig


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

