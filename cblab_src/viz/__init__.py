"""Matplotlib figures of the engine's state. Each function returns a ``Figure``; a request has
the same colour in every figure (:func:`request_color`)."""

from .colors import PALETTE, request_color
from .kv import plot_block_pool, plot_fragmentation
from .masks import plot_mask
from .schedule import plot_budget, plot_timeline

# Figures in milliseconds and of the reproductions live in viz.costs and viz.reproductions
# (plot_step_costs, plot_step_parts, plot_step_times; plot_continuous_vs_static, plot_kv_waste,
# plot_chunked_prefill, plot_budget_knee); import them from there.

__all__ = ["PALETTE", "request_color", "plot_block_pool", "plot_fragmentation", "plot_mask",
           "plot_budget", "plot_timeline"]
