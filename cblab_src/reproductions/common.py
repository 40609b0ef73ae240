"""Plain-text tables for the reproductions (deterministic, so notebooks print them under nbval)."""

from __future__ import annotations

from collections.abc import Sequence


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
