"""One colour per request, the same in every figure of the course."""

from __future__ import annotations

import zlib
from collections.abc import Hashable

from matplotlib import colors as mcolors

# matplotlib's tab10, without its grey (kept for "waiting") — 9 clearly different hues.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#bcbd22", "#17becf")
WAITING = "#d9d9d9"     # arrived, not admitted
EMPTY = "#f4f4f4"       # a free block / a masked-out cell
CACHED = "#b9b9b9"      # an ownerless block kept for prefix reuse


def color_index(req_id: Hashable) -> int:
    """Palette slot of a request: ``0, 1, 2 ...`` for ids 0, 1, 2 ... and for 'A', 'B', 'C' ..."""
    if isinstance(req_id, int):
        return req_id % len(PALETTE)
    text = str(req_id)
    if len(text) == 1 and text.isalpha() and text.isupper():
        return (ord(text) - ord("A")) % len(PALETTE)
    return zlib.crc32(text.encode()) % len(PALETTE)


def request_color(req_id: Hashable, alpha: float = 1.0) -> tuple[float, float, float, float]:
    """RGBA colour of a request; a lower ``alpha`` gives the light tint used for prefill."""
    r, g, b = mcolors.to_rgb(PALETTE[color_index(req_id)])
    # Blend with white rather than using transparency, so overlaps never change the colour.
    return (1 - alpha + alpha * r, 1 - alpha + alpha * g, 1 - alpha + alpha * b, 1.0)


def rgba(name: str) -> tuple[float, float, float, float]:
    return mcolors.to_rgba(name)
