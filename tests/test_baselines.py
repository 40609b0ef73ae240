"""Baselines: prefill-first scheduling, max_num_seqs, static batching, contiguous KV reservation."""

import numpy as np
import pytest

from cblab_src import Request, Scheduler, SchedulerPlugin, TinyLLM
from cblab_src.baselines import simulate_static
from cblab_src.costmodel import CostModel, StepArrays
from cblab_src.kv_reservation import kv_footprint
from cblab_src.simulate import simulate_schedule
from cblab_src.workloads import SHAREGPT, Workload, random_workload, synthetic_workload

MODEL = TinyLLM(seed=0)


class UnitCost(CostModel):
    """Every non-empty step costs 1 ms; records the steps it was asked about."""

    name = "unit"

    def __init__(self):
        self.seen = []

    def parts(self, steps: StepArrays):
        self.seen.append(steps)
        zero = np.zeros(len(steps))
        return {"dense": np.ones(len(steps)), "attention": zero, "lm_head": zero,
                "allreduce": zero, "overhead": zero}


class PolicyChecker(SchedulerPlugin):
    """Checks prefill-first steps: never both kinds, decodes only when no chunk could run."""

    def before_step(self, sched):
        self.decoding = [r.req_id for r in sched.running if r.state.name == "DECODE"]
        self.could_prefill = any(r.state.name == "PREFILL" for r in sched.running)

    def after_step(self, sched, stats):
        assert not (stats.decode_ids and stats.prefill_chunks), stats
        if self.could_prefill:
            assert stats.prefill_chunks or stats.preemptions, "prefill work left waiting"
        if stats.decode_ids:                      # all of them, oldest first, but the preempted
            kept = [rid for rid in self.decoding if rid not in stats.preempted_ids]
            assert list(stats.decode_ids) == kept[:sched.max_tokens_per_step]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("budget, chunk, num_blocks", [(8, 4, None), (3, 2, None), (16, 16, 12)])
def test_prefill_first_never_mixes_and_keeps_tokens_exact(seed, budget, chunk, num_blocks):
    w = random_workload(5, prompt_len=(1, 14), max_new_tokens=(0, 5), arrival_every=seed % 3,
                        seed=seed)
    sched = Scheduler(MODEL, max_tokens_per_step=budget, prefill_chunk_size=chunk,
                      block_size=4, num_blocks=num_blocks, policy="prefill_first")
    sched.plugins.register_scheduler_plugin(PolicyChecker())
    requests = w.requests()
    for r in requests:
        sched.add_request(r)
    sched.run()
    for r in requests:
        assert r.generated == MODEL.generate(list(r.prompt), r.max_new_tokens)


def test_prefill_first_is_nano_vllm_order():
    # Two prompts arrive while A decodes: prefill-first runs their prefill before A's next token.
    sched = Scheduler(None, max_tokens_per_step=16, prefill_chunk_size=16, policy="prefill_first")
    sched.add_request(Request("A", [1, 2, 3], 4))
    sched.add_request(Request("B", [1] * 5, 2, arrival_step=2))
    sched.add_request(Request("C", [1] * 6, 2, arrival_step=2))
    kinds = ["P" if s.prefill_chunks else "D" for s in sched.run()]
    assert kinds[:4] == ["P", "D", "P", "D"]
    decode_first = simulate_schedule(Workload.from_lengths([3, 5, 6], [4, 2, 2], [0, 2, 2]),
                                     max_tokens_per_step=16, prefill_chunk_size=16)
    assert decode_first.history[2].decode_ids and decode_first.history[2].prefill_chunks


def test_max_num_seqs_caps_running_requests():
    w = synthetic_workload(40, SHAREGPT, seed=1)
    run = simulate_schedule(w, max_tokens_per_step=512, prefill_chunk_size=512, max_num_seqs=3)
    assert max(s.num_running for s in run.history) == 3
    free = simulate_schedule(w, max_tokens_per_step=512, prefill_chunk_size=512)
    assert max(s.num_running for s in free.history) > 3


def test_bad_policy_and_max_num_seqs():
    with pytest.raises(ValueError, match="policy"):
        Scheduler(None, max_tokens_per_step=4, prefill_chunk_size=4, policy="shortest_first")
    with pytest.raises(ValueError, match="max_num_seqs"):
        Scheduler(None, max_tokens_per_step=4, prefill_chunk_size=4, max_num_seqs=0)


# ---------------------------------------------------------------- static batching
def test_static_batching_hand_computed():
    # prompts 2, 4, 3; outputs 1, 3, 2; batches of 2; every step 1 ms.
    w = Workload.from_lengths([2, 4, 3], [1, 3, 2])
    cost = UnitCost()
    run = simulate_static(w, cost, batch_size=2)
    a, b, c = run.times
    # batch 1 (A, B): prefill 2 x 4 tokens (ends 1 ms), decodes end at 2 and 3 ms
    assert a.unit == b.unit == c.unit == "ms"
    assert a.token_times == (1.0,) and a.finish == 3.0          # replies when the batch ends
    assert b.token_times == (1.0, 2.0, 3.0) and b.finish == 3.0
    # batch 2 (C): prefill 3 tokens ends at 4, one decode at 5
    assert c.token_times == (4.0, 5.0) and c.ttft == 4.0 and c.e2e == 5.0
    assert run.num_steps == 5 and run.num_batches == 2
    assert run.padded_tokens == 2 * 4 + 2 + 2 + 3 + 1
    assert run.useful_tokens == (2 + 4 + 3) + (0 + 2 + 1)
    assert run.peak_kv_tokens == 2 * (4 + 3 - 1)
    first = cost.seen[0]                                        # batch 1's steps
    assert first.num_tokens.tolist() == [8, 2, 2]
    assert first.decode_kv_tokens.tolist() == [0, 2 * 5, 2 * 6]  # padded contexts 5, 6
    assert first.prefill_pairs[0] == 2 * 4 * 5 / 2
    s = run.summary()
    assert s.makespan == 5.0 and s.output_tokens == 6
    assert s.throughput_tok_s == pytest.approx(6 / 5 * 1000)


def test_static_batches_form_from_what_has_arrived():
    w = Workload.from_lengths([2, 2, 2], [2, 2, 2], arrival_ms=[0.0, 0.5, 10.0])
    run = simulate_static(w, UnitCost(), batch_size=4)
    # A alone (B arrives mid-batch), then B, then C after an idle gap.
    assert [t.token_times for t in run.times] == [(1.0, 2.0), (3.0, 4.0), (11.0, 12.0)]
    with pytest.raises(ValueError, match="batch_size"):
        simulate_static(w, UnitCost(), batch_size=0)


def test_continuous_beats_static_when_outputs_vary():
    from cblab_src.timing import simulate_timed
    w = Workload.from_lengths([16] * 8, [1, 1, 1, 40, 1, 1, 1, 40])
    static = simulate_static(w, UnitCost(), batch_size=4).summary()
    cont = simulate_timed(w, UnitCost(), max_tokens_per_step=64, prefill_chunk_size=64,
                          max_num_seqs=4).summary()
    assert cont.makespan < static.makespan


# ---------------------------------------------------------------- KV reservation
def test_kv_footprint_hand_computed():
    # prompt 10, output 4: holds 10, 11, 12, 13 tokens over its 4 steps (46 token-steps)
    paged = kv_footprint([10], [4], "paged", block_size=4)
    assert paged.token_states == pytest.approx(46 / 52)          # 12, 12, 12, 16 slots
    oracle = kv_footprint([10], [4], "oracle")                   # 14 slots x 4 steps
    assert oracle.token_states == pytest.approx(46 / 56)
    assert oracle.reservation == pytest.approx((4 * 13 - 46) / 56)
    pow2 = kv_footprint([10], [5], "pow2")                       # 10 + 8 slots
    assert pow2.mean_reserved_tokens == 18
    full = kv_footprint([10], [4], "max", max_seq_len=32)
    assert full.internal_frag == pytest.approx((32 - 13) / 32)
    for f in (paged, oracle, pow2, full):
        assert f.token_states + f.reservation + f.internal_frag == pytest.approx(1.0)


def test_paged_footprint_matches_the_engine():
    # Decodes in lockstep (one prefill step, then one token per step): the engine's own
    # wasted slots, summed over steps, are the analytic internal fragmentation.
    w = synthetic_workload(30, SHAREGPT, seed=2)
    run = simulate_schedule(w, max_tokens_per_step=10**6, prefill_chunk_size=10**6, block_size=16)
    held = sum(s.kv.tokens for s in run.history)
    slots = sum(s.kv.tokens + s.kv.wasted_slots for s in run.history)
    f = kv_footprint(w.prompt_lens, w.output_lens, "paged", block_size=16)
    assert held / slots == pytest.approx(f.token_states, abs=0.01)


def test_kv_footprint_bad_input():
    with pytest.raises(ValueError, match="scheme"):
        kv_footprint([1], [1], "buddy")
    with pytest.raises(ValueError, match="equal length"):
        kv_footprint([1, 2], [1], "oracle")
    with pytest.raises(ValueError, match="max_seq_len"):
        kv_footprint([2000], [100], "max", max_seq_len=2048)
