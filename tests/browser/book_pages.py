"""Where the built book is, and which pages _toc.yml lists (shared by the browser tests)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
# The book `make build-book` writes; CBLAB_BOOK_HTML tests a build made elsewhere.
HTML = Path(os.environ.get("CBLAB_BOOK_HTML", ROOT / "_build" / "html")).resolve()
BUILD = HTML.parent
SCREENSHOTS = BUILD / "screenshots"


def toc_pages() -> list[str]:
    """Every page of _toc.yml, as paths without suffix (``book/01_prefill``), in toc order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf8"))
    pages = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                pages.append(entry["file"])
            walk(entry.get("sections"))
            walk(entry.get("chapters"))
    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return [re.sub(r"\.(ipynb|md)$", "", p) for p in pages]


PAGES = toc_pages()
CHAPTERS = [p for p in PAGES if re.fullmatch(r"book/\d\d_\w+", p)]
ZH_PAGES = [p for p in PAGES if p.startswith("book/zh/")]
