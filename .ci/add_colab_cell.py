"""Give every chapter a first code cell that installs cblab_src where it is missing (Colab).

Usage: python .ci/add_colab_cell.py [book/NN_name.ipynb ...]   (default: every chapter)

The cell is inserted before a chapter's first code cell, or updated in place if the chapter
has it already (found by its first line), so running this twice changes nothing. It reads the
repository URL and branch from _config.yml: a fork that changes `repository.url` runs this
again, then re-executes the chapters (`make execute`).

The cell is tagged `remove-cell`, so the book does not show it; locally (and on Binder, where
requirements.txt installs cblab_src) the import succeeds and the cell prints nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import yaml

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


def main(argv: list[str]) -> int:
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    url = config["repository"]["url"].rstrip("/")
    branch = config["repository"].get("branch", "main")
    source = cell_source(url, branch)
    paths = [Path(p) for p in argv] or sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))
    for path in paths:
        print(f"{path.name}: {ensure_cell(path, source)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
