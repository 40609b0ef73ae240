"""ipywidgets explorers for the chapters: sliders -> ``simulate(params)`` -> ``draw(result)``.

Every explorer is an :class:`Explorer`: a pure simulation function, a drawing function and a
report function, wired to integer sliders. Moving a slider re-runs the simulation and redraws.
``explorer.set(budget=8)`` does the same from code and returns the result, so a chapter (and
nbval) can show what a slider move does as plain text.

One cell, both worlds: displaying an explorer emits the live widget *and* its static twin
(:meth:`Explorer.static`, a :class:`~cblab_src.viz.static_explorer.StaticExplorer`: every
setting of each slider's ``grid`` precomputed, browsed by plain JavaScript) in one output. A
live kernel shows the widget; the built book prefers the static HTML (``nb_mime_priority_
overrides`` in ``_config.yml``), so its sliders move the figure and the report with no kernel.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import ipywidgets as widgets
from IPython.display import display

from ._math import ceil_div
from ._validate import positive_int, require_int
from .core.batch_builder import build_batch, padding_waste, ragged_causal_mask
from .core.scheduler import Scheduler
from .monitoring.metrics import MetricsCollector
from .simulate import simulate_schedule
from .viz import plot_block_pool, plot_budget, plot_mask, plot_timeline
from .viz.static_explorer import Knob, StaticExplorer, static_explorer
from .workloads import Workload, random_workload


def png_bytes(fig, dpi: int = 80) -> bytes:
    """Render a figure to PNG. Widgets show pictures as ``Image`` values, not as cell output,
    so moving a slider changes widget state only (and nbval sees no stray output)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, pil_kwargs={"compress_level": 1})  # fast > small
    return buffer.getvalue()


@dataclass(frozen=True)
class SliderSpec:
    """An integer slider: its label, range and starting value, and ``grid``, the values its
    static twin precomputes (default: every value from ``low`` to ``high``; ``default`` is
    always added)."""

    label: str
    low: int
    high: int
    default: int
    grid: tuple[int, ...] | None = None

    def __post_init__(self):
        if self.grid is not None:
            grid = tuple(sorted(set(self.grid)))
            for value in grid:
                self.check("grid value", value)
            object.__setattr__(self, "grid", grid)

    def grid_values(self) -> tuple[int, ...]:
        """The precomputed values, ascending, ``default`` included."""
        values = self.grid if self.grid is not None else range(self.low, self.high + 1)
        return tuple(sorted({*values, self.default}))

    def check(self, name: str, value) -> int:
        """Accept ``value`` only if it is an integer inside the slider's range."""
        value = require_int(name, value, minimum=self.low)
        if value > self.high:
            raise ValueError(f"{name} must be <= {self.high} (the slider's maximum), got {value}")
        return value


class Explorer:
    """Integer sliders driving ``simulate(**params) -> result``, ``draw(result) -> Figure``
    and ``describe(result) -> str``.

    ``name`` names its static twin in the page (``data-explorer``, element ids): the factory's
    name for the explorers of this module, any other lowercase name (unique in its page) for
    an explorer a chapter builds. ``caption`` says what the figure shows (its alt text in the
    page, followed by the setting)."""

    def __init__(self, simulate: Callable, draw: Callable, describe: Callable,
                 sliders: dict[str, SliderSpec], *, name: str = "explorer",
                 caption: str = "explorer figure"):
        self.simulate, self.draw, self.describe = simulate, draw, describe
        self.specs = sliders
        self.name, self.caption = name, caption
        self._static: StaticExplorer | None = None
        self._layouts: dict[tuple, list] = {}      # figure size -> axes positions, see render()
        self.params = {name: spec.default for name, spec in sliders.items()}
        self.result = simulate(**self.params)
        self._sliders = {
            name: widgets.IntSlider(value=spec.default, min=spec.low, max=spec.high,
                                    description=spec.label, continuous_update=False,
                                    style={"description_width": "initial"})
            for name, spec in sliders.items()
        }
        for name, slider in self._sliders.items():
            slider.observe(lambda change, name=name: self.set(**{name: change["new"]}), "value")
        self._text = widgets.HTML()
        self._plot = widgets.Image(format="png")
        self.widget = widgets.VBox([widgets.HBox(list(self._sliders.values())), self._text,
                                    self._plot])
        self._render()

    def set(self, **params):
        """Move sliders from code: validate every value first, then simulate and redraw once."""
        unknown = set(params) - set(self.specs)
        if unknown:
            raise TypeError(f"unknown parameter {sorted(unknown)[0]!r}; sliders are "
                            f"{sorted(self.specs)}")
        checked = {name: self.specs[name].check(name, v) for name, v in params.items()}
        if all(self.params[k] == v for k, v in checked.items()):
            return self.result
        self.result = self.simulate(**{**self.params, **checked})
        self.params.update(checked)
        for name, value in checked.items():       # sync sliders without re-entering set()
            slider = self._sliders[name]
            if slider.value != value:
                with slider.hold_trait_notifications():
                    slider.unobserve_all("value")
                    slider.value = value
                    slider.observe(lambda c, name=name: self.set(**{name: c["new"]}), "value")
        self._render()
        return self.result

    def report(self) -> str:
        """The text shown above the figure, for the current settings."""
        return self.describe(self.result)

    def figure(self):
        return self.draw(self.result)

    def render(self, result) -> bytes:
        """``draw(result)`` as PNG bytes, as the widget shows it.

        The first figure of each size and shape is laid out by matplotlib's constrained
        layout; later ones reuse its axes positions and drop the layout engine, so ``savefig``
        draws the figure once instead of twice (a layout pass and the real one), which halves
        a slider move's time."""
        fig = self.draw(result)
        key = (tuple(fig.get_size_inches().round(3)), len(fig.axes))
        positions = self._layouts.get(key)
        if positions is not None:
            fig.set_layout_engine(None)
            for ax, position in zip(fig.axes, positions):
                ax.set_position(position)
        png = png_bytes(fig)
        if positions is None:
            self._layouts[key] = [ax.get_position() for ax in fig.axes]
        return png

    def _render(self) -> None:
        self._text.value = f"<pre>{self.report()}</pre>"
        self._plot.value = self.render(self.result)

    def static(self, grid: dict[str, Sequence[int]] | None = None) -> StaticExplorer:
        """The static twin: ``describe`` and ``draw`` of ``simulate(**setting)`` for every
        setting of the sliders' grids, shown first at the current settings (snapped to the
        grids). For every setting its report is ``explorer.set(**setting)``'s report and its
        picture ``palette_png(explorer.figure())``.

        ``grid`` replaces some sliders' grids (``{"budget": (1, 8, 32)}``); without it the
        twin is computed once and kept (the display of the explorer uses that one)."""
        if grid is None and self._static is not None:
            return self._static.starting_at(self.params)
        grid = grid or {}
        unknown = set(grid) - set(self.specs)
        if unknown:
            raise TypeError(f"unknown parameter {sorted(unknown)[0]!r}; sliders are "
                            f"{sorted(self.specs)}")
        knobs = []
        for name, spec in self.specs.items():
            values = (tuple(sorted({spec.check(name, v) for v in grid[name]}))
                      if name in grid else spec.grid_values())
            knobs.append(Knob(name, spec.label, values, values[0]))

        def show(**setting):
            result = self.simulate(**setting)
            return self.describe(result), self.draw(result)
        static = static_explorer(show, knobs, name=self.name, caption=self.caption)
        if not grid:
            self._static = static
        return static.starting_at(self.params)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"Explorer({self.name!r}, {params})"

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        """The live widget's view, the static twin as HTML, and ``repr`` as text: a kernel
        front end shows the widget; the built book, with no kernel, the static HTML."""
        bundle = self.widget._repr_mimebundle_(include=include, exclude=exclude)
        bundle["text/plain"] = repr(self)
        bundle["text/html"] = self.static()._repr_html_()
        return bundle


# ---------------------------------------------------------------------- chapter 2: ragged batch
def ragged_explorer(seed: int = 0) -> Explorer:
    """Number of requests and longest prompt -> ragged mask heatmap and padding waste."""
    def simulate(num_requests, max_len):
        workload = random_workload(num_requests, prompt_len=(1, max_len), seed=seed)
        return build_batch([(s.req_id, s.prompt, 0, True) for s in workload.specs])

    def describe(batch):
        lengths = [seg.length for seg in batch.segments]
        waste = padding_waste(lengths)
        return (f"lengths={lengths} ragged tokens={batch.num_tokens} "
                f"padded tokens={len(lengths) * max(lengths)} padding waste={waste}")

    return Explorer(simulate, lambda b: plot_mask(ragged_causal_mask(b.req_ids, b.positions),
                                                  b.req_ids, b.positions), describe,
                    {"num_requests": SliderSpec("requests", 1, 6, 3),
                     "max_len": SliderSpec("longest prompt", 1, 10, 5)},
                    name="ragged_explorer", caption="ragged causal mask of a seeded random batch")


# ---------------------------------------------------------------------- chapters 3-4: schedules
def default_workload() -> Workload:
    """The five requests chapters 3 and 4 schedule: mixed prompt lengths, staggered arrivals."""
    return Workload.from_lengths([12, 5, 9, 3, 7], [4, 6, 3, 5, 4], [0, 0, 2, 3, 5], seed=3)


def describe_run(run, cost_model=None) -> str:
    """The slider report: steps, tokens per step, mean TTFT and TPOT in steps; with a
    ``cost_model`` (e.g. ``cblab_src.costmodel.H200_LLAMA3_8B``) a second line in ms."""
    s = run.summary()
    text = (f"budget={run.max_tokens_per_step} chunk={run.prefill_chunk_size} "
            f"steps={s['steps']} tokens/step={s['tokens_per_step']} "
            f"mean TTFT={s['mean_ttft']} mean TPOT={s['mean_tpot']} (steps)")
    if cost_model is None:
        return text
    ms = run.timed(cost_model).summary()
    return (f"{text}\non {cost_model.name}: {ms.makespan:.0f} ms, mean TTFT="
            f"{ms.ttft.mean:.1f} ms, mean TPOT={ms.tpot.mean:.1f} ms, "
            f"{ms.throughput_tok_s:,.0f} output tokens/s")


# The static twins' grids (SliderSpec.grid): denser where a schedule changes fastest.
BUDGET_GRID = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
CHUNK_GRID = (1, 2, 4, 8, 16, 32)


def _schedule_explorer(draw, workload: Workload | None, budget: int, chunk: int,
                       cost_model, name: str, caption: str) -> Explorer:
    workload = workload or default_workload()

    def simulate(budget, chunk):
        return simulate_schedule(workload, max_tokens_per_step=budget, prefill_chunk_size=chunk)

    return Explorer(simulate, draw, lambda run: describe_run(run, cost_model),
                    {"budget": SliderSpec("max_tokens_per_step", 1, 32, budget, BUDGET_GRID),
                     "chunk": SliderSpec("prefill_chunk_size", 1, 32, chunk, CHUNK_GRID)},
                    name=name, caption=caption)


def budget_explorer(workload: Workload | None = None, budget: int = 8, chunk: int = 4,
                    cost_model=None) -> Explorer:
    """Chapter 3: budget and chunk sliders -> tokens per step (decode solid, prefill hatched).
    With a ``cost_model`` the report adds milliseconds."""
    return _schedule_explorer(plot_budget, workload, budget, chunk, cost_model,
                              "budget_explorer",
                              "tokens per step, decode solid and prefill hatched")


def timeline_explorer(workload: Workload | None = None, budget: int = 8, chunk: int = 4,
                      cost_model=None) -> Explorer:
    """Chapter 4: budget and chunk sliders -> Gantt chart with TTFT/TPOT report (in steps,
    and in ms with a ``cost_model``)."""
    return _schedule_explorer(plot_timeline, workload, budget, chunk, cost_model,
                              "timeline_explorer",
                              "timeline of each request: waiting, prefill, decode")


# ---------------------------------------------------------------------- chapter 5: block pool
def block_pool_explorer(workload: Workload | None = None, budget: int = 16,
                        chunk: int = 8) -> Explorer:
    """Chapter 5: block size and step sliders -> the paged pool at that step. (A step past
    the end of the run shows its last step.) The static twin has every step of the run."""
    workload = workload or default_workload()
    runs = {}

    def run_for(block_size):
        if block_size not in runs:
            runs[block_size] = simulate_schedule(workload, max_tokens_per_step=budget,
                                                 prefill_chunk_size=chunk, block_size=block_size,
                                                 record_pool=True)
        return runs[block_size]

    def simulate(block_size, step):
        run = run_for(block_size)
        return run.pool[min(step, run.num_steps - 1)], min(step, run.num_steps - 1)

    # With no pool limit the schedule, so the number of steps, is the same for every block size.
    steps = range(min(run_for(4).num_steps, 41))

    def describe(result):
        snap, step = result
        return (f"step {step}: block_size={snap.block_size} used blocks={snap.used_blocks} "
                f"tokens={int(snap.fill.sum())} empty slots in used blocks={snap.wasted_slots}")

    return Explorer(simulate, lambda r: plot_block_pool(r[0]), describe,
                    {"block_size": SliderSpec("block_size", 1, 32, 4, (1, 2, 4, 8, 16, 32)),
                     "step": SliderSpec("step", 0, 40, min(5, steps[-1]), steps)},
                    name="block_pool_explorer", caption="KV block pool: one square per slot")


# ---------------------------------------------------------------------- chapter 9: live dashboard
class Dashboard:
    """Runs a scheduler step by step and shows throughput, queue length and KV use as it goes.

    ``dash.advance(5)`` runs five steps from code (as the buttons do) and returns their stats.
    """

    def __init__(self, scheduler: Scheduler):
        self.scheduler = scheduler
        self.metrics = MetricsCollector()
        self.history = []
        self._text = widgets.HTML()
        self._plot = widgets.Image(format="png")
        step = widgets.Button(description="step")
        run10 = widgets.Button(description="run 10 steps")
        step.on_click(lambda _: self.advance(1))
        run10.on_click(lambda _: self.advance(10))
        self.widget = widgets.VBox([widgets.HBox([step, run10]), self._text, self._plot])
        self._render()

    def advance(self, n: int = 1) -> list:
        """Run up to ``n`` steps (fewer if everything finishes)."""
        n = positive_int("n", n)
        new = self.scheduler.run(max_steps=n)
        for stats in new:
            self.metrics.record_step(**stats)
        self.history.extend(new)
        self._render()
        return new

    def report(self) -> str:
        """Step, queue, running requests, KV blocks and tokens per step so far."""
        s = self.scheduler
        kv = s.kv_cache.usage()
        summary = self.metrics.get_step_summary()
        return (f"step={s.step_count} waiting={len(s.waiting)} running={len(s.running)} "
                f"finished={len(s.finished)} kv_blocks={kv.used_blocks}/{kv.total_blocks} "
                f"tokens/step={summary['tokens_per_step']:.2f}")

    def figure(self):
        from .viz.monitor import plot_monitor
        return plot_monitor(self.history, self.scheduler.max_tokens_per_step)

    def _render(self) -> None:
        self._text.value = f"<pre>{self.report()}</pre>"
        if self.history:
            self._plot.value = png_bytes(self.figure())

    def _ipython_display_(self) -> None:
        display(self.widget)


# ---------------------------------------------------------------------- chapter 10: serving
def memory_workload() -> Workload:
    """Eight requests with long outputs: they outgrow a small pool while decoding."""
    return random_workload(8, prompt_len=(8, 30), max_new_tokens=(4, 12), seed=2)


def preemption_explorer(workload: Workload | None = None, budget: int = 16,
                        chunk: int = 8, block_size: int = 4, cost_model=None) -> Explorer:
    """Chapter 10: pool size and watermark sliders -> timeline with preemptions marked."""
    workload = workload or memory_workload()
    smallest = max(ceil_div(max(len(s.prompt) + s.max_new_tokens - 1, 1), block_size)
                   for s in workload.specs)

    def simulate(num_blocks, watermark):
        return simulate_schedule(workload, max_tokens_per_step=budget, prefill_chunk_size=chunk,
                                 block_size=block_size, num_blocks=num_blocks,
                                 watermark_blocks=min(watermark, num_blocks - 1))

    def describe(run):
        c = run.counters
        return (f"{describe_run(run, cost_model)}\npreemptions={c.preemptions} "
                f"recomputed tokens={c.recomputed_tokens}")

    pools = [smallest] + [n for n in (10, 12, 14, 16, 20, 24, 32, 64) if n > smallest]
    return Explorer(simulate, plot_timeline, describe,
                    {"num_blocks": SliderSpec("num_blocks", smallest, 64, max(16, smallest),
                                              pools),
                     "watermark": SliderSpec("watermark_blocks", 0, 8, 0, (0, 2, 4, 8))},
                    name="preemption_explorer",
                    caption="timeline of each request with preemptions marked")


def prefix_explorer(block_size: int = 4, budget: int = 16, chunk: int = 8) -> Explorer:
    """Chapter 10: shared-prefix length and request count -> pool (shared and cached blocks)
    midway through the run, with the prefix hit rate."""
    from .sweeps import shared_prefix_workload

    def simulate(prefix_len, num_requests):
        run = simulate_schedule(shared_prefix_workload(num_requests, prefix_len),
                                max_tokens_per_step=budget, prefill_chunk_size=chunk,
                                block_size=block_size, enable_prefix_caching=True,
                                record_pool=True)
        return run

    def describe(run):
        c = run.counters
        return (f"{describe_run(run)}\nprompt tokens={c.prompt_tokens} "
                f"served from cache={c.cached_prompt_tokens} "
                f"hit rate={c.prefix_hit_rate:.2f}")

    return Explorer(simulate, lambda run: plot_block_pool(run.pool[run.num_steps // 2]),
                    describe, {"prefix_len": SliderSpec("shared prefix", 0, 32, 16,
                                                        (0, 4, 8, 16, 24, 32)),
                               "num_requests": SliderSpec("requests", 1, 8, 4, (1, 2, 4, 6, 8))},
                    name="prefix_explorer",
                    caption="KV block pool midway through the run, shared and cached blocks")


# ---------------------------------------------------------------------- chapter 12: load
RATE_GRID = (8, 16, 20, 24, 28, 32)


def rate_explorer(run_at: Callable | None = None, *, rates: Sequence[int] = RATE_GRID,
                  rate: int = 24, policies: Sequence[str] | None = None,
                  **open_loop_kwargs) -> Explorer:
    """Chapter 12: an arrival-rate slider (requests/s) -> every policy's queue over time at
    that rate, and p99 TTFT against the rate with that rate ringed; the report gives each
    policy's latencies.

    ``run_at(policy, rate)`` returns a :class:`~cblab_src.load.LoadRun` (default:
    :func:`~cblab_src.load.open_loop` with ``open_loop_kwargs``, which must then hold the
    scheduler's knobs: static batching needs ``max_num_seqs``): a chapter passes its own,
    memoised, so the explorer reuses the runs of its sweep. The p99 curves are read at
    ``rates``, the static twin's grid; the live slider takes any rate from 1 to 64 (or the
    grid's largest). The queue panel leaves out static batching, which sits past its capacity
    at every rate of the default grid (its queue is in the report)."""
    from .load import POLICIES, open_loop
    from .viz.load_figures import plot_rate_explorer, policy_style

    policies = tuple(POLICIES if policies is None else policies)
    if run_at is None:
        def run_at(policy, r):
            return open_loop(policy, r, **open_loop_kwargs)
    elif open_loop_kwargs:
        raise TypeError("give run_at or open_loop's arguments, not both")
    grid = tuple(sorted({positive_int("rate", r) for r in rates}))
    curve = {p: [run_at(p, r).summary().ttft.p99 for r in grid] for p in policies}

    def simulate(rate):
        return rate, {p: run_at(p, rate) for p in policies}

    def draw(result):
        r, runs = result
        return plot_rate_explorer(r, {p: load.queue() for p, load in runs.items()
                                      if p != "static"},
                                  grid, curve,
                                  {p: load.summary().ttft.p99 for p, load in runs.items()})

    def describe(result):
        r, runs = result
        lines = [f"{r} requests/s"]
        for p, load in runs.items():
            s = load.summary()
            lines.append(f"{policy_style(p)[3]:>13}: TTFT p50 {s.ttft.p50:,.0f} ms, "
                         f"p99 {s.ttft.p99:,.0f} ms; TPOT p99 {s.tpot.p99:.1f} ms; "
                         f"most waiting {int(load.queue()[1].max(initial=0))}")
        return "\n".join(lines)

    slider = SliderSpec("arrival rate (requests/s)", 1, max(64, grid[-1]), rate, grid)
    return Explorer(simulate, draw, describe, {"rate": slider},
                    name="rate_explorer",
                    caption="requests waiting over time and p99 TTFT against the arrival rate")
