"""Shared fixtures and helpers: one small model, seeded random workloads, recording plugins.

A *workload* is a list of request specs ``(req_id, prompt, max_new_tokens, arrival_step)``;
:func:`make_requests` turns it into fresh :class:`Request` objects for each scheduler run, and
:func:`reference_tokens` gives what ``model.generate`` says each request must produce.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from cblab_src import Request, Scheduler, SchedulerPlugin, TinyLLM, masked_attention

# One model for the whole run: TinyLLM(seed=0) is d_model 64, 2 layers, 4 heads, vocab 128.
MODEL = TinyLLM(seed=0)

_REFERENCE: dict[tuple[tuple[int, ...], int], list[int]] = {}


def reference_tokens(prompt: Sequence[int], max_new_tokens: int, model: TinyLLM = MODEL) -> list[int]:
    """``model.generate(prompt, max_new_tokens)``, computed once per (prompt, n) for MODEL."""
    if model is not MODEL:
        return model.generate(prompt, max_new_tokens)
    key = (tuple(prompt), max_new_tokens)
    if key not in _REFERENCE:
        _REFERENCE[key] = model.generate(list(prompt), max_new_tokens)
    return list(_REFERENCE[key])


def make_workload(seed: int, *, num_requests=(3, 6), prompt_len=(1, 20), max_new=(0, 6),
                  max_arrival: int = 6, vocab_size: int = MODEL.vocab_size) -> list[tuple]:
    """A seeded random workload: ``[(req_id, prompt, max_new_tokens, arrival_step), ...]``.

    Ranges are inclusive. About half the requests arrive at step 0, the rest later.
    """
    rng = np.random.default_rng(seed)
    n = int(rng.integers(num_requests[0], num_requests[1] + 1))
    specs = []
    for i in range(n):
        length = int(rng.integers(prompt_len[0], prompt_len[1] + 1))
        prompt = tuple(int(t) for t in rng.integers(0, vocab_size, length))
        n_new = int(rng.integers(max_new[0], max_new[1] + 1))
        arrival = 0 if rng.random() < 0.5 else int(rng.integers(1, max_arrival + 1))
        specs.append((i, prompt, n_new, arrival))
    return specs


def make_requests(specs) -> list[Request]:
    """Fresh :class:`Request` objects for a workload (a request can run only once)."""
    return [Request(rid, list(prompt), n, arrival_step=arrival) for rid, prompt, n, arrival in specs]


def run_workload(specs, model=MODEL, *, plugins=(), **scheduler_kwargs):
    """Add every request of ``specs`` to a new scheduler, run it to the end.

    Returns ``(scheduler, history)`` where ``history`` is the list of :class:`StepStats`.
    """
    sched = Scheduler(model, **scheduler_kwargs)
    for plugin in plugins:
        sched.plugins.register_scheduler_plugin(plugin)
    for req in make_requests(specs):
        sched.add_request(req)
    history = sched.run(max_steps=10_000)
    return sched, history


class RecordingLLM(TinyLLM):
    """TinyLLM that remembers, for every ``forward_step``, the logits it returned and the
    length of each request's KV cache right after the forward pass (before any free)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.step_logits: list[dict] = []      # per forward pass: {req_id: (vocab,) logits}
        self.kv_lens: list[dict] = []          # per forward pass: {req_id: tokens cached}

    def forward_step(self, batch, cache, attend=masked_attention):
        logits = super().forward_step(batch, cache, attend)
        samplers = [s.req_id for s in batch.segments if s.samples]
        self.step_logits.append(dict(zip(samplers, logits)))
        self.kv_lens.append({s.req_id: cache.seq_len(s.req_id) for s in batch.segments})
        return logits


class EventRecorder(SchedulerPlugin):
    """Records every hook call as a tuple, in the order the scheduler makes them."""

    def __init__(self):
        self.events: list[tuple] = []

    def on_request_added(self, scheduler, request):
        self.events.append(("added", request.req_id))

    def before_step(self, scheduler):
        self.events.append(("before_step", scheduler.step_count))

    def on_request_finished(self, scheduler, request):
        self.events.append(("finished", request.req_id))

    def after_step(self, scheduler, stats):
        self.events.append(("after_step", stats.step_id))


@pytest.fixture(scope="session")
def model() -> TinyLLM:
    return MODEL


# ------------------------------------------------------------------ the browser suite's switch
def pytest_addoption(parser):
    parser.addoption("--browser", action="store_true",
                     help="also collect tests/browser: the built book in headless Chromium "
                          "(`make test` runs it after building the book)")


def pytest_ignore_collect(collection_path, config):
    """Keep tests/browser out of a plain `pytest` run: it needs the built book and Chromium."""
    if collection_path == Path(__file__).parent / "browser" and not config.getoption("--browser"):
        return True
    return None
