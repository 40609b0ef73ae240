"""One step of a finished run, as a figure: frames for the step players of chapters 2-5.

Each function draws step ``step`` of a :class:`~cblab_src.simulate.ScheduleRun` with the
course's usual figure (ragged mask, budget bars, timeline) at a size that does not change from
step to step, so :func:`~cblab_src.viz.player.step_player` can flip through them:

``step_player(lambda k: plot_budget_upto(run, k), run.num_steps, name="ch3-budget")``
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable

import numpy as np
from matplotlib.figure import Figure

from ..core.batch_builder import ragged_mask
from .masks import plot_mask
from .schedule import plot_budget, plot_timeline


def step_token_table(run, step: int) -> tuple[list[Hashable], np.ndarray]:
    """``(req_ids, positions)`` of the ``(N,)`` tokens of step ``step``'s ragged batch, in batch
    order: one token per decoding request first, then each prefill chunk (as the scheduler
    lays the batch out). A decode token's position is its context length minus one
    (``StepStats.decode_context_lens`` counts its own key too)."""
    stats = run.history[step]
    req_ids = list(stats.decode_ids)
    positions = [n - 1 for n in stats.decode_context_lens]
    for rid, start, length in stats.prefill_chunks:
        req_ids += [rid] * length
        positions += range(start, start + length)
    return req_ids, np.asarray(positions, dtype=np.int64)


def step_key_table(req_ids, positions) -> tuple[list[Hashable], np.ndarray]:
    """The keys a step's queries attend to: for each request of the batch, in batch order,
    every cached position ``0 .. max(query position)`` (earlier chunks and this step's)."""
    last = {}
    for rid, pos in zip(req_ids, positions):
        last[rid] = max(last.get(rid, -1), int(pos))
    keys = [(rid, p) for rid, top in last.items() for p in range(top + 1)]
    return [k for k, _ in keys], np.asarray([p for _, p in keys], dtype=np.int64)


def plot_step_batch(run, step: int, *, figsize: tuple[float, float] = (8.0, 3.6)) -> Figure:
    """The ragged mask of step ``step``: one row per token of the step's batch (its token
    table, ``req:pos``), one column per key it may read — the request's cached K/V included, so
    a decode token sees its whole context and a later prefill chunk its earlier chunks."""
    q_ids, q_pos = step_token_table(run, step)
    if not q_ids:                                  # nothing had arrived yet: an idle step
        fig = Figure(figsize=figsize, layout="constrained")
        ax = fig.add_subplot()
        ax.text(0.5, 0.5, "idle step: no request has arrived", ha="center", va="center")
        ax.set_axis_off()
        return fig
    k_ids, k_pos = step_key_table(q_ids, q_pos)
    mask = ragged_mask(q_ids, q_pos, k_ids, k_pos)           # (N, K)
    fig = plot_mask(mask, q_ids, q_pos, key_req_ids=k_ids, key_positions=k_pos)
    fig.set_size_inches(*figsize)
    return fig


def _upto(run, step: int):
    return dataclasses.replace(run, history=run.history[:step + 1])


def plot_budget_upto(run, step: int) -> Figure:
    """:func:`~cblab_src.viz.schedule.plot_budget` of steps ``0 .. step``, on the x range of
    the whole run."""
    fig = plot_budget(_upto(run, step))
    fig.axes[0].set_xlim(-0.6, run.num_steps - 0.4)
    return fig


def plot_timeline_upto(run, step: int) -> Figure:
    """:func:`~cblab_src.viz.schedule.plot_timeline` of steps ``0 .. step`` (requests not yet
    arrived stay blank), on the x range of the whole run."""
    fig = plot_timeline(_upto(run, step))
    for ax in fig.axes:
        ax.set_xlim(-0.5, run.num_steps - 0.5)
    return fig
