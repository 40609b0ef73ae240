"""Fetch the JavaScript the HTML book runs, so that no page loads anything from a CDN.

Usage: python .ci/vendor_js.py [DEST]      (default DEST: _vendor, git-ignored)

Fetched at build time rather than committed: the widget manager alone is a 3.6 MB minified
bundle, and keeping such files out of git keeps every upgrade from adding another copy to the
history. The exact versions and the registry's sha512 of each tarball (checked here) make the
fetch as reproducible as a commit. `make book` runs this once; it needs `npm`, which only
downloads the three package tarballs (`npm pack`: no dependency tree, no install scripts).
Later builds reuse DEST and need no network.

What lands in DEST (listed in `html_static_path`, so it is copied to `_build/html/_static/`):
  require.js               requirejs (MIT): the AMD loader embed-amd.js expects
  widgets/embed-amd.js     @jupyter-widgets/html-manager (BSD-3-Clause): renders ipywidgets 8
                           views from the widget state saved in the notebooks
  widgets/<hash>.woff2 ... the Font Awesome font files embed-amd.js asks for
  mathjax/                 MathJax 3 (Apache-2.0): tex-mml-chtml.js, the CHTML fonts and the
                           TeX extensions it loads on demand, for the pages with maths
  NOTICE.txt               what came from where, under which licence
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# package -> (version, registry integrity, {tarball member prefix: destination folder}).
# A prefix ending in "/" copies everything under it; otherwise it names one file. Bump the
# version and the integrity together (`npm view PACKAGE@VERSION dist.integrity`).
PACKAGES = {
    "requirejs": (
        "2.3.8",
        "sha512-7/cTSLOdYkNBNJcDMWf+luFvMriVm7eYxp4BcFCsAX0wF421Vyce5SXP17c+Jd5otXKGNehIonFlyQXSowL6Mw==",
        {"package/require.js": "."},
    ),
    "@jupyter-widgets/html-manager": (
        "1.0.15",
        "sha512-5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/c4xJDVzRhG9PTeQsRjF3FUTopvFi//SABeNz1yp47bCrJ3CQA==",
        {"package/dist/embed-amd.js": "widgets", "package/dist/embed.js.LICENSE.txt": "widgets",
         **{f"package/dist/*{ext}": "widgets" for ext in (".woff2", ".woff", ".ttf", ".eot",
                                                           ".svg")}},
    ),
    "mathjax": (
        "3.2.2",
        "sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw==",
        {"package/LICENSE": "mathjax", "package/es5/tex-mml-chtml.js": "mathjax",
         **{f"package/es5/{d}/": f"mathjax/{d}"
            for d in ("input", "output/chtml", "ui", "a11y", "adaptors")}},
    ),
}

NOTICE = """Third-party files served with the cblab book, fetched unmodified from the npm registry
by .ci/vendor_js.py:

require.js            requirejs {requirejs}, MIT licence (header of require.js),
                      https://github.com/requirejs/requirejs
widgets/              @jupyter-widgets/html-manager {html_manager}, BSD-3-Clause licence,
                      https://github.com/jupyter-widgets/ipywidgets; the bundled packages'
                      licences are in widgets/embed.js.LICENSE.txt; the font files are
                      Font Awesome Free 5 (SIL OFL 1.1).
mathjax/              MathJax {mathjax}, Apache-2.0 licence (mathjax/LICENSE),
                      https://github.com/mathjax/MathJax
"""


def fetch(package: str, version: str, integrity: str, workdir: Path) -> Path:
    """``npm pack`` one tarball into ``workdir``; check its sha512 against ``integrity``."""
    out = subprocess.run(["npm", "pack", f"{package}@{version}", "--json", "--silent",
                          "--pack-destination", str(workdir)],
                         check=True, capture_output=True, text=True).stdout
    path = workdir / json.loads(out)[0]["filename"]
    digest = "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()
    if digest != integrity:
        raise SystemExit(f"{package}@{version}: tarball sha512 {digest} != pinned {integrity}")
    return path


def destination(name: str, rules: dict[str, str]) -> str | None:
    """Where tarball member ``name`` goes inside DEST, or None to leave it out."""
    for prefix, folder in rules.items():
        base = name.rsplit("/", 1)[-1]
        if "*" in prefix:                                   # package/dist/*.woff2
            head, ext = prefix.split("*")
            if name.startswith(head) and "/" not in name[len(head):] and name.endswith(ext):
                return f"{folder}/{base}"
        elif prefix.endswith("/"):                          # a whole folder
            if name.startswith(prefix):
                return f"{folder}/{name[len(prefix):]}"
        elif name == prefix:                                # one file
            return f"{folder}/{base}"
    return None


def main(argv: list[str]) -> int:
    dest = Path(argv[0]).resolve() if argv else ROOT / "_vendor"
    if shutil.which("npm") is None:
        raise SystemExit("npm not found: the book's scripts (widgets, MathJax) come from the npm "
                         "registry. Install Node.js and npm (e.g. `apt-get install -y npm`), "
                         "then run `make book` again.")
    staging = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    with tempfile.TemporaryDirectory() as workdir:
        for package, (version, integrity, rules) in PACKAGES.items():
            with tarfile.open(fetch(package, version, integrity, Path(workdir))) as tar:
                for member in tar.getmembers():
                    target = destination(member.name, rules) if member.isfile() else None
                    if target:
                        path = (staging / target).resolve()
                        assert path.is_relative_to(staging.resolve()), member.name
                        path.parent.mkdir(parents=True, exist_ok=True)
                        with tar.extractfile(member) as src, open(path, "wb") as dst:
                            shutil.copyfileobj(src, dst)
    versions = {"requirejs": PACKAGES["requirejs"][0], "mathjax": PACKAGES["mathjax"][0],
                "html_manager": PACKAGES["@jupyter-widgets/html-manager"][0]}
    (staging / "NOTICE.txt").write_text(NOTICE.format(**versions))
    shutil.rmtree(dest, ignore_errors=True)
    staging.rename(dest)
    files = [p for p in dest.rglob("*") if p.is_file()]
    size = sum(p.stat().st_size for p in files) / 1e6
    print(f"{dest.name}/: {len(files)} files, {size:.1f} MB from "
          + ", ".join(f"{p}@{v[0]}" for p, v in PACKAGES.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
