"""Matplotlib figures of the engine's state. Each function returns a ``Figure``; a request has
the same colour in every figure (:func:`request_color`)."""

from .colors import PALETTE, request_color
from .kv import plot_block_pool, plot_fragmentation
from .masks import plot_mask
from .schedule import plot_budget, plot_timeline

__all__ = ["PALETTE", "request_color", "plot_block_pool", "plot_fragmentation", "plot_mask",
           "plot_budget", "plot_timeline"]
