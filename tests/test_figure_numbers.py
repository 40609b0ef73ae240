"""Figure numbers per chapter (_ext/cblab_figures.py), and chapters split into section pages.

A long chapter continues on section pages listed under it in _toc.yml; its figures are
numbered on across them in the order of the table of contents ("Fig. 5.10" is the first figure
of the page after one with nine), without building the book.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import SimpleNamespace

import yaml

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("cblab_figures", ROOT / "_ext" / "cblab_figures.py")
cblab_figures = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cblab_figures)


def fake_env(toctree: dict[str, list[str]], figures: dict[str, int], root: str = "index"):
    """An environment as Sphinx leaves it: figures numbered across the whole book, in reading
    order (figures: page -> how many it draws, pages in reading order)."""
    numbers, n = {}, 0
    for page, count in figures.items():
        numbers[page] = {"figure": {}}
        for k in range(count):
            n += 1
            numbers[page]["figure"][f"{page}-fig{k}"] = (n,)
    return SimpleNamespace(toctree_includes=toctree, toc_fignumbers=numbers,
                           config=SimpleNamespace(root_doc=root))


def test_numbers_run_on_across_a_chapters_section_pages_and_restart_per_chapter():
    toctree = {"index": ["book/04_x", "book/05_a", "book/06_y", "book/zh/guide"],
               "book/05_a": ["book/05_2_b", "book/05_3_c"]}
    # (dict order deliberately not the reading order: the toctree decides)
    env = fake_env(toctree, {"book/04_x": 2, "book/05_a": 3, "book/05_2_b": 2, "book/05_3_c": 1,
                             "book/06_y": 1, "book/zh/guide": 1})
    env.toc_fignumbers = dict(reversed(env.toc_fignumbers.items()))
    cblab_figures.number_per_chapter(None, env)
    got = {page: sorted(v["figure"].values()) for page, v in env.toc_fignumbers.items()}
    assert got["book/04_x"] == [(4, 1), (4, 2)]
    assert got["book/05_a"] == [(5, 1), (5, 2), (5, 3)]
    assert got["book/05_2_b"] == [(5, 4), (5, 5)]
    assert got["book/05_3_c"] == [(5, 6)]
    assert got["book/06_y"] == [(6, 1)]
    assert got["book/zh/guide"] == [(10,)]                # not a chapter: Sphinx's number
    assert env.toc_fignumbers["book/05_a"]["figure"]["book/05_a-fig0"] == (5, 1)   # page order kept


def test_section_pages_carry_their_chapters_number():
    """Every page listed under a chapter in _toc.yml is named NN_... after its chapter, which is
    what numbers its figures with the chapter's; and it exists as a notebook."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf8"))
    chapters = [c for part in toc["parts"] for c in part["chapters"]
                if re.fullmatch(r"book/\d\d_\w+", c["file"])]
    split = {c["file"]: [s["file"] for s in c.get("sections", [])] for c in chapters}
    assert split["book/05_kv_layout"] and split["book/10_advanced"]
    for chapter, sections in split.items():
        number = Path(chapter).name[:2]
        for section in sections:
            assert re.fullmatch(rf"book/{number}_\d_\w+", section), (chapter, section)
            assert (ROOT / f"{section}.ipynb").is_file(), section
