"""Give every chapter a first code cell that installs cblab_src where it is missing (Colab).

Usage: REPO_URL=https://github.com/you/cblab python .ci/add_colab_cell.py [book/NN_name.ipynb ...]
(default: every chapter; `make colab-cell REPO_URL=...` runs it)

The cell is inserted before a chapter's first code cell, or updated in place if the chapter
has it already (found by its first line), so running this twice changes nothing. It installs
from ``REPO_URL`` (branch ``REPO_BRANCH``, default main). Without a ``REPO_URL`` the cell is
removed: a course with no public home has nothing to install from, and no placeholder reaches
a reader. Re-execute the chapters afterwards (`make execute`).

The cell is tagged `remove-cell`, so the book does not show it; locally (and on Binder, where
requirements.txt installs cblab_src) the import succeeds and the cell prints nothing.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
MARKER = "# Colab: install cblab_src if it is not importable"
TAGS = ["remove-cell"]


def cell_source(url: str, branch: str) -> str:
    return (f"{MARKER} (hidden in the book; does nothing where it is installed).\n"
            "try:\n"
            "    import cblab_src\n"
            "except ImportError:\n"
            f'    %pip install --quiet "cblab_src[viz] @ git+{url}@{branch}"')


def ensure_cell(path: Path, source: str) -> str:
    """Insert or update the install cell of one notebook; return what was done."""
    nb = nbformat.read(path, as_version=4)
    existing = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith(MARKER)]
    if existing:
        cell = existing[0]
        if cell.source == source and cell.metadata.get("tags") == TAGS:
            return "unchanged"
        cell.source = source
        cell.metadata["tags"] = TAGS
        action = "updated"
    else:
        cell = nbformat.v4.new_code_cell(source, metadata={"tags": TAGS})
        if "id" in nb.cells[0]:
            cell["id"] = "colab-install"         # stable, instead of a random id
        else:                                   # nbformat < 4.5 notebooks carry no cell ids
            cell.pop("id", None)
        first_code = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"),
                          len(nb.cells))
        nb.cells.insert(first_code, cell)
        action = "inserted"
    nbformat.validate(nb)
    nbformat.write(nb, path)
    return action


def remove_cell(path: Path) -> str:
    """Take the install cell out of one notebook, if it has one."""
    nb = nbformat.read(path, as_version=4)
    kept = [c for c in nb.cells if not (c.cell_type == "code" and c.source.startswith(MARKER))]
    if len(kept) == len(nb.cells):
        return "absent"
    nb.cells = kept
    nbformat.write(nb, path)
    return "removed"


def main(argv: list[str]) -> int:
    url = os.environ.get("REPO_URL", "").strip().rstrip("/")
    branch = os.environ.get("REPO_BRANCH", "").strip() or "main"
    paths = [Path(p) for p in argv] or sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))
    for path in paths:
        print(f"{path.name}: {ensure_cell(path, cell_source(url, branch)) if url else remove_cell(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
