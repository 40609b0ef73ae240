"""The live dashboard's figure: tokens per step, queue length and KV blocks over time."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure


def plot_monitor(history, budget: int) -> Figure:
    """Three stacked panels over steps: decode/prefill tokens vs budget, waiting/running
    requests, KV blocks used."""
    steps = np.array([s.step_id for s in history])
    fig = Figure(figsize=(7, 4.2), layout="constrained")
    tok, queue, kv = fig.subplots(3, 1, sharex=True)
    decode = np.array([s.num_decode_tokens for s in history])
    prefill = np.array([s.num_prefill_tokens for s in history])
    tok.bar(steps, decode, color="0.3", label="decode")
    tok.bar(steps, prefill, bottom=decode, color="0.75", label="prefill")
    tok.axhline(budget, color="black", ls="--", lw=1)
    tok.set_ylabel("tokens")
    tok.legend(fontsize=7, frameon=False, loc="lower right", bbox_to_anchor=(1, 1), ncols=2)
    queue.step(steps, [s.num_waiting for s in history], where="mid", label="waiting")
    queue.step(steps, [s.num_running for s in history], where="mid", label="running")
    queue.set_ylabel("requests")
    queue.legend(fontsize=7, frameon=False, loc="upper right")
    kv.fill_between(steps, [s.kv.used_blocks for s in history], step="mid", color="0.5")
    kv.set_ylabel("kv blocks used")
    kv.set_xlabel("step")
    return fig
