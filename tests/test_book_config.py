"""The book's launch-button configuration, without building the book (issue 15, item 10).

_config.yml names no repository, so the plain build has no launch buttons; REPO_URL (one
setting: `make book REPO_URL=...`, `make test REPO_URL=...`, `make colab-cell REPO_URL=...`)
makes .ci/book_config.py generate _config.yml plus the repository, which the build then uses.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
URL = "https://github.com/example/cblab"


def load_generator():
    spec = importlib.util.spec_from_file_location("book_config", ROOT / ".ci" / "book_config.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


book_config = load_generator()


def config_yml() -> dict:
    return yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf8"))


def test_config_yml_names_no_repository_and_no_launch_service():
    """Built from _config.yml alone, the book has no launch buttons and no placeholder: the
    repository URL is empty (not absent, or Jupyter Book's default, its own repository, would
    apply) and no launch service is on (sphinx-book-theme fails on one with an empty URL)."""
    config = config_yml()
    assert "CHANGE-ME" not in (ROOT / "_config.yml").read_text(encoding="utf8")
    assert config["repository"]["url"] == ""
    launch = config.get("launch_buttons", {})
    assert not any(launch.get(key) for key in ("binderhub_url", "colab_url", "jupyterhub_url",
                                               "deepnote_url", "jupyterlite_url", "thebe"))


@pytest.mark.parametrize("given, branch, expected_branch", [
    (URL, None, "main"), (URL + "/", "dev", "dev"), (f"  {URL}.git ", " ", "main")])
def test_repo_url_goes_into_a_generated_config_with_the_rest_intact(tmp_path, given, branch,
                                                                    expected_branch):
    out = tmp_path / "_build" / "_config.repo.yml"
    env = {"REPO_URL": given} | ({"REPO_BRANCH": branch} if branch is not None else {})
    assert book_config.main([str(out)], env) == 0
    generated = yaml.safe_load(out.read_text(encoding="utf8"))
    original = config_yml()

    assert generated["repository"] == {**original["repository"], "url": URL,
                                       "branch": expected_branch}
    assert generated["launch_buttons"] == {**original["launch_buttons"],
                                           "binderhub_url": "https://mybinder.org",
                                           "colab_url": "https://colab.research.google.com"}
    rest = {k: v for k, v in generated.items() if k not in ("repository", "launch_buttons")}
    assert rest == {k: v for k, v in original.items()
                    if k not in ("repository", "launch_buttons")}
    assert list(generated) == list(original)          # same keys, same order


@pytest.mark.parametrize("env", [{}, {"REPO_URL": ""}, {"REPO_URL": "  ", "REPO_BRANCH": "dev"}])
def test_no_repo_url_generates_nothing_and_drops_a_stale_config(tmp_path, env):
    out = tmp_path / "_config.repo.yml"
    assert book_config.main([str(out)], env) == 0
    assert not out.exists()
    out.write_text("repository: {url: https://github.com/old/cblab}\n")   # an earlier build's
    assert book_config.main([str(out)], env) == 0
    assert not out.exists()


@pytest.mark.parametrize("url", ["https://github.com/CHANGE-ME/cblab", "https://github.com/you",
                                 "github.com/you/cblab", "https://gitlab.com/you/cblab",
                                 "https://github.com/a/b/c"])
def test_a_url_that_is_not_a_github_repository_is_refused(tmp_path, url):
    out = tmp_path / "_config.repo.yml"
    with pytest.raises(SystemExit, match="GitHub repository"):
        book_config.main([str(out)], {"REPO_URL": url})
    assert not out.exists()


def test_the_makefile_passes_repo_url_to_the_build_and_the_colab_cells():
    """`make -n` (prints the commands, runs none): with REPO_URL the book is built from the
    generated config and the Colab cells install from it; without, from _config.yml."""
    if shutil.which("make") is None:
        pytest.skip("no make")

    # Not what this run inherited (under `make test REPO_URL=...`, MAKEFLAGS carries it).
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "REPO_URL", "REPO_BRANCH")}

    def dry_run(*args: str) -> str:
        return subprocess.run(["make", "-n", "-o", ".venv/.installed", "-o", "_vendor/NOTICE.txt",
                               *args], cwd=ROOT, env=env, capture_output=True, text=True,
                              check=True).stdout

    with_url = dry_run("build-book", f"REPO_URL={URL}", "REPO_BRANCH=dev")
    assert f"REPO_URL='{URL}' REPO_BRANCH='dev'" in with_url
    assert "jupyter-book build . -W -n --keep-going --config _build/_config.repo.yml" in with_url
    without = dry_run("build-book")
    assert "book_config.py _build/_config.repo.yml" in without      # removes a stale one
    assert "--config" not in without
    cells = dry_run("colab-cell", f"REPO_URL={URL}", "NB=book/01_prefill.ipynb")
    assert f"REPO_URL='{URL}' REPO_BRANCH='main'" in cells
    assert ".ci/add_colab_cell.py book/01_prefill.ipynb" in cells
    assert book_config.GENERATED == ROOT / "_build" / "_config.repo.yml"
