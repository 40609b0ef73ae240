"""Per-step frames (cblab_src.viz.steps): the token table they draw is the scheduler's own."""

import numpy as np
import pytest

from cblab_src import TinyLLM, masked_attention
from cblab_src.core.batch_builder import ragged_mask
from cblab_src.simulate import simulate_schedule
from cblab_src.viz.steps import (plot_budget_upto, plot_step_batch, plot_timeline_upto,
                                 step_key_table, step_token_table)
from cblab_src.widgets import default_workload
from cblab_src.workloads import RequestSpec, Workload


class BatchRecordingLLM(TinyLLM):
    """TinyLLM that remembers each step's ragged batch (req_ids, positions)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.tables = []

    def forward_step(self, batch, cache, attend=masked_attention):
        self.tables.append((list(batch.req_ids), batch.positions.copy()))
        return super().forward_step(batch, cache, attend)


def check_tables(workload, **knobs):
    model = BatchRecordingLLM(d_model=16, n_layers=1, n_heads=2)
    run = simulate_schedule(workload, model=model, **knobs)
    assert len(model.tables) == run.num_steps
    for step, (req_ids, positions) in enumerate(model.tables):
        got_ids, got_pos = step_token_table(run, step)
        assert got_ids == req_ids and np.array_equal(got_pos, positions), step
    return run


@pytest.mark.parametrize("budget, chunk", [(6, 4), (8, 4), (3, 2), (16, 16)])
def test_step_token_table_is_the_batch_the_scheduler_built(budget, chunk):
    workload = Workload.from_lengths([6, 4, 5, 1], [3, 3, 2, 4], [0, 1, 2, 2], seed=0)
    check_tables(workload, max_tokens_per_step=budget, prefill_chunk_size=chunk)


@pytest.mark.parametrize("num_blocks", [4, 5, 6])
def test_step_token_table_through_preemption_and_recompute(num_blocks):
    workload = Workload.from_lengths([6, 5, 7, 4], [6, 6, 5, 6], [0, 0, 1, 2], seed=0)
    run = check_tables(workload, max_tokens_per_step=8, prefill_chunk_size=4, block_size=4,
                       num_blocks=num_blocks)
    assert any(s.preempted_ids for s in run.history)          # the case under test happened


def test_step_token_table_with_prefix_caching():
    shared = tuple(range(1, 10))                                   # 9 tokens: 2 full blocks
    specs = tuple(RequestSpec(i, shared + (20 + i, 30 + i), 3, 2 * i) for i in range(3))
    run = check_tables(Workload(specs), max_tokens_per_step=8, prefill_chunk_size=4,
                       block_size=4, enable_prefix_caching=True)
    assert sum(s.cached_tokens for s in run.history) > 0          # later requests hit the cache


def test_step_keys_cover_each_request_context_once():
    k_ids, k_pos = step_key_table(["a", "b", "b", "a"], np.array([7, 0, 1, 8]))
    assert k_ids == ["a"] * 9 + ["b"] * 2
    assert k_pos.tolist() == list(range(9)) + [0, 1]
    # a decode token sees its whole context, nothing of the other request
    mask = ragged_mask(["a"], [8], k_ids, k_pos)
    assert mask.sum() == 9 and not mask[0, 9:].any()


def test_step_frames_keep_one_size():
    run = simulate_schedule(default_workload(), max_tokens_per_step=8, prefill_chunk_size=4)
    for draw in (plot_step_batch, plot_budget_upto, plot_timeline_upto):
        sizes = {tuple(draw(run, k).get_size_inches()) for k in range(run.num_steps)}
        assert len(sizes) == 1, (draw.__name__, sizes)


def test_idle_step_draws_a_note():
    run = simulate_schedule(Workload.from_lengths([3], [2], [2]), max_tokens_per_step=4,
                            prefill_chunk_size=4)
    assert run.history[0].num_tokens == 0
    fig = plot_step_batch(run, 0)
    assert "idle step" in fig.axes[0].texts[0].get_text()
