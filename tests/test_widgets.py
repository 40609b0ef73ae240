"""Widget explorers: ``set`` moves sliders from code, checks every value like the engine does,
and a rejected call changes nothing."""

from __future__ import annotations

import matplotlib
import pytest

matplotlib.use("Agg")

from cblab_src.widgets import (Explorer, SliderSpec, block_pool_explorer, budget_explorer,  # noqa: E402
                               preemption_explorer, prefix_explorer, ragged_explorer,
                               timeline_explorer)

EXPLORERS = [ragged_explorer, budget_explorer, timeline_explorer, block_pool_explorer,
             preemption_explorer, prefix_explorer]


@pytest.mark.parametrize("make", EXPLORERS, ids=lambda f: f.__name__)
def test_set_moves_the_slider_and_the_report_follows(make):
    explorer = make()
    name, spec = next(iter(explorer.specs.items()))
    before = explorer.report()
    value = spec.high if explorer.params[name] != spec.high else spec.low
    explorer.set(**{name: value})
    assert explorer.params[name] == value
    assert explorer._sliders[name].value == value
    # Setting the first value back restores the first report exactly (pure simulate).
    explorer.set(**{name: make().params[name]})
    assert explorer.report() == before


@pytest.mark.parametrize("make", EXPLORERS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("bad, error", [(10_000, ValueError), (-1, ValueError),
                                        (2.5, TypeError), ("8", TypeError), (True, TypeError),
                                        (float("nan"), TypeError)])
def test_out_of_range_or_wrong_type_is_rejected_and_nothing_changes(make, bad, error):
    explorer = make()
    name = next(iter(explorer.specs))
    params, report = dict(explorer.params), explorer.report()
    with pytest.raises(error, match=name):
        explorer.set(**{name: bad})
    assert explorer.params == params and explorer.report() == report
    assert explorer._sliders[name].value == params[name]


def test_unknown_parameter_is_rejected_before_anything_runs():
    explorer = budget_explorer()
    params = dict(explorer.params)
    with pytest.raises(TypeError, match="blocksize"):
        explorer.set(budget=4, blocksize=8)
    assert explorer.params == params


def test_a_custom_explorer_is_built_from_pure_functions():
    calls = []

    def simulate(n):
        calls.append(n)
        return n * n

    explorer = Explorer(simulate, lambda r: _tiny_figure(), lambda r: f"square={r}",
                        {"n": SliderSpec("n", 1, 5, 2)})
    assert explorer.report() == "square=4"
    explorer.set(n=3)
    explorer.set(n=3)                       # unchanged value: not simulated again
    assert explorer.report() == "square=9" and calls == [2, 3]


def _tiny_figure(height: int = 1):
    from matplotlib.figure import Figure
    fig = Figure(figsize=(1, 1))
    fig.add_subplot().plot([0, height])
    return fig


# ------------------------------------------------------------------ static twins (the built book)
import base64  # noqa: E402
import html as html_lib  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402

from cblab_src.viz.static_explorer import Knob, palette_png, static_explorer  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def small_grid(explorer) -> dict:
    """Each slider's lowest, starting and highest grid value: a cheap grid with the real
    explorer's simulate, draw and describe behind it."""
    return {name: sorted({spec.grid_values()[0], spec.default, spec.grid_values()[-1]})
            for name, spec in explorer.specs.items()}


@pytest.mark.parametrize("make", EXPLORERS, ids=lambda f: f.__name__)
def test_every_static_setting_is_what_set_gives(make):
    """Honest values: for each precomputed setting the stored report is ``explorer.set(
    **setting)``'s report and the stored picture is that explorer's figure, byte for byte."""
    explorer = make()
    static = explorer.static(grid=small_grid(explorer))
    assert static.name == make.__name__
    fresh = make()
    for setting in static.settings():
        fresh.set(**setting)
        assert static.report(**setting) == fresh.report(), setting
        assert static.png(**setting) == palette_png(fresh.figure()), setting


def test_a_full_grid_matches_fresh_runs_at_sampled_settings():
    """The whole default grid of one explorer (60 settings), sampled at its corners and at
    seeded random settings, against fresh explorers."""
    import random
    static = ragged_explorer().static()
    assert static.num_settings == 60 and static.start == {"num_requests": 3, "max_len": 5}
    settings = list(static.settings())
    sample = [settings[0], settings[-1]] + random.Random(0).sample(settings, 6)
    for setting in sample:
        fresh = ragged_explorer()
        fresh.set(**setting)
        assert static.report(**setting) == fresh.report()
        assert static.png(**setting) == palette_png(fresh.figure())


@pytest.mark.parametrize("make", EXPLORERS, ids=lambda f: f.__name__)
def test_grids_hold_the_starting_value_and_stay_in_range(make):
    explorer = make()
    for name, spec in explorer.specs.items():
        values = spec.grid_values()
        assert spec.default in values and list(values) == sorted(set(values))
        assert spec.low <= values[0] and values[-1] <= spec.high
        assert len(values) >= 3, (name, values)


def test_the_grid_snaps_and_the_start_follows_the_explorer():
    explorer = budget_explorer()
    static = explorer.static(grid={"budget": [2, 8, 32], "chunk": [4, 16]})
    assert static.start == {"budget": 8, "chunk": 4}
    explorer.set(budget=30, chunk=11)
    moved = explorer.static(grid={"budget": [2, 8, 32], "chunk": [4, 16]})
    assert moved.start == {"budget": 32, "chunk": 16}       # 30 -> 32, 11 -> 16 (nearest)
    with pytest.raises(ValueError, match="budget"):
        explorer.static(grid={"budget": [0, 8]})
    with pytest.raises(TypeError, match="blocksize"):
        explorer.static(grid={"blocksize": [8]})


def test_display_bundles_the_live_widget_and_the_static_html():
    """A kernel front end shows the widget view; the built book prefers text/html."""
    explorer = Explorer(lambda n: n * n, lambda r: _tiny_figure(), lambda r: f"square={r}",
                        {"n": SliderSpec("n", 1, 5, 2)}, name="square_explorer",
                        caption="a line")
    bundle = explorer._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html",
                           "application/vnd.jupyter.widget-view+json"}
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == \
        explorer.widget.model_id
    assert bundle["text/plain"] == "Explorer('square_explorer', n=2)"
    page = bundle["text/html"]
    assert 'data-explorer="square_explorer"' in page
    assert page == explorer._repr_mimebundle_()["text/html"]        # computed once, stable
    assert "<pre" in page and "square=4" in page


def test_static_html_follows_the_contract():
    """One labelled range input per knob, a report, an image with alt text, the data as JSON;
    ids derived from the name; byte-identical from run to run; nothing external."""
    def show(a, b):
        return f"a={a} b<{b}>", _tiny_figure(min(a, 2))

    knobs = [Knob("a", "first knob", (1, 2, 3), 2), Knob("b", "second", (0, 5), 0)]
    static = static_explorer(show, knobs, name="demo_explorer", caption="bars")
    page = static._repr_html_()
    assert page == static_explorer(show, knobs, name="demo_explorer",
                                   caption="bars")._repr_html_()
    eid = "cblab-explorer-demo-explorer"
    assert static.element_id == eid
    assert re.findall(r'id="([^"]+)"', page) == [
        eid, f"{eid}-knob-a", f"{eid}-value-a", f"{eid}-knob-b", f"{eid}-value-b",
        f"{eid}-report", f"{eid}-img", f"{eid}-data"]
    assert 'data-explorer="demo_explorer"' in page
    inputs = re.findall(r'<input type="range"[^>]*>', page)
    assert len(inputs) == 2
    assert 'data-knob="a" min="0" max="2" step="1" value="1" aria-valuetext="2"' in inputs[0]
    assert f'<label for="{eid}-knob-a">first knob</label>' in page
    assert f'<pre id="{eid}-report" data-report' in page
    assert html_lib.escape("a=2 b<0>") in page
    assert 'alt="bars, first knob 2, second 0"' in page
    assert "http://" not in page and "https://" not in page and 'src="//' not in page

    raw = re.search(rf'<script type="application/json" id="{eid}-data">(.*?)</script>',
                    page, re.S).group(1)
    assert "<" not in raw                                   # "</script>" cannot occur
    data = json.loads(raw)
    assert [k["values"] for k in data["knobs"]] == [[1, 2, 3], [0, 5]]
    assert len(data["cells"]) == static.num_settings == 6
    assert data["reports"] == static.reports and "a=3 b<5>" in data["reports"]
    pictures = [base64.b64decode(u.removeprefix("data:image/png;base64,"))
                for u in data["images"]]
    assert pictures == static.images and all(p.startswith(PNG_MAGIC) for p in pictures)
    for i, setting in enumerate(static.settings()):
        image, report = data["cells"][i]
        assert data["reports"][report] == f"a={setting['a']} b<{setting['b']}>"
        assert pictures[image] == palette_png(_tiny_figure(min(setting["a"], 2)))
    # a = 2 and a = 3 draw the same picture: stored once; every report differs
    assert len(static.images) == 2 and len(static.reports) == 6
    assert repr(static) == ("StaticExplorer('demo_explorer', a[3] x b[2] = 6 settings, "
                            "2 pictures)")


@pytest.mark.parametrize("kwargs, error", [
    ({"name": "Bad Name"}, ValueError), ({"name": "x", "dpi": 0}, ValueError),
])
def test_static_explorer_rejects_bad_arguments(kwargs, error):
    with pytest.raises(error):
        static_explorer(lambda a: ("", _tiny_figure()), [Knob("a", "a", (1, 2), 1)],
                        caption="c", **kwargs)


@pytest.mark.parametrize("values, start", [((), 1), ((2, 1), 1), ((1, 1, 2), 1), ((1, 2), 3)])
def test_knob_rejects_bad_grids(values, start):
    with pytest.raises(ValueError):
        Knob("a", "a", values, start)


def test_slider_spec_grid_is_checked_against_the_range():
    assert SliderSpec("b", 1, 32, 8, (32, 1, 4)).grid_values() == (1, 4, 8, 32)
    assert SliderSpec("b", 1, 4, 2).grid_values() == (1, 2, 3, 4)
    with pytest.raises(ValueError, match="grid value"):
        SliderSpec("b", 1, 32, 8, (1, 64))
