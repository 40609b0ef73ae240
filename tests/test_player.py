"""The kernel-free step player (cblab_src.viz.player) and the side-by-side figure."""

import base64
import re

import pytest
from matplotlib.figure import Figure

from cblab_src.simulate import simulate_schedule
from cblab_src.viz import plot_block_pool, plot_budget
from cblab_src.viz.compare import side_by_side
from cblab_src.viz.player import StepPlayer, figure_png, step_player
from cblab_src.widgets import default_workload

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def small_figure(i: int) -> Figure:
    fig = Figure(figsize=(1, 1))
    fig.add_subplot().bar([0], [i + 1])
    return fig


@pytest.fixture(scope="module")
def pool_run():
    return simulate_schedule(default_workload(), max_tokens_per_step=16, prefill_chunk_size=8,
                             block_size=4, record_pool=True)


def test_player_embeds_one_png_per_frame_and_shows_the_first(pool_run):
    player = step_player(lambda i: plot_block_pool(pool_run.pool[i]), pool_run.num_steps,
                         name="ch5-pool")
    html = player._repr_html_()
    script = html[html.index("<script>"):]
    uris = re.findall(r'"data:image/png;base64,([A-Za-z0-9+/=]+)"', script)
    assert player.num_frames == pool_run.num_steps == len(uris)
    assert all(base64.b64decode(u).startswith(PNG_MAGIC) for u in uris)
    assert [base64.b64decode(u) for u in uris] == player.frames
    first_img = re.search(r'<img id="cblab-player-ch5-pool-img" src="data:image/png;base64,'
                          r'([A-Za-z0-9+/=]+)"', html)
    assert first_img and first_img.group(1) == uris[0]
    assert f'max="{pool_run.num_steps - 1}"' in html
    assert len(set(player.frames)) > 1          # the pool changes from step to step


def test_player_ids_derive_from_the_name_only():
    a = step_player(small_figure, 3, name="demo-1")
    b = step_player(small_figure, 3, name="demo-1")
    html = a._repr_html_()
    assert html == b._repr_html_()              # deterministic: no random ids
    ids = re.findall(r'id="([^"]+)"', html)
    assert ids == ["cblab-player-demo-1"] + [f"cblab-player-demo-1-{part}" for part in
                                             ("img", "prev", "play", "pause", "next",
                                              "slider", "label")]
    assert a.element_id == "cblab-player-demo-1"
    assert 'data-frames="3"' in html
    assert repr(a) == "StepPlayer('demo-1', 3 frames)"


def test_player_is_self_contained():
    html = step_player(small_figure, 2, name="x")._repr_html_()
    assert "http://" not in html and "https://" not in html and "src=\"//" not in html
    assert "fa-" not in html                    # no icon font: plain unicode labels


def test_player_labels_are_escaped_for_html_and_javascript():
    player = step_player(small_figure, 2, name="x", labels=['a "quoted" <b>', "x</script>"])
    html = player._repr_html_()
    assert "x</script>" not in html.replace("</script>\n</div>", "")
    assert '"a \\"quoted\\" \\u003cb\\u003e"' in html
    assert "a &quot;quoted&quot; &lt;b&gt;" in html    # the first label, shown before any JS runs


def test_player_dpi_sets_the_frame_size():
    small = step_player(small_figure, 1, name="s", dpi=40).frames[0]
    large = step_player(small_figure, 1, name="l", dpi=80).frames[0]
    assert len(small) < len(large)


@pytest.mark.parametrize("kwargs, error", [
    ({"num_frames": 0}, ValueError), ({"num_frames": 2.0}, TypeError),
    ({"name": "Has Space"}, ValueError), ({"name": ""}, ValueError),
    ({"dpi": 0}, ValueError), ({"labels": ["only one"]}, ValueError),
])
def test_player_bad_input(kwargs, error):
    args = {"num_frames": 2, "name": "ok", **kwargs}
    with pytest.raises(error, match=next(iter(kwargs))):
        step_player(small_figure, **args)


def test_figure_png_has_no_version_stamp():
    png = figure_png(small_figure(0))
    assert png.startswith(PNG_MAGIC) and b"Matplotlib" not in png


def test_side_by_side_keeps_each_panel_at_its_own_pixels():
    runs = [simulate_schedule(default_workload(), max_tokens_per_step=b, prefill_chunk_size=4)
            for b in (4, 16)]
    panels = [plot_budget(r) for r in runs]
    fig = side_by_side(panels, ["budget 4", "budget 16"], dpi=50)
    assert len(fig.axes) == 2 and fig.dpi == 50
    assert [ax.texts[0].get_text() for ax in fig.axes] == ["budget 4", "budget 16"]
    w, h = fig.get_size_inches()
    assert w * 50 == pytest.approx(2 * 7 * 50) and h > 2.6
    with pytest.raises(ValueError, match="equal length"):
        side_by_side(panels, ["one label"])


def test_side_by_side_columns_fit_their_panels():
    narrow, wide = Figure(figsize=(2, 3)), Figure(figsize=(6, 1))
    fig = side_by_side([narrow, wide], ["narrow", "wide"], dpi=50)
    assert fig.get_size_inches()[0] == pytest.approx(8)         # 2 + 6, not 2 x 6
    stacked = side_by_side([narrow, wide], ["narrow", "wide"], ncols=1, dpi=50)
    assert stacked.get_size_inches() == pytest.approx((6, 3 + 1 + 2 * 0.3))


def test_player_type():
    assert isinstance(step_player(small_figure, 1, name="t"), StepPlayer)
