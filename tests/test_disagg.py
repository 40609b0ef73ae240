"""Several GPUs: colocated replicas and prefill/decode disaggregation (cblab_src.disagg)."""

from __future__ import annotations

import numpy as np
import pytest

from cblab_src.costmodel import LLAMA3_8B
from cblab_src.disagg import NVLINK, Link, simulate_cluster
from cblab_src.slo import goodput
from cblab_src.timing import simulate_timed
from cblab_src.workloads import SHAREGPT, Workload, synthetic_workload

from conftest import PerToken

KNOBS = dict(max_tokens_per_step=64, prefill_chunk_size=32, block_size=16)


def test_one_request_by_hand():
    """Prompt of 4, 3 tokens, 1 ms + 0.5 ms per token a step, a link that moves its 4 x 128 KiB
    in 1 ms: the prefill GPU samples t1 at 3 ms; the K/V land at 4 ms; the decode GPU computes
    t1's K/V and samples t2 at 5.5 ms, then t3 at 7 ms."""
    kv = 4 * LLAMA3_8B.kv_bytes_per_token
    link = Link("1 ms for this prompt", kv / 1e6, 0.0)            # GB/s
    assert link.transfer_ms(kv) == pytest.approx(1.0)
    work = Workload.from_lengths([4], 3, arrival_ms=[0.0])
    run = simulate_cluster(work, PerToken(), num_gpus=2, num_prefill=1, link=link, **KNOBS)
    (t,) = run.times
    assert t.token_times == pytest.approx((3.0, 5.5, 7.0)) and t.ttft == pytest.approx(3.0)
    assert run.transferred_bytes == kv and run.transfer_ms_total == pytest.approx(1.0)


def test_one_colocated_gpu_is_the_single_scheduler_run():
    work = synthetic_workload(60, SHAREGPT, arrival_rate=20.0, seed=3)
    alone = simulate_timed(work, PerToken(), **KNOBS).request_times()
    cluster = simulate_cluster(work, PerToken(), num_gpus=1, **KNOBS).times
    assert cluster == sorted(alone, key=lambda t: [s.req_id for s in work.specs].index(t.req_id))


@pytest.mark.parametrize("num_gpus, num_prefill", [(2, 0), (2, 1), (4, 0), (4, 1), (4, 2), (4, 3)])
def test_every_request_gets_all_its_tokens_in_order(num_gpus, num_prefill):
    work = synthetic_workload(80, SHAREGPT, arrival_rate=40.0, seed=1)
    run = simulate_cluster(work, PerToken(), num_gpus=num_gpus, num_prefill=num_prefill,
                           **KNOBS)
    assert [t.req_id for t in run.times] == [s.req_id for s in work.specs]
    for t, spec in zip(run.times, work.specs):
        assert t.num_generated == spec.max_new_tokens
        assert all(np.diff((t.arrival,) + t.token_times) > 0)
    handed = sum(len(s.prompt) for s in work.specs if s.max_new_tokens > 1)
    assert run.transferred_bytes == (handed * LLAMA3_8B.kv_bytes_per_token if num_prefill else 0)


def test_a_slower_link_delays_the_second_token_not_the_first():
    """The first token comes from the prefill GPU, before the transfer: a slower link leaves
    every TTFT as it was and lengthens the wait for the second token."""
    work = synthetic_workload(40, SHAREGPT, arrival_rate=10.0, seed=2)
    fast, slow = (simulate_cluster(work, PerToken(), num_gpus=2, num_prefill=1, link=link,
                                   **KNOBS).times for link in (NVLINK, Link("slow", 0.5, 1e3)))
    assert [a.ttft for a in fast] == pytest.approx([b.ttft for b in slow])
    gaps = [(b.token_times[1] - b.token_times[0]) - (a.token_times[1] - a.token_times[0])
            for a, b in zip(fast, slow) if a.num_generated > 1]
    # (batches on the decode GPU form differently, so not every request's gap grows)
    assert np.median(gaps) > 0 and np.mean(gaps) > 0


def test_goodput_per_gpu_can_be_compared_at_equal_gpu_count():
    work = synthetic_workload(120, SHAREGPT, arrival_rate=30.0, seed=4)
    for split in (0, 1):
        run = simulate_cluster(work, PerToken(), num_gpus=2, num_prefill=split, **KNOBS)
        per_gpu = goodput(run, ttft_slo_ms=1e9, tpot_slo_ms=1e9) / run.num_gpus
        assert per_gpu > 0


def test_bad_splits_are_refused():
    work = Workload.from_lengths([4], 2, arrival_ms=[0.0])
    with pytest.raises(ValueError, match="num_prefill"):
        simulate_cluster(work, PerToken(), num_gpus=2, num_prefill=2, **KNOBS)
    with pytest.raises(TypeError, match="link"):
        simulate_cluster(work, PerToken(), num_gpus=2, num_prefill=1, link=450, **KNOBS)
