"""Fixtures of the browser suite: the built book served on 127.0.0.1, and headless Chromium.

The suite runs only with `pytest --browser tests/browser` (`make test` does that after
building the book). It drives the system's Chromium through Playwright for Python — Playwright
never downloads a browser here. Without Chromium or Playwright the suite skips with a message,
except in CI (CI=true), where a skip would hide a broken book, so it fails instead.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from book_pages import HTML

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1280, "height": 800}
HOW_TO_ENABLE = ("install Chromium and Playwright for Python (Debian: `apt-get install -y "
                 "chromium` and `pip install playwright`; no browser download is needed) or "
                 "point CBLAB_CHROMIUM at a Chrome/Chromium binary, then run `make test`")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def skip_or_fail(reason: str):
    """Skip locally; fail in CI, where the suite must run."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true, so the browser suite must run: {HOW_TO_ENABLE})",
                    pytrace=False)
    pytest.skip(f"{reason}: {HOW_TO_ENABLE}")


# --------------------------------------------------------------------------- server and browser
@pytest.fixture(scope="session")
def book_dir() -> Path:
    if not (HTML / "index.html").is_file():
        pytest.fail(f"no built book in {HTML}: run `make build-book` first", pytrace=False)
    return HTML


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def base_url(book_dir):
    """http.server on 127.0.0.1 (a free port) serving _build/html, for the whole session."""
    handler = functools.partial(_QuietHandler, directory=str(book_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def chromium_executable() -> str | None:
    explicit = os.environ.get("CBLAB_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if found := shutil.which(name):
            return found
    return None


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("Playwright for Python is not installed")
    executable = chromium_executable()
    if executable is None:
        skip_or_fail("no Chromium found")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS,
                                             headless=True)
        yield browser
        browser.close()


# --------------------------------------------------------------------------- one page visit
@dataclass
class Visit:
    """A page opened in a fresh browser context, with everything that went wrong on the way."""

    page: object
    url: str
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    outside_requests: list[str] = field(default_factory=list)
    local_files: list[tuple[str, str]] = field(default_factory=list)   # (resource type, path)

    def problems(self) -> list[str]:
        return ([f"console error: {m}" for m in self.console_errors]
                + [f"page error: {m}" for m in self.page_errors]
                + [f"failed request: {m}" for m in self.failed_requests]
                + [f"request leaving the machine (blocked): {m}" for m in self.outside_requests])


WIDGETS_READY = """() => {
  const views = document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]');
  return [...views].every(s => s.parentElement.querySelector('.widget-subarea .jupyter-widgets'));
}"""


@pytest.fixture
def visit(browser, base_url, book_dir):
    """``visit("book/01_prefill.html")`` opens a page and waits until it has settled: loaded,
    network idle, widget views rendered, fonts ready. Any request to anything but the local
    server is recorded and aborted — the book must work with no network."""
    contexts = []

    def open_page(path: str, *, base: str | None = None) -> Visit:
        base = base or base_url
        context = browser.new_context(viewport=VIEWPORT)
        contexts.append(context)
        page = context.new_page()
        record = Visit(page, base + path)

        def route(route):
            url = route.request.url
            if url.startswith(base):
                record.local_files.append((route.request.resource_type,
                                           unquote(urlsplit(url).path).lstrip("/")))
                route.continue_()
            else:
                record.outside_requests.append(url)
                route.abort()
        context.route("**/*", route)
        page.on("console", lambda m: m.type == "error" and record.console_errors.append(
            f"{m.text} ({m.location.get('url', '')})"))
        page.on("pageerror", lambda e: record.page_errors.append(str(e)))
        page.on("requestfailed", lambda r: r.url.startswith(base) and
                record.failed_requests.append(f"{r.url} ({r.failure})"))
        page.on("response", lambda r: r.status >= 400 and record.failed_requests.append(
            f"{r.url} (HTTP {r.status})"))
        response = page.goto(record.url, wait_until="load")
        assert response is None or response.ok, f"{record.url}: HTTP {response.status}"
        page.wait_for_load_state("networkidle")
        try:
            page.wait_for_function(WIDGETS_READY, timeout=15_000)
        except Exception:              # a timeout: the widget test reports what is missing
            pass
        page.evaluate("document.fonts.ready.then(() => true)")
        return record

    yield open_page
    for context in contexts:
        context.close()
