"""The built HTML book in a real browser: what a reader sees, with no network and no kernel.

Every page of _toc.yml loads with no console error and no failed request, and asks nothing of
the network; every chapter shows its figures and weighs at most PAGE_BUDGET; the step players
of chapters 2-5 change their picture when their slider moves; widget views render from saved
state, and explorers show as static twins (test_static_explorers.py moves them); search finds
the chapters; the Chinese pages render their characters with a CJK font. A screenshot of
each chapter's first screen goes to _build/screenshots/.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from book_pages import BUILD, CHAPTERS, HTML, PAGES, SCREENSHOTS, ZH_PAGES

PAGE_BUDGET = 3_000_000          # bytes of HTML + images per chapter page
SCRUBBER_CHAPTERS = ["book/02_ragged_batching", "book/03_prefill_decode_mix",
                     "book/04_scheduler_timeline", "book/05_kv_layout"]
COLAB_MARKER = "Colab: install cblab_src"
HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
WEIGHTS: dict[str, dict] = {}


def html_path(page: str) -> str:
    return f"{page}.html"


def page_weight(visit_record, page: str) -> dict:
    """Bytes of the page's HTML and of the image files it loaded (data: images are inside the
    HTML). Scripts, styles and fonts are shared by every page and cached, so not counted."""
    html = (HTML / html_path(page)).stat().st_size
    images = sum((HTML / path).stat().st_size for kind, path in set(visit_record.local_files)
                 if kind == "image" and (HTML / path).is_file())
    return {"html": html, "images": images, "total": html + images}


@pytest.fixture(scope="module", autouse=True)
def write_weights():
    yield
    if WEIGHTS:
        BUILD.mkdir(exist_ok=True)
        (BUILD / "page_weights.json").write_text(json.dumps(WEIGHTS, indent=1))


# ------------------------------------------------------------------------- every page
@pytest.mark.parametrize("page", PAGES + ["index", "search", "genindex"])
def test_page_loads_cleanly(visit, page):
    """No console error, no page error, no failed request, no request off the machine."""
    record = visit(html_path(page))
    assert record.problems() == [], "\n".join(record.problems())


def test_no_page_references_a_remote_resource(book_dir):
    """Scripts, stylesheets, images, fonts and frames all come from the book itself (links a
    reader may follow, like the launch buttons, are fine)."""
    remote = re.compile(r"""<(script|img|iframe|source)\b[^>]*\bsrc=["'](https?:)?//"""
                        r"""|<link\b[^>]*\bhref=["'](https?:)?//[^"']*["'][^>]*>""", re.I)
    offenders = {}
    for path in book_dir.rglob("*.html"):
        for match in remote.finditer(path.read_text(encoding="utf8")):
            tag = match.group(0)
            if tag.startswith("<link") and not re.search(r"rel=[\"'](stylesheet|preload|icon|"
                                                          r"modulepreload)", tag):
                continue                                  # rel=canonical etc.: not fetched
            offenders.setdefault(str(path.relative_to(book_dir)), []).append(tag[:120])
    assert offenders == {}, offenders


# ------------------------------------------------------------------------- every chapter
@pytest.mark.parametrize("page", CHAPTERS)
def test_chapter_shows_its_figures_within_budget(visit, page):
    record = visit(html_path(page))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    record.page.screenshot(path=str(SCREENSHOTS / f"{Path(page).name}.png"))
    images = record.page.evaluate("""() => [...document.querySelectorAll('article img')].map(img => {
        const r = img.getBoundingClientRect();
        return {src: img.currentSrc.slice(0, 80), complete: img.complete,
                natural: [img.naturalWidth, img.naturalHeight], shown: img.offsetParent !== null,
                size: [r.width, r.height]};
    })""")
    assert images, f"{page} shows no figure"
    broken = [i for i in images if not i["complete"] or min(i["natural"]) == 0]
    assert broken == [], f"images that did not decode: {broken}"
    empty = [i for i in images if i["shown"] and min(i["size"]) == 0]
    assert empty == [], f"images shown at zero size: {empty}"
    assert any(i["shown"] for i in images), "every figure is hidden"

    weight = WEIGHTS[page] = page_weight(record, page)
    assert weight["total"] <= PAGE_BUDGET, f"{page}: {weight} over {PAGE_BUDGET} bytes"


def configured_repository() -> tuple[str, str] | None:
    """(url, branch) of the repository the book was built for, or None. `make build-book
    REPO_URL=...` builds from a generated _build/_config.repo.yml (.ci/book_config.py) and
    removes that file when no REPO_URL is given."""
    generated = BUILD / "_config.repo.yml"
    if not generated.is_file():
        return None
    repository = yaml.safe_load(generated.read_text(encoding="utf8"))["repository"]
    return repository["url"], repository["branch"]


# A link that opens something on Binder or Colab (not their home pages, which prose may cite).
LAUNCH_LINK = re.compile(r"https?://(mybinder\.org/v2/|colab\.research\.google\.com/.)")


@pytest.mark.parametrize("page", PAGES)
def test_chapter_offers_live_launches_and_hides_the_colab_cell(visit, page):
    """With a repository configured, every chapter's launch buttons open it on Binder and Colab;
    with none, no page has a launch link. No page names the old placeholder repository."""
    record = visit(html_path(page))
    links = record.page.eval_on_selector_all("a[href]", "els => els.map(a => a.href)")
    assert "CHANGE-ME" not in record.page.content(), f"{page} names a placeholder repository"
    assert COLAB_MARKER not in record.page.content(), "the Colab install cell is shown"
    launches = {u for u in links if LAUNCH_LINK.match(u)}
    repository = configured_repository()
    if repository is None:
        assert launches == set(), (f"{page} has launch links, but no repository was configured "
                                   f"(no {BUILD / '_config.repo.yml'}): {sorted(launches)}")
        return
    url, branch = repository
    owner_name = url.removeprefix("https://github.com/")
    notebook = f"{page}.ipynb"
    expected = {f"https://mybinder.org/v2/gh/{owner_name}/{branch}?urlpath=lab/tree/{notebook}",
                f"https://colab.research.google.com/github/{owner_name}/blob/{branch}/{notebook}"}
    expected = expected if page in CHAPTERS else set()
    assert launches == expected, f"{page}: launch links for {url} ({branch})"


# ------------------------------------------------------------------------- step players
@pytest.mark.parametrize("page", SCRUBBER_CHAPTERS)
def test_step_players_scrub(visit, page):
    """Moving the slider changes the frame; play advances it; pause stops it."""
    record = visit(html_path(page))
    p = record.page
    ids = p.eval_on_selector_all(".cblab-player", "els => els.map(e => e.id)")
    assert ids, f"{page} has no step player"
    for pid in ids:
        player, img = p.locator(f"#{pid}"), p.locator(f"#{pid}-img")
        slider, label = p.locator(f"#{pid}-slider"), p.locator(f"#{pid}-label")
        frames = int(player.get_attribute("data-frames"))
        assert frames >= 2, f"{pid}: {frames} frames"
        first_src, first_label = img.get_attribute("src"), label.inner_text()

        slider.fill(str(frames - 1))
        assert player.get_attribute("data-frame") == str(frames - 1)
        assert img.get_attribute("src") != first_src, f"{pid}: the picture did not change"
        assert label.inner_text() != first_label
        width, height = img.evaluate("i => i.decode().then(() => [i.naturalWidth, "
                                     "i.naturalHeight])")
        assert width > 0 and height > 0

        slider.fill("0")
        assert img.get_attribute("src") == first_src
        p.click(f"#{pid}-play")
        p.wait_for_function(f"document.getElementById('{pid}').dataset.frame >= 2",
                            timeout=10_000)
        p.click(f"#{pid}-pause")
        stopped = player.get_attribute("data-frame")
        p.wait_for_timeout(1_600)
        assert player.get_attribute("data-frame") == stopped, f"{pid}: pause did not stop it"
        p.click(f"#{pid}-next")
        assert int(player.get_attribute("data-frame")) == min(int(stopped) + 1, frames - 1)


# ------------------------------------------------------------------------- widgets
WIDGET_VIEWS = """() => [...document.querySelectorAll(
    'script[type="application/vnd.jupyter.widget-view+json"]')].map(s => {
  const out = s.parentElement, root = out.querySelector('.widget-subarea .jupyter-widgets');
  const r = root ? root.getBoundingClientRect() : {width: 0, height: 0};
  return {rendered: !!root, size: [r.width, r.height], text: out.innerText.slice(0, 120),
          errors: out.querySelectorAll('.jupyter-widgets-error-widget, .widget-error').length,
          images: [...out.querySelectorAll('.widget-subarea img')].map(
              i => [i.complete, i.naturalWidth, i.naturalHeight]),
          sliders: [...out.querySelectorAll('.widget-slider')].map(
              e => e.querySelector('.widget-readout')?.innerText ?? '')};
})"""


@pytest.mark.parametrize("page", CHAPTERS)
def test_widget_views_render(visit, page):
    """Each saved widget view renders as widgets (sliders with readouts, decoded images),
    not as its text fallback."""
    views = visit(html_path(page)).page.evaluate(WIDGET_VIEWS)
    for k, view in enumerate(views):
        where = f"{page} widget view {k}"
        assert view["rendered"] and min(view["size"]) > 0, f"{where} did not render: {view}"
        assert view["errors"] == 0, f"{where} shows an error: {view['text']}"
        assert not re.match(r"\s*(VBox|HBox|IntSlider|Image|HTML)\(", view["text"]), view
        assert all(readout.strip() for readout in view["sliders"]), f"{where}: {view}"
        assert all(ok and w > 0 and h > 0 for ok, w, h in view["images"]), f"{where}: {view}"


def test_chapters_with_explorers_show_them_without_a_kernel(visit):
    """Chapters 2-5 show their explorers (cblab_src.widgets) as static twins, whose sliders
    work with no kernel (test_static_explorers.py moves every one), not as widget views whose
    sliders would move nothing."""
    for page in SCRUBBER_CHAPTERS:
        p = visit(html_path(page)).page
        assert p.locator('[data-explorer] input[type="range"][data-knob]').count(), page
        assert p.locator(".widget-subarea .widget-slider").count() == 0, page


# ------------------------------------------------------------------------- search
def test_search_finds_a_chapter_for_prefill(visit):
    record = visit("search.html?q=prefill")
    record.page.wait_for_selector("ul.search li a", timeout=15_000)
    hits = record.page.eval_on_selector_all("ul.search li a", "els => els.map(a => a.href)")
    assert any(re.search(r"/book/\d\d_\w+\.html", h) for h in hits), hits
    assert record.problems() == [], record.problems()


# ------------------------------------------------------------------------- Chinese pages
def cjk_families() -> set[str] | None:
    """Installed font families that cover Chinese, per fontconfig (None if unavailable)."""
    try:
        out = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True,
                             text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return {name.strip() for line in out.splitlines() for name in line.split(",")
            if name.strip()}


@pytest.mark.parametrize("page", ZH_PAGES)
def test_chinese_page_renders_its_characters(visit, page):
    """The Chinese text of the title and of the first Chinese paragraph is drawn with a font
    that has those glyphs (no tofu): Chromium reports which platform fonts drew each node."""
    record = visit(html_path(page))
    p = record.page
    p.evaluate("""() => {
        document.querySelector('article h1').setAttribute('data-cjk-probe', '');
        const para = [...document.querySelectorAll('article p')]
            .find(e => /[\\u4e00-\\u9fff]/.test(e.textContent));
        if (para) para.setAttribute('data-cjk-probe', '');
    }""")
    families = cjk_families()
    assert families, "no font with Chinese glyphs is installed (fc-list :lang=zh is empty)"
    cdp = p.context.new_cdp_session(p)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    root = cdp.send("DOM.getDocument", {"depth": 0})["root"]["nodeId"]
    nodes = cdp.send("DOM.querySelectorAll", {"nodeId": root,
                                              "selector": "[data-cjk-probe]"})["nodeIds"]
    assert len(nodes) == 2, f"{page}: no Chinese title or paragraph"
    for node in nodes:
        # Only the node's own text children are reported, so count Han characters in those.
        text = p.evaluate("""id => [...document.querySelectorAll('[data-cjk-probe]')[id]
            .childNodes].filter(n => n.nodeType === 3).map(n => n.textContent).join('')""",
                          nodes.index(node))
        fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
        drawn = sum(f["glyphCount"] for f in fonts if f["familyName"] in families)
        assert drawn >= len(HAN.findall(text)) > 0, (
            f"{page}: {len(HAN.findall(text))} Chinese characters in {text[:40]!r}, but only "
            f"{drawn} glyphs came from a CJK font; fonts used: {fonts}")


# ------------------------------------------------------------------------- opened from disk
def test_chapter_works_opened_from_disk_with_no_network(browser):
    """A reader with no network opens _build/html/book/... straight from disk: figures,
    the step player and the static explorers still work (the context is offline)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, offline=True)
    try:
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto((HTML / "book/05_kv_layout.html").as_uri(), wait_until="load")
        assert errors == []
        images = page.eval_on_selector_all(
            "article img", "els => els.map(i => i.complete && i.naturalWidth > 0)")
        assert images and all(images)
        pid = page.eval_on_selector(".cblab-player", "e => e.id")
        before = page.get_attribute(f"#{pid}-img", "src")
        page.fill(f"#{pid}-slider", "3")
        assert page.get_attribute(f"#{pid}-img", "src") != before
        explorer = page.locator('[data-explorer="block_pool_explorer"]')
        before = explorer.locator("[data-report]").inner_text()
        explorer.locator('input[data-knob="block_size"]').fill("0")
        assert explorer.locator("[data-report]").inner_text() != before
        assert all(v["rendered"] for v in page.evaluate(WIDGET_VIEWS))
    finally:
        context.close()
