"""Plain-text tables for the reproductions (deterministic, so notebooks print them under nbval),
and re-timing a run under another cost model."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..costmodel import CostModel
from ..timing import TimedRun


def retimed(run: TimedRun, cost_model: CostModel) -> TimedRun:
    """``run`` (all requests arriving at 0) with every step timed by ``cost_model`` instead.

    When every request arrives at once the schedule does not depend on how long steps take, so
    this equals running :func:`~cblab_src.timing.simulate_timed` again under ``cost_model``,
    without scheduling anything. Runs with arrivals spread in time are refused: their schedule
    depends on the clock.
    """
    if np.any(run.arrival_ms > 0):
        raise ValueError("only a run whose requests all arrive at 0 can be re-timed; "
                         "run simulate_timed under the other cost model")
    ms = cost_model.history_ms(run.history)
    return TimedRun(run.history, run.requests, ms, np.cumsum(ms), run.arrival_ms, cost_model)


def format_table(rows: Sequence, columns: Sequence[tuple[str, str, str]]) -> str:
    """Fixed-width text: one line per row, one column per ``(attribute or key, header, format)``.

    ``format_table([{"a": 1.234}], [("a", "a (ms)", ".1f")])`` -> ``"a (ms)\\n   1.2"``.
    Missing values (``None``) print as ``-``.
    """
    def get(row, key):
        return row.get(key) if isinstance(row, dict) else getattr(row, key)

    cells = [[header for _, header, _ in columns]]
    for row in rows:
        cells.append(["-" if get(row, key) is None else format(get(row, key), fmt)
                      for key, _, fmt in columns])
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(line, widths)) for line in cells]
    return "\n".join(lines)
