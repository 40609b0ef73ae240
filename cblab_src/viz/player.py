"""Step players: a figure per step, shown as a self-contained HTML scrubber that needs no kernel.

Sliders that re-run the engine need Python (a live kernel). A *step* view does not: every
step's picture can be drawn in advance. :func:`step_player` draws frame ``i`` with any
``cblab_src.viz`` function, stores the frames as PNG inside the HTML, and adds a few lines of
plain JavaScript — play, pause, step back/forward and a range slider — so the static book,
a notebook opened offline and an exported HTML file all scrub the same way.

``step_player(lambda i: plot_block_pool(run.pool[i]), run.num_steps, name="ch5-pool")``

The HTML uses no external script, stylesheet or font, and its element ids come from ``name``
(never random), so an executed notebook is byte-identical from run to run apart from the PNG
bytes themselves (which depend on the matplotlib and FreeType versions).
"""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Callable, Sequence

from matplotlib.figure import Figure

from .._validate import positive_int

_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")


def figure_png(fig: Figure, dpi: int = 60) -> bytes:
    """PNG bytes of ``fig`` at ``dpi``, without the 'Software' metadata chunk (it names the
    matplotlib version and would make equal pictures differ)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return buffer.getvalue()


class StepPlayer:
    """Frames (PNG bytes) plus the HTML that plays them. Displays itself in Jupyter and in the
    book through ``_repr_html_``; ``repr()`` is a stable one-liner for the text fallback."""

    def __init__(self, frames: Sequence[bytes], *, name: str, labels: Sequence[str],
                 interval_ms: int, alt: str):
        assert len(frames) == len(labels) > 0, (len(frames), len(labels))
        self.frames, self.labels = list(frames), list(labels)
        self.name, self.interval_ms, self.alt = name, interval_ms, alt

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    @property
    def element_id(self) -> str:
        """The id of the player's outer ``<div>``; its parts append ``-img``, ``-slider`` ..."""
        return f"cblab-player-{self.name}"

    @property
    def nbytes(self) -> int:
        """Size of the HTML in bytes (what the player adds to a page)."""
        return len(self._repr_html_().encode())

    def __repr__(self) -> str:
        return f"StepPlayer({self.name!r}, {self.num_frames} frames)"

    def _repr_html_(self) -> str:
        pid = self.element_id
        uris = [f"data:image/png;base64,{base64.b64encode(f).decode('ascii')}"
                for f in self.frames]
        last = self.num_frames - 1
        frames_js = ",\n".join(f'"{u}"' for u in uris)
        labels_js = ", ".join(_js_string(s) for s in self.labels)
        button = ('style="font:inherit;min-width:2.4em;padding:0.1em 0.4em;cursor:pointer;'
                  'border:1px solid #999;border-radius:4px;background:#f6f6f6"')
        return f"""<div class="cblab-player" id="{pid}" data-frames="{self.num_frames}" style="max-width:100%">
<img id="{pid}-img" src="{uris[0]}" alt="{html.escape(self.alt)}" style="max-width:100%;height:auto;display:block">
<div style="display:flex;align-items:center;gap:0.4em;flex-wrap:wrap;margin-top:0.3em;font-size:0.9em">
<button type="button" id="{pid}-prev" title="previous step" aria-label="previous step" {button}>&#9664;&#9664;</button>
<button type="button" id="{pid}-play" title="play" aria-label="play" {button}>&#9654;</button>
<button type="button" id="{pid}-pause" title="pause" aria-label="pause" {button}>&#10074;&#10074;</button>
<button type="button" id="{pid}-next" title="next step" aria-label="next step" {button}>&#9654;&#9654;</button>
<input type="range" id="{pid}-slider" min="0" max="{last}" step="1" value="0" aria-label="step" style="flex:1 1 12em">
<span id="{pid}-label" style="font-family:monospace;white-space:pre">{html.escape(self.labels[0])}</span>
</div>
<script>
(function () {{
  var frames = [{frames_js}];
  var labels = [{labels_js}];
  var id = "{pid}", timer = null;
  var img = document.getElementById(id + "-img"), slider = document.getElementById(id + "-slider");
  var label = document.getElementById(id + "-label");
  if (!img || !slider) return;
  function show(i) {{
    i = Math.max(0, Math.min(frames.length - 1, i));
    slider.value = i; img.src = frames[i]; label.textContent = labels[i];
    img.parentNode.setAttribute("data-frame", i);
  }}
  function pause() {{ if (timer !== null) {{ clearInterval(timer); timer = null; }} }}
  function play() {{
    pause();
    if (+slider.value >= frames.length - 1) show(0);
    timer = setInterval(function () {{
      var i = +slider.value + 1;
      show(i);
      if (i >= frames.length - 1) pause();
    }}, {self.interval_ms});
  }}
  slider.addEventListener("input", function () {{ pause(); show(+slider.value); }});
  document.getElementById(id + "-play").addEventListener("click", play);
  document.getElementById(id + "-pause").addEventListener("click", pause);
  document.getElementById(id + "-prev").addEventListener("click", function () {{ pause(); show(+slider.value - 1); }});
  document.getElementById(id + "-next").addEventListener("click", function () {{ pause(); show(+slider.value + 1); }});
  show(0);
}})();
</script>
</div>"""


def step_player(draw_frame: Callable[[int], Figure], num_frames: int, *, name: str,
                labels: Sequence[str] | None = None, dpi: int = 60, interval_ms: int = 700,
                alt: str = "") -> StepPlayer:
    """Draw ``draw_frame(i)`` for ``i = 0 .. num_frames-1`` and return a :class:`StepPlayer`.

    ``name`` (lowercase letters, digits, dashes) names the HTML elements, so it must be unique
    within a page. ``labels[i]`` is the text shown beside the slider at frame ``i`` (default
    ``"step i"``). ``dpi`` sets the frames' resolution and so the page weight: a 7 x 2.6 inch
    figure at dpi 60 is about 10-20 kB a frame.
    """
    num_frames = positive_int("num_frames", num_frames)
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"name must be lowercase letters, digits and dashes, got {name!r}")
    dpi = positive_int("dpi", dpi)
    interval_ms = positive_int("interval_ms", interval_ms)
    labels = list(labels) if labels is not None else [f"step {i}" for i in range(num_frames)]
    if len(labels) != num_frames:
        raise ValueError(f"labels must have num_frames={num_frames} entries, got {len(labels)}")
    frames = [figure_png(draw_frame(i), dpi) for i in range(num_frames)]
    return StepPlayer(frames, name=name, labels=[str(s) for s in labels],
                      interval_ms=interval_ms, alt=alt)


def _js_string(text: str) -> str:
    """A JavaScript string literal that is also safe inside an HTML ``<script>``."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + escaped.replace("<", "\\u003c").replace(">", "\\u003e") + '"'
