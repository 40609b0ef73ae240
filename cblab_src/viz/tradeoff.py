"""Throughput against latency over a sweep of budgets and chunk sizes (chapter 4).

Every point is one :class:`~cblab_src.simulate.ScheduleRun` of the same workload. Throughput is
counted in tokens per step (the workload's token count is fixed, so more tokens per step means
fewer steps); latencies are counted in steps. What a step costs in time is not modelled here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from matplotlib import colormaps
from matplotlib.figure import Figure


@dataclass(frozen=True)
class TradeoffPoint:
    """What one run of a sweep achieved, in steps and tokens."""

    budget: int                # max_tokens_per_step
    chunk: int                 # prefill_chunk_size
    steps: int                 # steps to finish the whole workload
    tokens_per_step: float     # throughput proxy: tokens processed / steps
    mean_ttft: float           # mean time to first token, in steps
    max_itl: int               # longest gap between two tokens of one request, in steps
    largest_decode_step: int   # most tokens in any step that carried a decode token

    @classmethod
    def of(cls, run) -> "TradeoffPoint":
        """Summarise a finished :class:`~cblab_src.simulate.ScheduleRun`.

        ``max_itl`` is 1 when no request produced two tokens; ``largest_decode_step`` is 0 when
        no step carried a decode.
        """
        latency = run.latency_summary()
        decode_steps = [s.num_tokens for s in run.history if s.decode_ids]
        return cls(run.max_tokens_per_step, run.prefill_chunk_size, run.num_steps,
                   run.tokens_per_step, latency.ttft.mean,
                   int(latency.itl.max) if latency.itl.count else 1, max(decode_steps, default=0))


def tradeoff_points(runs: Sequence) -> list[TradeoffPoint]:
    """One :class:`TradeoffPoint` per run, in the order given."""
    return [TradeoffPoint.of(run) for run in runs]


def plot_tradeoff(runs: Sequence) -> Figure:
    """Three panels against tokens per step (x): mean TTFT (steps, log scale), max ITL (steps)
    and the largest step a decode token rode in (tokens). One line per chunk size, joining
    budgets in increasing order; a darker line is a larger chunk.

    ``runs`` holds ``R`` :class:`~cblab_src.simulate.ScheduleRun` of one workload; each line
    needs at least one run.
    """
    points = tradeoff_points(runs)
    chunks = sorted({p.chunk for p in points})
    cmap = colormaps["viridis_r"]
    fig = Figure(figsize=(10, 3.1), layout="constrained")
    axes = fig.subplots(1, 3, sharex=True)
    fields = [("mean_ttft", "mean ttft (steps, log scale)"),
              ("max_itl", "max inter-token gap (steps)"),
              ("largest_decode_step", "largest step with a decode (tokens)")]
    for k, chunk in enumerate(chunks):
        line = sorted((p for p in points if p.chunk == chunk), key=lambda p: p.budget)
        x = [p.tokens_per_step for p in line]
        color = cmap(0.15 + 0.85 * k / max(len(chunks) - 1, 1))
        for ax, (name, _) in zip(axes, fields):
            ax.plot(x, [getattr(p, name) for p in line], marker="o", ms=3.5, lw=1.2,
                    color=color, label=f"chunk {chunk}")
    for ax, (_, label) in zip(axes, fields):
        ax.set_xlabel("tokens per step (throughput)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_yscale("log")
    axes[1].set_ylim(0, max(2.5, max(p.max_itl for p in points) + 0.5))
    axes[2].legend(fontsize=7, frameon=False, loc="upper left")
    return fig
