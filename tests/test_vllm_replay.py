"""The ``vllm_v1`` policy against schedules recorded from vLLM's real scheduler.

tests/data/vllm_traces/ holds per-step schedules recorded from vLLM 0.33.0's v1 scheduler
(``vllm.v1.core.sched.scheduler.Scheduler``), driven on a CPU with a fake model runner (see
its README and tools/record_vllm_traces.py). Each workload is replayed through
``Scheduler(None, policy="vllm_v1", ...)`` with the knobs mapped as vLLM names them:

    max_tokens_per_step   = max_num_batched_tokens
    prefill_chunk_size    = long_prefill_token_threshold (the budget when it is 0: no cap)
    block_size, num_blocks (usable blocks), max_num_seqs, enable_prefix_caching

and must give exactly the recorded steps: the same requests with the same token counts in
the same batch order, the same preempted, sampled and finished sets, the same number of steps.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cblab_src import CharTokenizer, Request, Scheduler, SchedulerConfig, TinyLLM

from conftest import make_prefix_workload, make_workload, run_workload
from test_invariants import check_run, tight_pool

TRACES = Path(__file__).parent / "data" / "vllm_traces"


def load_workloads(name: str) -> list[dict]:
    path = TRACES / name
    return json.loads(path.read_text())["workloads"] if path.exists() else []


PUBLIC = load_workloads("vllm-0.33.0-public.json")
EXTRA = load_workloads("vllm-0.33.0-extra.json")


def config_of(knobs: dict) -> SchedulerConfig:
    """vLLM's knobs as this engine names them."""
    budget, threshold = knobs["max_tokens_per_step"], knobs["long_prefill_token_threshold"]
    return SchedulerConfig(max_tokens_per_step=budget, prefill_chunk_size=threshold or budget,
                           block_size=knobs["block_size"], num_blocks=knobs["num_blocks"],
                           max_num_seqs=knobs["max_num_seqs"],
                           enable_prefix_caching=knobs["enable_prefix_caching"],
                           policy="vllm_v1")


def replay(workload: dict) -> list[dict]:
    """Run a recorded workload through the ``vllm_v1`` policy; steps in the trace's format."""
    sched = Scheduler(None, config_of(workload["knobs"]))
    for spec in workload["requests"]:
        sched.add_request(Request(spec["id"], spec["prompt"], spec["max_new_tokens"],
                                  spec["arrival_step"]))
    return [{"step": s.step_id, "scheduled": [list(item) for item in s.scheduled],
             "preempted": sorted(s.preempted_ids), "sampled": sorted(rid for rid, _ in s.sampled),
             "finished": sorted(s.finished_ids)} for s in sched.run()]


def normalised(steps: list[dict]) -> list[dict]:
    """Recorded steps with the sets sorted (their order in the trace carries no meaning)."""
    return [{**s, "preempted": sorted(s["preempted"]), "sampled": sorted(s["sampled"]),
             "finished": sorted(s["finished"])} for s in steps]


def first_difference(ours: list[dict], theirs: list[dict]) -> str:
    for a, b in zip(ours, theirs):
        if a != b:
            return f"step {b['step']}: vLLM {b}, ours {a}"
    return f"{len(theirs)} recorded steps, {len(ours)} replayed"


@pytest.mark.parametrize("workload", PUBLIC, ids=[w["name"] for w in PUBLIC])
def test_every_public_recorded_step_is_reproduced(workload):
    ours, theirs = replay(workload), normalised(workload["steps"])
    assert ours == theirs, first_difference(ours, theirs)


# Extra workloads recorded the same way (tools/record_vllm_traces.py --random 200 --seed 2). 111
# use prefix caching; 12 of those (random-2-9, -15, -18, -55, -81, -83, -101, -102, -113, -116,
# -129, -195) need the pool to keep duplicate cached blocks as vLLM does (keep_duplicate_blocks).
@pytest.mark.skipif(not EXTRA, reason="no extra recorded workloads")
@pytest.mark.parametrize("workload", EXTRA, ids=[w["name"] for w in EXTRA])
def test_every_extra_recorded_step_is_reproduced(workload):
    ours, theirs = replay(workload), normalised(workload["steps"])
    assert ours == theirs, first_difference(ours, theirs)


@pytest.mark.skipif(not EXTRA, reason="no extra recorded workloads")
def test_the_extra_traces_are_all_there():
    assert len(EXTRA) == 200 and sum(len(w["steps"]) for w in EXTRA) == 7351
    assert sum(w["knobs"]["enable_prefix_caching"] for w in EXTRA) == 111


def test_without_vllm_duplicate_blocks_some_extra_workloads_differ(monkeypatch):
    """What keep_duplicate_blocks is for: with one block per cached prefix (our default pool)
    the copies are freed instead of cached, and these workloads keep different blocks."""
    from cblab_src.core.policies.vllm_v1 import VllmV1
    monkeypatch.setattr(VllmV1, "keep_duplicate_blocks", False)
    workload = next((w for w in EXTRA if w["name"] == "random-2-9"), None)
    if workload is None:
        pytest.skip("no extra recorded workloads")
    assert replay(workload) != normalised(workload["steps"])


def test_the_public_traces_cover_what_vllm_does_differently():
    """The recorded file really exercises the differences from decode-first (so a replay that
    passes means something): preemption, the requester preempting itself, interleaved order,
    prefix hits, a max_num_seqs cap and the chunk cap."""
    steps = [(w, s) for w in PUBLIC for s in w["steps"]]
    assert sum(bool(s["preempted"]) for _, s in steps) >= 10
    assert any(w["name"] == "preempt_self" for w in PUBLIC)
    assert any(w["knobs"]["enable_prefix_caching"] for w in PUBLIC)
    assert any(w["knobs"]["long_prefill_token_threshold"] for w in PUBLIC)
    assert len(PUBLIC) == 37 and len(steps) == 980


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("knobs", [dict(max_tokens_per_step=8, prefill_chunk_size=4, block_size=4),
                                   dict(max_tokens_per_step=5, prefill_chunk_size=3, block_size=2,
                                        num_blocks="tight", enable_prefix_caching=True),
                                   dict(max_tokens_per_step=16, prefill_chunk_size=16,
                                        block_size=1, num_blocks="tight", max_num_seqs=2)],
                         ids=["roomy", "tight-prefix", "tight-seqs2"])
def test_vllm_v1_keeps_batch_invariance(seed, knobs):
    """Scheduled like vLLM, every request still gets exactly the tokens of generating it alone."""
    specs = make_workload(seed) if seed < 8 else make_prefix_workload(seed)
    if knobs.get("num_blocks") == "tight":
        knobs = {**knobs, "num_blocks": tight_pool(specs, knobs["block_size"])}
    sched, history = run_workload(specs, policy="vllm_v1", **knobs)
    check_run(specs, sched, history)


def test_vllm_v1_keeps_batch_invariance_with_the_pretrained_model():
    model = TinyLLM.pretrained()
    tok = CharTokenizer()
    texts = ["Student: What is a token budget?\nTeacher:", "The scheduler", "A prefill chunk",
             "Continuous batching keeps the GPU busy"]
    sched = Scheduler(model, max_tokens_per_step=12, prefill_chunk_size=5, block_size=4,
                      num_blocks=16, policy="vllm_v1")
    requests = [sched.add_request(Request(i, tok.encode(t), 12)) for i, t in enumerate(texts)]
    history = sched.run()
    assert sum(bool(s.preemptions) for s in history) > 0          # the tight pool preempts
    for r in requests:
        assert r.generated == model.generate(r.prompt, r.max_new_tokens), tok.decode(r.prompt)
