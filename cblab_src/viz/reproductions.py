"""Figures of the four reproductions (:mod:`cblab_src.reproductions`): ours drawn as lines and
bars, the papers' numbers as black markers or dashed lines, labelled with their source.

Each function takes a result object and, where the figure shows them, the papers' numbers as
plain values: figures import no experiment code (the results' ``.figure()`` passes them in from
:mod:`cblab_src.reproductions.papers`)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

from matplotlib.ticker import FuncFormatter, NullLocator

from .perf import MARKERS, SERIES_COLORS, _minor_number, _number, _plain_log_axis

PAPER = "0.1"          # the papers' numbers: black, dashed or open markers


def _log_y(ax) -> None:
    """Log y axis with plain numbers at 1, 2, 3, 5 x powers of ten."""
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(_number))
    ax.yaxis.set_minor_formatter(FuncFormatter(_minor_number))


def _log2_budget_axis(ax, values) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(values, [_number(v) for v in values])
    ax.xaxis.set_minor_locator(NullLocator())


def plot_continuous_vs_static(result, vs_naive: Mapping[str, float],
                              vs_optimized: Mapping[str, float]) -> Figure:
    """Left: throughput ((prompt + output) tokens/s, log scale) of static, continuous and
    continuous + paged batching against the output cap. Right: their gain over static, with
    Anyscale's best-case gains of ``"continuous"`` and ``"paged"`` over naive static batching
    (``vs_naive``) and over FasterTransformer (``vs_optimized``)."""
    rows = result.rows
    x = np.arange(len(rows))
    labels = [str(r.cap) for r in rows]
    fig = Figure(figsize=(9, 3.2), layout="constrained")
    left, right = fig.subplots(1, 2)
    series = [("static batching", [r.static_tok_s for r in rows]),
              ("continuous, same batch", [r.continuous_tok_s for r in rows]),
              ("continuous + paged, same memory", [r.paged_tok_s for r in rows])]
    for i, (label, y) in enumerate(series):
        left.plot(x, y, marker=MARKERS[i], color=SERIES_COLORS[i], label=label)
    left.set_yscale("log")
    values = np.concatenate([np.asarray(y, dtype=float) for _, y in series])
    _plain_log_axis(left.yaxis, values.min(), values.max())
    left.set_ylabel("throughput (tokens/s)")
    for i, (label, y) in enumerate(series[1:], start=1):
        right.plot(x, np.asarray(y) / np.asarray(series[0][1]), marker=MARKERS[i],
                   color=SERIES_COLORS[i], label=label.split(",")[0] + " (ours)")
    last = x[-1]
    for key, dx in (("continuous", -0.08), ("paged", 0.08)):
        right.scatter([last + dx], [vs_naive[key]], marker="x", color=PAPER, zorder=3)
        right.scatter([last + dx], [vs_optimized[key]], marker="D", facecolor="none",
                      edgecolor=PAPER, zorder=3)
    right.scatter([], [], marker="x", color=PAPER, label="Anyscale, vs naive static "
                  f"({vs_naive['continuous']:g}x, {vs_naive['paged']:g}x)")
    right.scatter([], [], marker="D", facecolor="none", edgecolor=PAPER,
                  label="Anyscale, vs FasterTransformer "
                        f"({vs_optimized['continuous']:g}x, {vs_optimized['paged']:g}x)")
    right.axhline(1.0, color="0.6", lw=0.8)
    _log_y(right)
    right.set_ylim(0.8, 40)
    right.set_ylabel("gain over static batching")
    for ax in (left, right):
        ax.set_xticks(x, labels)
        ax.set_xlabel("output length cap (tokens)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, frameon=False)
    return fig


def plot_kv_waste(result, vllm_fig2: Mapping[str, Mapping[str, float]]) -> Figure:
    """Left: what reserved KV memory holds, ours (solid) beside vLLM's Fig. 2 (hatched, with
    its external fragmentation), per scheme. Right: paging's waste against block size.

    ``vllm_fig2`` maps each scheme (``"max"``, ``"pow2"``, ``"oracle"``, ``"paged"``) to the
    paper's shares in %: ``token_states``, ``reservation``, ``internal_frag``, ``external_frag``.
    """
    parts = [("token_states", "token states", "#2ca02c"), ("reservation", "reservation", "#ff7f0e"),
             ("internal_frag", "internal frag.", "#d62728")]
    fig = Figure(figsize=(9.5, 3.3), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=(1.3, 1))
    rows = result.schemes
    x = np.arange(len(rows))
    for offset, source in ((-0.19, "ours"), (0.19, "paper")):
        bottom = np.zeros(len(rows))
        for key, label, color in parts:
            if source == "ours":
                h = np.array([getattr(r, key) for r in rows])
            else:
                h = np.array([vllm_fig2[r.scheme][key] for r in rows])
            left.bar(x + offset, h, 0.36, bottom=bottom, color=color,
                     hatch="//" if source == "paper" else None, edgecolor="white", lw=0,
                     label=label if source == "ours" else None)
            bottom += h
        if source == "paper":
            ext = np.array([vllm_fig2[r.scheme]["external_frag"] for r in rows])
            left.bar(x + offset, ext, 0.36, bottom=bottom, color="0.75", hatch="//",
                     edgecolor="white", lw=0, label="external frag. (paper only)")
    left.set_xticks(x, [f"{r.label.split(' b=')[0]}\nours | paper" for r in rows], fontsize=7)
    left.set_ylabel("kv memory x time (%)")
    left.set_ylim(0, 128)
    left.set_yticks([0, 20, 40, 60, 80, 100])
    left.legend(fontsize=7, frameon=False, loc="upper center", ncols=2)
    sweep = result.block_sweep
    b = [r.block_size for r in sweep]
    right.plot(b, [r.internal_frag for r in sweep], marker="o", color=SERIES_COLORS[0],
               label="paged, ours")
    right.axhline(4.0, color=PAPER, ls="--", lw=1, label="vLLM: waste under 4%")
    right.scatter([16], [100 - vllm_fig2["paged"]["token_states"]], marker="x", color=PAPER,
                  zorder=3, label="vLLM Fig. 2 (block 16)")
    _log2_budget_axis(right, b)
    right.set_xlabel("block size (tokens)")
    right.set_ylabel("memory not holding tokens (%)")
    right.grid(alpha=0.3)
    right.legend(fontsize=7, frameon=False)
    return fig


def _finish_budget_axes(ax, budgets, xlabel: str) -> None:
    """A token-budget x axis (log 2) with Sarathi-Serve's budgets 512 and 2048 dotted."""
    for budget in (512, 2048):
        ax.axvline(budget, color="0.5", ls=":", lw=1)
    _log2_budget_axis(ax, budgets)
    ax.set_xlabel(xlabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False)


def plot_chunked_prefill(result) -> Figure:
    """Against the token budget (decode-first, chunk = budget): left, inter-token latency
    (p99 and max, ms); right, median time to first token (ms). Dashed: prefill-first with whole
    prompts (generation stalls); dotted: Sarathi-Serve's budgets 512 and 2048."""
    sweep = result.sweep
    b = [r.budget for r in sweep]
    by = {r.name: r for r in result.configs}
    stall = by["prefill-first, whole prompts"]
    fig = Figure(figsize=(9, 3.1), layout="constrained")
    left, right = fig.subplots(1, 2)
    left.plot(b, [r.itl_p99_ms for r in sweep], marker="o", color=SERIES_COLORS[1],
              label="decode-first: ITL p99")
    left.plot(b, [r.itl_max_ms for r in sweep], marker="^", color=SERIES_COLORS[2],
              label="decode-first: ITL max")
    left.axhline(stall.itl_max_ms, color=PAPER, ls="--", lw=1,
                 label="prefill-first, whole prompts: ITL max")
    right.plot(b, [r.ttft_p50_ms for r in sweep], marker="o", color=SERIES_COLORS[0],
               label="decode-first: TTFT p50")
    right.axhline(stall.ttft_p50_ms, color=PAPER, ls="--", lw=1,
                  label="prefill-first, whole prompts")
    for ax in (left, right):
        _log_y(ax)
        _finish_budget_axes(ax, b, "token budget = chunk size (tokens)")
    left.set_ylabel("inter-token latency (ms)")
    right.set_ylabel("time to first token (ms)")
    return fig


def plot_budget_knee(result) -> Figure:
    """Against the token budget: left, output tokens/s; right, inter-token latency p50 and p99
    (ms). The throughput knee (first budget within 10% of the best throughput) and the H200
    roofline's ridge are marked; dotted lines are Sarathi-Serve's budgets 512 and 2048."""
    rows = result.rows
    b = [r.budget for r in rows]
    fig = Figure(figsize=(9, 3.1), layout="constrained")
    left, right = fig.subplots(1, 2)
    left.plot(b, [r.throughput_tok_s for r in rows], marker="o", color=SERIES_COLORS[0],
              label="output tokens/s")
    right.plot(b, [r.itl_p99_ms for r in rows], marker="o", color=SERIES_COLORS[2],
               label="ITL p99")
    right.plot(b, [r.itl_p50_ms for r in rows], marker="s", color=SERIES_COLORS[1],
               label="ITL p50")
    for ax in (left, right):
        ax.axvline(result.knee_budget, color=SERIES_COLORS[3], lw=1.2,
                   label=f"throughput knee ({result.knee_budget} tokens)")
        ax.axvline(result.ridge_tokens, color="0.4", ls="--", lw=1,
                   label=f"H200 roofline ridge ({result.ridge_tokens:.0f})")
        _finish_budget_axes(ax, b, "max_tokens_per_step (tokens)")
    left.set_ylabel("throughput (tokens/s)")
    left.set_ylim(0, None)
    right.set_ylabel("inter-token latency (ms)")
    right.set_ylim(0, None)
    return fig
