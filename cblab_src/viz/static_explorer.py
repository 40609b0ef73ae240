"""Static explorers: an explorer's sliders, precomputed, so they move in a page with no kernel.

An explorer (``cblab_src.widgets.Explorer``) re-runs the engine whenever a slider moves, and
that needs Python. Its static twin runs the engine in advance, once for every setting of a
*grid* of slider values (a few values per knob, possibly coarser than the live slider), and
keeps for each setting the report text and the figure. In the page, one range input per knob
picks a grid value (it snaps: the label beside it shows the value drawn), and a few lines of
plain JavaScript show that setting's figure and report.

``static_explorer(show, [Knob("budget", "max_tokens_per_step", (1, 2, 4, 8), 4), ...],
name="budget_explorer", caption="tokens per step")`` calls ``show(budget=1, ...)`` for every
setting; ``show`` returns ``(report, figure)``.

**Figures as PNG, not data drawn in the browser.** Each setting's figure is the matplotlib
figure the live explorer draws, rendered to PNG in advance:

- *Honest by construction.* The picture comes from the same ``cblab_src.viz`` function as the
  live widget and every other figure of the book. Drawing in the browser would mean a second,
  JavaScript implementation of the mask heatmap, the budget bars, the timeline and the block
  pool, which could drift from the Python one without any test noticing; here a unit test
  compares stored pictures with fresh ones byte for byte.
- *Light enough.* Settings whose pictures are identical (a chunk larger than the budget
  schedules like the budget) store the picture once, and each picture is an 8-bit palette
  PNG (:func:`palette_png`): a chart of a few flat colours loses nothing visible (about 1% of
  the pixels differ from the 24-bit render, all on anti-aliased edges; the mean channel
  difference is below 0.05 of 255) and shrinks to less than half, 4-11 kB. A 60-setting grid
  adds 0.35-0.45 MB to its page (base64 included); the heaviest chapter page, with three
  explorers, stays near 2 MB of its 3 MB budget. Compact data drawn in the browser would be
  smaller still (a schedule is a few hundred numbers), but the budget does not need that, and
  pictures need no plotting code in the page.
- *Nothing to load.* No plotting library, no external script: the page works from disk with
  no network, and a screen reader gets the report as text and an alt text naming the setting.

The price is time when the chapter runs: one simulation and one render per setting, about
0.1 s each (mostly matplotlib's layout and drawing), so the grids (``SliderSpec.grid`` in
``cblab_src.widgets``) keep each explorer to 30-60 settings, a few seconds.

The HTML follows the same rules as the step players (:mod:`cblab_src.viz.player`): no external
script, stylesheet or font, and element ids derived from ``name``, never random, so an executed
notebook is byte-identical from run to run apart from the PNG bytes themselves (nbval's
sanitize file rewrites ``data:image/png`` URIs; the reports, grid and indices are compared).

The contract the browser tests check: the explorer is a ``<div data-explorer="NAME">``; each
knob an ``<input type="range" data-knob="PARAM">`` with a ``<label>`` and an ``<output>``
showing the drawn value; the report a ``<pre data-report>``; the figure an ``<img>`` whose alt
text names the setting. The precomputed values are in ``<script type="application/json">``
(id ``…-data``): ``knobs`` (name, label, values), ``cells`` (per setting, in row-major order
over the knobs: ``[image index, report index]``), ``images`` (data URIs), ``reports``.
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

from matplotlib.figure import Figure
from PIL import Image

from .._validate import positive_int
from .player import figure_png

_NAME = re.compile(r"[a-z][a-z0-9_]*")
_KNOB = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def palette_png(fig: Figure, dpi: int = 80) -> bytes:
    """``fig`` as an 8-bit palette PNG: :func:`~cblab_src.viz.player.figure_png` at ``dpi``,
    reduced to its 256 most representative colours (median cut, no dithering, deterministic).
    About half the bytes of the 24-bit PNG for the book's flat-coloured charts."""
    rgb = Image.open(io.BytesIO(figure_png(fig, dpi))).convert("RGB")
    buffer = io.BytesIO()
    rgb.quantize(colors=256, method=Image.Quantize.MEDIANCUT,
                 dither=Image.Dither.NONE).save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass(frozen=True)
class Knob:
    """One slider of a static explorer: the parameter it sets, its label, the precomputed
    values (ascending) and the value shown first (one of them)."""

    name: str                   # the parameter: a key of every setting, and data-knob in HTML
    label: str                  # the text beside the range input
    values: tuple[int, ...]     # the grid: the values that were precomputed
    start: int                  # the value the page shows first

    def __post_init__(self):
        if not isinstance(self.name, str) or not _KNOB.fullmatch(self.name):
            raise ValueError(f"knob name must be a Python identifier, got {self.name!r}")
        values = tuple(self.values)
        if not values or list(values) != sorted(set(values)):
            raise ValueError(f"knob {self.name!r}: values must be distinct and ascending, "
                             f"got {values}")
        if self.start not in values:
            raise ValueError(f"knob {self.name!r}: start={self.start!r} is not one of {values}")
        object.__setattr__(self, "values", values)

    def snap(self, value: int) -> int:
        """The grid value nearest to ``value`` (the lower one on a tie)."""
        return min(self.values, key=lambda v: (abs(v - value), v))


class StaticExplorer:
    """Precomputed settings of an explorer and the HTML that browses them. Displays itself in
    Jupyter and in the book through ``_repr_html_``; ``repr()`` is a stable one-liner."""

    def __init__(self, *, name: str, caption: str, knobs: Sequence[Knob],
                 images: Sequence[bytes], reports: Sequence[str],
                 cells: Sequence[tuple[int, int]]):
        self.name, self.caption, self.knobs = name, caption, tuple(knobs)
        self.images, self.reports = list(images), list(reports)
        self.cells = [tuple(c) for c in cells]
        assert len(self.cells) == self.num_settings, (len(self.cells), self.num_settings)

    @property
    def num_settings(self) -> int:
        """How many settings were precomputed: the product of the knobs' grid sizes."""
        n = 1
        for knob in self.knobs:
            n *= len(knob.values)
        return n

    @property
    def element_id(self) -> str:
        """The id of the outer ``<div>``; its parts append ``-img``, ``-report``, ``-data``,
        ``-knob-PARAM`` and ``-value-PARAM``."""
        return "cblab-explorer-" + self.name.replace("_", "-")

    @property
    def start(self) -> dict[str, int]:
        """The setting the page shows first."""
        return {k.name: k.start for k in self.knobs}

    def settings(self) -> Iterator[dict[str, int]]:
        """Every precomputed setting, in the order of ``cells`` (row-major: last knob fastest)."""
        names = [k.name for k in self.knobs]
        for values in itertools.product(*(k.values for k in self.knobs)):
            yield dict(zip(names, values))

    def index(self, setting: dict[str, int]) -> int:
        """Position of ``setting`` (one grid value per knob) in ``cells``."""
        if set(setting) != {k.name for k in self.knobs}:
            raise KeyError(f"a setting names every knob {[k.name for k in self.knobs]}, "
                           f"got {sorted(setting)}")
        i = 0
        for knob in self.knobs:
            if setting[knob.name] not in knob.values:
                raise KeyError(f"{knob.name}={setting[knob.name]!r} was not precomputed; "
                               f"the grid is {knob.values}")
            i = i * len(knob.values) + knob.values.index(setting[knob.name])
        return i

    def report(self, **setting) -> str:
        """The stored report text of a precomputed setting."""
        return self.reports[self.cells[self.index(setting)][1]]

    def png(self, **setting) -> bytes:
        """The stored picture (PNG bytes) of a precomputed setting."""
        return self.images[self.cells[self.index(setting)][0]]

    def alt(self, setting: dict[str, int]) -> str:
        """The figure's alt text for ``setting`` (the page's script writes the same)."""
        return self.caption + ", " + ", ".join(f"{k.label} {setting[k.name]}"
                                               for k in self.knobs)

    def starting_at(self, setting: dict[str, int]) -> StaticExplorer:
        """The same precomputed data, shown first at ``setting`` snapped to the grid."""
        knobs = [replace(k, start=k.snap(setting.get(k.name, k.start))) for k in self.knobs]
        return StaticExplorer(name=self.name, caption=self.caption, knobs=knobs,
                              images=self.images, reports=self.reports, cells=self.cells)

    @property
    def nbytes(self) -> int:
        """Size of the HTML in bytes (what the explorer adds to a page)."""
        return len(self._repr_html_().encode())

    def __repr__(self) -> str:
        grid = " x ".join(f"{k.name}[{len(k.values)}]" for k in self.knobs)
        return (f"StaticExplorer({self.name!r}, {grid} = {self.num_settings} settings, "
                f"{len(self.images)} pictures)")

    def _repr_html_(self) -> str:
        eid = self.element_id
        start = self.index(self.start)
        image, report = self.cells[start]
        data = {"caption": self.caption,
                "knobs": [{"name": k.name, "label": k.label, "values": list(k.values)}
                          for k in self.knobs],
                "cells": [list(c) for c in self.cells],
                "images": [_data_uri(p) for p in self.images],
                "reports": self.reports}
        # JSON inside <script>: "<" written as \u003c, so no "</script>" can close it early.
        data_json = json.dumps(data, separators=(",", ":")).replace("<", "\\u003c")
        knobs = "\n".join(
            f'<span style="display:inline-flex;align-items:center;gap:0.4em">'
            f'<label for="{eid}-knob-{k.name}">{html.escape(k.label)}</label>'
            f'<input type="range" id="{eid}-knob-{k.name}" data-knob="{k.name}" min="0" '
            f'max="{len(k.values) - 1}" step="1" value="{k.values.index(k.start)}" '
            f'aria-valuetext="{k.start}" style="width:9em">'
            f'<output id="{eid}-value-{k.name}" for="{eid}-knob-{k.name}" '
            f'style="font-family:monospace;min-width:2.5em">{k.start}</output></span>'
            for k in self.knobs)
        return f"""<div class="cblab-explorer" id="{eid}" data-explorer="{self.name}" data-setting="{start}" style="max-width:100%">
<div style="display:flex;flex-wrap:wrap;gap:0.3em 1.5em;font-size:0.9em">
{knobs}
</div>
<pre id="{eid}-report" data-report style="white-space:pre-wrap;margin:0.4em 0">{html.escape(self.reports[report])}</pre>
<img id="{eid}-img" src="{_data_uri(self.images[image])}" alt="{html.escape(self.alt(self.start))}" style="max-width:100%;height:auto;display:block">
<script type="application/json" id="{eid}-data">{data_json}</script>
<script>
(function () {{
  var id = "{eid}", root = document.getElementById(id);
  var source = document.getElementById(id + "-data");
  if (!root || !source) return;
  var data = JSON.parse(source.textContent);
  var img = document.getElementById(id + "-img"), report = document.getElementById(id + "-report");
  var inputs = data.knobs.map(function (k) {{ return document.getElementById(id + "-knob-" + k.name); }});
  function show() {{
    var cell = 0, parts = [];
    data.knobs.forEach(function (k, j) {{
      var i = Math.max(0, Math.min(k.values.length - 1, Math.round(+inputs[j].value)));
      var value = String(k.values[i]);
      cell = cell * k.values.length + i;
      inputs[j].setAttribute("aria-valuetext", value);
      document.getElementById(id + "-value-" + k.name).textContent = value;
      parts.push(k.label + " " + value);
    }});
    var c = data.cells[cell];
    img.src = data.images[c[0]];
    img.alt = data.caption + ", " + parts.join(", ");
    report.textContent = data.reports[c[1]];
    root.setAttribute("data-setting", cell);
  }}
  inputs.forEach(function (input) {{ input.addEventListener("input", show); }});
  show();
}})();
</script>
</div>"""


def static_explorer(show: Callable[..., tuple[str, Figure]], knobs: Sequence[Knob], *,
                    name: str, caption: str, dpi: int = 80) -> StaticExplorer:
    """Call ``show(**setting) -> (report, figure)`` for every setting of the knobs' grids and
    return a :class:`StaticExplorer` holding each distinct picture (:func:`palette_png` at
    ``dpi``) and each distinct report once.

    ``name`` (lowercase letters, digits, underscores; e.g. the factory's name,
    ``"budget_explorer"``) is the ``data-explorer`` attribute and names the HTML elements, so
    it must be unique within a page. ``caption`` starts the figure's alt text, which goes on
    with the setting: ``"tokens per step, max_tokens_per_step 8, prefill_chunk_size 4"``.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"name must be lowercase letters, digits and underscores, got {name!r}")
    knobs = tuple(knobs)
    if not knobs or len({k.name for k in knobs}) != len(knobs):
        raise ValueError(f"knobs must be non-empty with distinct names, got "
                         f"{[k.name for k in knobs]}")
    dpi = positive_int("dpi", dpi)
    images: dict[bytes, int] = {}
    reports: dict[str, int] = {}
    cells = []
    names = [k.name for k in knobs]
    for values in itertools.product(*(k.values for k in knobs)):
        report, fig = show(**dict(zip(names, values)))
        png = palette_png(fig, dpi)
        cells.append((images.setdefault(png, len(images)),
                      reports.setdefault(report, len(reports))))
    return StaticExplorer(name=name, caption=str(caption), knobs=knobs, images=list(images),
                          reports=list(reports), cells=cells)


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
