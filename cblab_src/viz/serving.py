"""Figures of chapter 10's sweeps: memory pressure (preemption) and prefix caching."""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.figure import Figure


def plot_pool_sweep(rows: Sequence, *, xlabel: str = "kv pool size (blocks)") -> Figure:
    """Preemptions, recomputed tokens and steps against pool size, from ``SweepRow``s."""
    x = [r.setting for r in rows]
    fig = Figure(figsize=(8, 2.6), layout="constrained")
    axes = fig.subplots(1, 3)
    series = [("preemptions", [r.preemptions for r in rows]),
              ("recomputed tokens", [r.recomputed_tokens for r in rows]),
              ("steps to finish", [r.steps for r in rows])]
    for ax, (label, y) in zip(axes, series):
        ax.plot(x, y, marker="o", color="0.25")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    return fig


def plot_prefix_sweep(cached: Sequence, uncached: Sequence) -> Figure:
    """Prompt tokens computed and mean TTFT against shared-prefix length, with and without
    prefix caching (two lists of ``SweepRow``s over the same prefix lengths)."""
    x = [r.setting for r in cached]
    fig = Figure(figsize=(8, 2.6), layout="constrained")
    left, mid, right = fig.subplots(1, 3)
    for rows, label, style in ((uncached, "no prefix caching", "--"),
                               (cached, "prefix caching", "-")):
        left.plot(x, [r.prefill_tokens for r in rows], style, marker="o", label=label)
        mid.plot(x, [r.mean_ttft for r in rows], style, marker="o", label=label)
    right.plot(x, [100 * r.prefix_hit_rate for r in cached], marker="o", color="0.25")
    left.set_ylabel("prompt tokens computed")
    mid.set_ylabel("mean ttft (steps)")
    right.set_ylabel("prefix hit rate (%)")
    for ax in (left, mid, right):
        ax.set_xlabel("shared prefix length (tokens)")
        ax.grid(alpha=0.3)
    left.legend(fontsize=7, frameon=False)
    return fig
