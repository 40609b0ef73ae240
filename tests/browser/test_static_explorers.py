"""The static explorers of the built book: every slider moves the figure and the report, with
no kernel and no network.

Each explorer a chapter displays (``cblab_src.widgets.Explorer``) is shown in the HTML book as
its static twin (``cblab_src.viz.static_explorer``): ``<div data-explorer="NAME">`` with one
``<input type="range" data-knob="PARAM">`` per slider, a ``<pre data-report>`` and an
``<img>``, browsing settings precomputed when the chapter ran (stored as JSON in the element
``…-data``). On every chapter page, every knob of every static explorer is moved to its
minimum and its maximum, by keyboard and by setting the value, and each time the figure, the
report, the value label and the alt text must be those stored for the setting the knobs now
select; minimum and maximum must differ in both figure and report. No console error, no failed
request, no request off the machine. One moved explorer per chapter is saved as a screenshot in
_build/screenshots/static-explorer-CHAPTER.png.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from book_pages import CHAPTERS, SCREENSHOTS

# Chapter pages (section pages included) that must have these static explorers (others may
# have more).
REQUIRED = {
    "book/00_setup": {"timeline_explorer"},
    "book/01_prefill": {"prefill_explorer"},
    "book/02_ragged_batching": {"ragged_explorer"},
    "book/03_prefill_decode_mix": {"budget_explorer"},
    "book/04_scheduler_timeline": {"timeline_explorer"},
    "book/05_kv_layout": {"block_pool_explorer"},
    "book/05_2_memory_pressure": {"preemption_explorer"},
    "book/06_attention_paths": {"mixed_step_explorer"},
    "book/08_plugins": {"adaptive_chunk_explorer"},
    "book/10_advanced": {"budget_explorer"},
    "book/10_4_prefix_caching": {"prefix_explorer"},
    "book/11_exploration": {"ragged_explorer"},
    "book/12_serving_under_load": {"rate_explorer"},
}

# What the explorer shows now, and what its stored data says it should show for the setting
# its range inputs select.
STATE = """root => {
  const data = JSON.parse(document.getElementById(root.id + '-data').textContent);
  let cell = 0;
  const labels = [], knobs = [];
  data.knobs.forEach(k => {
    const input = root.querySelector(`input[type="range"][data-knob="${k.name}"]`);
    const i = +input.value;
    cell = cell * k.values.length + i;
    const value = String(k.values[i]);
    labels.push(k.label + ' ' + value);
    knobs.push({name: k.name, index: i, value: value,
                shown: document.getElementById(root.id + '-value-' + k.name).textContent,
                valuetext: input.getAttribute('aria-valuetext')});
  });
  const [image, report] = data.cells[cell];
  const img = root.querySelector('img');
  return {cell: cell, setting: root.dataset.setting, knobs: knobs,
          src: img.getAttribute('src'), alt: img.alt,
          report: root.querySelector('[data-report]').textContent,
          expected: {src: data.images[image], report: data.reports[report],
                     alt: data.caption + ', ' + labels.join(', ')},
          decoded: img.complete && img.naturalWidth > 0};
}"""

KNOBS = """root => [...root.querySelectorAll('input[type="range"][data-knob]')].map(input => ({
  name: input.dataset.knob, min: +input.min, max: +input.max, value: +input.value,
  labels: [...input.labels].map(l => l.textContent.trim()), tabIndex: input.tabIndex,
  disabled: input.disabled}))"""


def check_shown(state: dict, where: str) -> None:
    """The explorer shows exactly the stored picture, report and alt text of the setting its
    inputs select, and each label shows the value drawn."""
    assert state["setting"] == str(state["cell"]), where
    assert state["src"] == state["expected"]["src"], f"{where}: wrong picture"
    assert state["report"] == state["expected"]["report"], (
        f"{where}: report {state['report']!r} != {state['expected']['report']!r}")
    assert state["alt"] == state["expected"]["alt"], where
    for knob in state["knobs"]:
        assert knob["shown"] == knob["valuetext"] == knob["value"], (where, knob)
        assert f" {knob['value']}" in state["alt"], (where, knob)


@pytest.mark.parametrize("page", CHAPTERS)
def test_every_knob_moves_the_figure_and_the_report(visit, page):
    record = visit(f"{page}.html")
    p = record.page
    explorers = p.locator("[data-explorer]")
    names = explorers.evaluate_all("els => els.map(e => e.dataset.explorer)")
    assert REQUIRED.get(page, set()) <= set(names), f"{page}: {sorted(names)}"
    assert len(set(names)) == len(names), f"{page}: an explorer name twice: {names}"
    dead = p.evaluate("document.querySelectorAll('.widget-subarea .widget-slider').length")
    assert dead == 0, f"{page} shows {dead} widget sliders that need a kernel"
    screenshot = None
    for k in range(explorers.count()):
        root = explorers.nth(k)
        where = f"{page} {names[k]}"
        root.scroll_into_view_if_needed()
        start = root.evaluate(STATE)
        check_shown(start, f"{where} at the start")
        assert start["decoded"], f"{where}: the first picture did not decode"
        knobs = root.evaluate(KNOBS)
        assert knobs, f"{where} has no knob"
        for knob in knobs:
            at = f"{where} knob {knob['name']}"
            assert knob["labels"] and all(knob["labels"]), f"{at} has no label"
            assert not knob["disabled"] and knob["tabIndex"] >= 0, f"{at} is not focusable"
            assert knob["max"] > knob["min"] == 0, f"{at}: {knob}"
            slider = root.locator(f'input[type="range"][data-knob="{knob["name"]}"]')

            slider.focus()                                  # keyboard: Home, End
            assert slider.evaluate("e => document.activeElement === e"), at
            p.keyboard.press("Home")
            low = root.evaluate(STATE)
            p.keyboard.press("End")
            high = root.evaluate(STATE)
            for state, end, index in ((low, "min", 0), (high, "max", knob["max"])):
                moved = {s["name"]: s["index"] for s in state["knobs"]}[knob["name"]]
                assert moved == index, f"{at}: {end} by keyboard went to {moved}"
                check_shown(state, f"{at} at its {end}")
            assert high["src"] != low["src"], f"{at}: min and max show the same figure"
            assert high["report"] != low["report"], f"{at}: min and max give the same report"
            # (so at least one of the two moves changed both from the starting setting)

            slider.fill("0")                                # setting the value, as a drag does
            check_shown(root.evaluate(STATE), f"{at} filled to its min")
            slider.fill(str(knob["max"]))
            state = root.evaluate(STATE)
            check_shown(state, f"{at} filled to its max")
            assert state["src"] == high["src"] and state["report"] == high["report"], at
            width = root.locator("img").evaluate(
                "i => i.decode().then(() => i.naturalWidth)")
            assert width > 0, f"{at}: the picture at the max did not decode"
            slider.fill(str(knob["value"]))                 # back where it started
        assert root.evaluate(STATE)["cell"] == start["cell"], where
        if screenshot is None:
            root.locator(f'input[type="range"][data-knob="{knobs[0]["name"]}"]').fill(
                str(knobs[0]["max"]))
            root.locator("img").evaluate("i => i.decode()")
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            screenshot = SCREENSHOTS / f"static-explorer-{Path(page).name}.png"
            root.screenshot(path=str(screenshot))
    assert record.problems() == [], "\n".join(record.problems())


def test_an_explorer_works_opened_from_disk_with_no_network(browser):
    """Opened from disk in an offline browser, a static explorer still moves."""
    from book_pages import HTML
    context = browser.new_context(viewport={"width": 1280, "height": 800}, offline=True)
    try:
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto((HTML / "book/03_prefill_decode_mix.html").as_uri(), wait_until="load")
        root = page.locator('[data-explorer="budget_explorer"]')
        before = root.evaluate(STATE)
        root.locator('input[data-knob="budget"]').fill("0")
        after = root.evaluate(STATE)
        check_shown(after, "budget_explorer from disk")
        assert after["report"] != before["report"] and after["src"] != before["src"]
        assert after["report"].startswith("budget=1 ")
        assert errors == []
    finally:
        context.close()
