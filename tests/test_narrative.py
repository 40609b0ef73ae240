"""The chapters' prose names only code that exists, and every figure is captioned.

Guards for the book review (issue 15): a chapter that explains code line by line must explain
the code it prints, so every engine name it writes in backticks must exist —

* ``Class.attr`` (``Scheduler._schedule``, ``StepPlan._preempt``, ``cb.Request.generated``):
  ``Class`` a class defined in ``cblab_src``, ``attr`` one of its attributes or one its code
  sets on ``self``;
* ``cb.x.y`` / ``cblab_src.x.y``: the dotted path resolves;
* ``self.attr`` (inside a printed method's explanation): some class of ``cblab_src`` sets or
  reads ``self.attr``.

— and every figure a chapter draws carries a caption and a name (MyST-NB cell metadata), so the
text can call it "Figure 5.3".
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import re
from pathlib import Path

import pytest

import cblab_src

BOOK = Path(__file__).resolve().parents[1] / "book"
CHAPTERS = sorted(BOOK.glob("[0-9][0-9]_*.ipynb"))
GUIDES = sorted((BOOK / "zh").glob("*.md"))


def _engine() -> tuple[dict[str, type], str]:
    """Every class defined in cblab_src by name, and the source text of every module."""
    classes, sources = {}, []
    for info in pkgutil.walk_packages(cblab_src.__path__, "cblab_src."):
        if info.name.startswith(("cblab_src.demos.", "cblab_src.viz", "cblab_src.widgets")):
            continue                      # apps and figures: matplotlib, ipywidgets
        module = importlib.import_module(info.name)
        sources.append(inspect.getsource(module))
        for obj in vars(module).values():
            if inspect.isclass(obj) and obj.__module__ == info.name:
                classes[obj.__name__] = obj
    return classes, "\n".join(sources)


CLASSES, SOURCE = _engine()
SPAN = re.compile(r"``?([^`\n]+?)``?")
CLASS_ATTR = re.compile(r"^(?:cb\.|cblab_src\.(?:\w+\.)*)?([A-Z]\w*)\.(\w+)")
MODULE_PATH = re.compile(r"^(?:cb|cblab_src)\.([\w.]+?)(?:\(|\[|$)")
SELF_ATTR = re.compile(r"^self\.(\w+)")


def _prose(path: Path) -> str:
    if path.suffix == ".md":
        return path.read_text(encoding="utf-8")
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


def _has(cls: type, attr: str) -> bool:
    if any(attr in vars(k) for k in cls.__mro__):
        return True
    fields = getattr(cls, "__dataclass_fields__", {})
    return attr in fields or any(f"self.{attr}" in inspect.getsource(k) for k in cls.__mro__
                                 if k.__module__.startswith("cblab_src"))


def unknown_names(text: str) -> list[str]:
    """The backticked engine names in ``text`` that do not exist."""
    bad = []
    for span in SPAN.findall(text):
        span = span.strip()
        if m := CLASS_ATTR.match(span):
            cls, attr = m.groups()
            if cls in CLASSES and not _has(CLASSES[cls], attr):
                bad.append(span)
        elif m := MODULE_PATH.match(span):
            obj = cblab_src
            for part in m.group(1).split("."):
                if not hasattr(obj, part):
                    try:
                        obj = importlib.import_module(f"{obj.__name__}.{part}")
                    except (ImportError, AttributeError):
                        bad.append(span)
                        break
                else:
                    obj = getattr(obj, part)
        elif m := SELF_ATTR.match(span):
            if f"self.{m.group(1)}" not in SOURCE:
                bad.append(span)
    return bad


def test_the_guard_catches_a_stale_name():
    assert unknown_names("the loop in `Scheduler._schedule_decodes` pops `self._queue[-1]`, "
                         "see `cb.core.scheduler.Schedular` and `StepPlan.nope()`") == [
        "Scheduler._schedule_decodes", "self._queue[-1]", "cb.core.scheduler.Schedular",
        "StepPlan.nope()"]
    assert unknown_names("`Scheduler.step`, `self._running[-1]`, `cb.core.policies`, "
                         "`Request.generated`, `StepStats.batch_order`, `np.where`") == []


@pytest.mark.parametrize("path", CHAPTERS + GUIDES, ids=lambda p: p.name)
def test_every_engine_name_in_the_prose_exists(path):
    assert unknown_names(_prose(path)) == []


def _figures(path: Path):
    """(cell id, metadata) of every code cell whose output is an image."""
    for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
        if cell["cell_type"] == "code" and any(
                "image/png" in o.get("data", {}) for o in cell.get("outputs", [])):
            yield cell.get("id"), cell.get("metadata", {})


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_every_figure_has_a_caption_a_name_and_alt_text(path):
    missing = [cid for cid, meta in _figures(path)
               if not meta.get("mystnb", {}).get("figure", {}).get("caption")
               or not meta.get("mystnb", {}).get("figure", {}).get("name")
               or not meta.get("mystnb", {}).get("image", {}).get("alt")]
    assert missing == [], f"figures without a caption, name or alt text: {missing}"
