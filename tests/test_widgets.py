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


def _tiny_figure():
    from matplotlib.figure import Figure
    fig = Figure(figsize=(1, 1))
    fig.add_subplot().plot([0, 1])
    return fig
