"""Record per-step schedules from vLLM's REAL v1 scheduler (dev-only).

This tool is for course maintainers only. It is never imported by ``cblab_src``
and never run in CI: it needs a separate ~9.5 GB vLLM install. It produces the
reference files that the ``vllm_v1`` scheduling policy is checked against
(``vllm-0.33.0-public.json`` and ``tests/data/vllm_traces/vllm-0.33.0-extra.json``).
Replaying the public file's 37 workloads with ``--workloads`` writes it back byte
for byte. vLLM 0.34 gave identical traces for both files (tried with
``pip install --no-deps --target DIR vllm==0.34.0`` on ``PYTHONPATH`` over the
0.33.0 venv, since 0.34.0 pins a flashinfer wheel the index lacked; 0.34 drops
``ModelRunnerOutput.req_id_to_index``, which ``fake_runner_output`` handles).

Recipe (checked on a CPU-only Linux box, no GPU used)::

    python3 -m venv /tmp/vllm-venv
    /tmp/vllm-venv/bin/pip install vllm==0.33.0 xxhash     # CUDA wheel, 2-3 min
    HF_HUB_OFFLINE=1 /tmp/vllm-venv/bin/python tools/record_vllm_traces.py \\
        --workloads path/to/vllm-0.33.0-public.json --out /tmp/replay.json
    HF_HUB_OFFLINE=1 /tmp/vllm-venv/bin/python tools/record_vllm_traces.py \\
        --random 200 --seed 2 --out tests/data/vllm_traces/vllm-0.33.0-extra.json

How vLLM is driven:

* The model is a directory that holds only the ``config.json`` of a tiny
  LLaMA; ``ModelConfig(..., skip_tokenizer_init=True)`` so nothing is
  downloaded and no weights exist. ``DeviceConfig(device="cpu")`` is needed,
  otherwise vLLM fails with "Failed to infer device type".
* ``SchedulerConfig(max_num_batched_tokens=<max_tokens_per_step>,
  max_num_seqs=..., long_prefill_token_threshold=..., enable_chunked_prefill=True,
  is_encoder_decoder=False)``; every other scheduler setting keeps its default
  (FCFS, ``scheduler_reserve_full_isl=True``, no watermark, synchronous).
* ``KVCacheConfig`` with one ``FullAttentionSpec`` group and
  ``num_blocks = knobs["num_blocks"] + 1``: the knob counts USABLE blocks, and
  vLLM's block pool reserves block 0 as its null block.
* ``Scheduler(vllm_config, kv_cache_config, StructuredOutputManager(vc),
  block_size, log_stats=False)``. Requests are ``vllm.v1.request.Request``
  objects with ``SamplingParams(max_tokens=N, ignore_eos=True)`` and vLLM's
  own sha256 block hasher (as ``EngineCore`` sets it up).
* Each step: add the requests whose ``arrival_step`` is this step, call
  ``schedule()``, then feed ``update_from_output()`` a fake
  ``ModelRunnerOutput``: a request gets one sampled token exactly when the
  step reached the end of its known tokens (``request.is_prefill_chunk`` is
  False after scheduling); a prefill chunk gets an empty token list.
  The fake runner samples token id ``SAMPLED_TOKEN_ID`` = 0 for every request,
  like cblab's ``NullModel``. The value itself does not matter (EOS is ignored,
  and no recorded prompt contains 0 or 7: both give identical files), but it
  must be the SAME for every request: a resumed (preempted) request's output
  tokens are part of its prefix-cache block hashes, and four extra workloads
  (random-2-20, -45, -99, -102) change if requests with identical prompts
  sample different tokens.
* Steps are recorded until no request is unfinished and none is still to
  arrive. A step in which nothing had arrived (or everything that arrived had
  finished) is recorded with empty lists.

Recorded per step: ``scheduled`` = ``[req_id, tokens]`` in vLLM's batch order
(the insertion order of ``SchedulerOutput.num_scheduled_tokens``: the running
requests in running-queue order, then the admitted waiting/resumed requests in
admission order), ``sampled`` (requests that got a token, batch order), and
``preempted`` and ``finished``, which vLLM keeps as sets
(``SchedulerOutput.preempted_req_ids``, finished outputs) and which are
therefore recorded sorted by request id.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import sys
import tempfile
from pathlib import Path

SAMPLED_TOKEN_ID = 0
MAX_MODEL_LEN = 4096

SOURCE = (
    "vLLM 0.33.0 v1 Scheduler (vllm.v1.core.sched.scheduler.Scheduler), driven on "
    "CPU with a fake model runner that samples one token whenever a step reaches "
    "the end of a request's known tokens; requests use ignore_eos"
)
SEMANTICS = (
    "steps numbered from 0; scheduled = [req_id, tokens] in vLLM's batch order; "
    "num_blocks = usable KV blocks (vLLM's null block not counted)"
)

TINY_LLAMA_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "num_hidden_layers": 2,
    "vocab_size": 32000,
    "max_position_embeddings": MAX_MODEL_LEN,
    "rms_norm_eps": 1e-6,
    "torch_dtype": "float32",
    "bos_token_id": 1,
    "eos_token_id": 2,
}


# --------------------------------------------------------------------------
# Building vLLM objects
# --------------------------------------------------------------------------


def tiny_model_dir() -> str:
    """Write a directory holding only a tiny LLaMA ``config.json``; return it."""
    path = Path(tempfile.mkdtemp(prefix="cblab-tiny-llama-"))
    (path / "config.json").write_text(json.dumps(TINY_LLAMA_CONFIG))
    return str(path)


def build_vllm_config(knobs: dict, model_dir: str):
    """Return a ``VllmConfig`` for one workload's knobs (CPU, no tokenizer)."""
    from vllm.config import (
        CacheConfig,
        DeviceConfig,
        ModelConfig,
        SchedulerConfig,
        VllmConfig,
    )

    model_config = ModelConfig(
        model=model_dir,
        skip_tokenizer_init=True,
        max_model_len=MAX_MODEL_LEN,
        dtype="float32",
        seed=0,
    )
    scheduler_config = SchedulerConfig(
        max_num_batched_tokens=knobs["max_tokens_per_step"],
        max_num_seqs=knobs["max_num_seqs"],
        long_prefill_token_threshold=knobs["long_prefill_token_threshold"],
        enable_chunked_prefill=True,
        max_model_len=MAX_MODEL_LEN,
        is_encoder_decoder=False,
    )
    cache_config = CacheConfig(
        block_size=knobs["block_size"],
        enable_prefix_caching=knobs["enable_prefix_caching"],
    )
    cache_config.num_gpu_blocks = knobs["num_blocks"] + 1
    return VllmConfig(
        model_config=model_config,
        scheduler_config=scheduler_config,
        cache_config=cache_config,
        device_config=DeviceConfig(device="cpu"),
    )


def build_kv_cache_config(knobs: dict):
    """One full-attention group; the pool gets one extra (null) block."""
    import torch
    from vllm.v1.kv_cache_interface import (
        FullAttentionSpec,
        KVCacheConfig,
        KVCacheGroupSpec,
    )

    spec = FullAttentionSpec(
        block_size=knobs["block_size"],
        num_kv_heads=1,
        head_size=16,
        dtype=torch.float32,
    )
    return KVCacheConfig(
        num_blocks=knobs["num_blocks"] + 1,
        kv_cache_tensors=[],
        kv_cache_groups=[KVCacheGroupSpec(layer_names=["layer.0"], kv_cache_spec=spec)],
    )


def build_scheduler(knobs: dict, model_dir: str):
    """Return a real ``vllm.v1.core.sched.scheduler.Scheduler`` for ``knobs``."""
    from vllm.v1.core.sched.scheduler import Scheduler
    from vllm.v1.structured_output import StructuredOutputManager

    vllm_config = build_vllm_config(knobs, model_dir)
    return Scheduler(
        vllm_config=vllm_config,
        kv_cache_config=build_kv_cache_config(knobs),
        structured_output_manager=StructuredOutputManager(vllm_config),
        block_size=knobs["block_size"],
        log_stats=False,
    )


def make_block_hasher(block_size: int):
    """vLLM's own request block hasher (sha256), set up like ``EngineCore``."""
    from vllm.utils.hashing import get_hash_fn_by_name
    from vllm.v1.core.kv_cache_utils import get_request_block_hasher, init_none_hash

    hash_fn = get_hash_fn_by_name("sha256")
    init_none_hash(hash_fn)
    return get_request_block_hasher(block_size, hash_fn)


def make_request(spec: dict, order: int, block_hasher):
    """Turn one workload request (``id``, ``prompt``, ...) into a vLLM Request."""
    from vllm.sampling_params import SamplingParams
    from vllm.v1.request import Request

    params = SamplingParams(max_tokens=spec["max_new_tokens"], ignore_eos=True)
    return Request(
        request_id=spec["id"],
        prompt_token_ids=list(spec["prompt"]),
        sampling_params=params,
        pooling_params=None,
        arrival_time=float(order),
        block_hasher=block_hasher,
    )


# --------------------------------------------------------------------------
# Driving the scheduler
# --------------------------------------------------------------------------


def fake_runner_output(scheduler, sched_out):
    """A ModelRunnerOutput that samples one token per request that finished
    its known tokens this step, and nothing for prefill chunks."""
    from vllm.v1.outputs import ModelRunnerOutput

    req_ids = list(sched_out.num_scheduled_tokens)
    sampled = [
        [] if scheduler.requests[rid].is_prefill_chunk else [SAMPLED_TOKEN_ID]
        for rid in req_ids
    ]
    kwargs = {"req_ids": req_ids, "sampled_token_ids": sampled}
    if "req_id_to_index" in {f.name for f in dataclasses.fields(ModelRunnerOutput)}:
        # 0.33.0 needs the index map; 0.34 derives it from ``req_ids``.
        kwargs["req_id_to_index"] = {rid: i for i, rid in enumerate(req_ids)}
    return ModelRunnerOutput(**kwargs)


def record_step(scheduler, step: int) -> dict:
    """Schedule one step, run the fake model, and return the step record."""
    sched_out = scheduler.schedule()
    scheduled = [[rid, n] for rid, n in sched_out.num_scheduled_tokens.items()]
    sampled, finished = [], []
    if scheduled:
        engine_outputs = scheduler.update_from_output(
            sched_out, fake_runner_output(scheduler, sched_out)
        )
        for outputs in engine_outputs.values():
            for out in outputs.outputs:
                if out.new_token_ids:
                    sampled.append(out.request_id)
                if out.finish_reason is not None:
                    finished.append(out.request_id)
    return {
        "step": step,
        "scheduled": scheduled,
        "preempted": sorted(sched_out.preempted_req_ids),
        "sampled": sampled,
        "finished": sorted(finished),
    }


def run_workload(workload: dict, model_dir: str, max_steps: int = 10_000) -> list[dict]:
    """Replay one workload's requests and knobs; return its list of steps."""
    knobs = workload["knobs"]
    scheduler = build_scheduler(knobs, model_dir)
    hasher = make_block_hasher(knobs["block_size"]) if knobs["enable_prefix_caching"] else None
    pending = sorted(
        enumerate(workload["requests"]), key=lambda item: (item[1]["arrival_step"], item[0])
    )
    steps: list[dict] = []
    step = 0
    while pending or scheduler.has_unfinished_requests():
        while pending and pending[0][1]["arrival_step"] <= step:
            order, spec = pending.pop(0)
            scheduler.add_request(make_request(spec, order, hasher))
        steps.append(record_step(scheduler, step))
        step += 1
        if step > max_steps:
            raise RuntimeError(f"workload {workload['name']} did not finish")
    return steps


def record(workloads: list[dict]) -> dict:
    """Record every workload (name, knobs, requests kept) into a trace file dict."""
    model_dir = tiny_model_dir()
    recorded = []
    for workload in workloads:
        recorded.append(
            {
                "name": workload["name"],
                "knobs": workload["knobs"],
                "requests": workload["requests"],
                "steps": run_workload(workload, model_dir),
            }
        )
    return {"source": SOURCE, "semantics": SEMANTICS, "workloads": recorded}


# --------------------------------------------------------------------------
# Random workloads
# --------------------------------------------------------------------------


def blocks_needed(request: dict, block_size: int) -> int:
    """KV blocks one request needs alone: prompt plus all its new tokens (one
    more token than vLLM ever gives a slot, as the last sampled token gets none)."""
    total = len(request["prompt"]) + request["max_new_tokens"]
    return -(-total // block_size)


def random_prompts(rng: random.Random, n: int, shared: bool) -> list[list[int]]:
    """``n`` prompts of 1-56 tokens; with ``shared``, some start with a common
    prefix (so prefix caching can hit) and some repeat another prompt."""
    prefixes = [[rng.randrange(100, 30000) for _ in range(rng.randint(4, 32))]]
    if rng.random() < 0.5:
        prefixes.append([rng.randrange(100, 30000) for _ in range(rng.randint(4, 16))])
    prompts = []
    for _ in range(n):
        tail = [rng.randrange(100, 30000) for _ in range(rng.randint(1, 24))]
        roll = rng.random()
        if shared and prompts and roll < 0.15:
            prompts.append(list(rng.choice(prompts)))
        elif shared and roll < 0.75:
            prompts.append(rng.choice(prefixes) + tail)
        else:
            length = rng.choice([rng.randint(1, 12), rng.randint(1, 40), rng.randint(20, 48)])
            prompts.append([rng.randrange(100, 30000) for _ in range(length)])
    return prompts


def random_requests(rng: random.Random, shared: bool, burst_prob: float) -> list[dict]:
    """2-8 requests with random prompts, 1-12 new tokens, arrivals at 0-8
    (all at step 0 with probability ``burst_prob``)."""
    n = rng.randint(2, 8)
    burst = rng.random() < burst_prob
    return [
        {
            "id": f"r{i}",
            "prompt": prompt,
            "max_new_tokens": rng.randint(1, 12),
            "arrival_step": 0 if burst or rng.random() < 0.35 else rng.randint(0, 8),
        }
        for i, prompt in enumerate(random_prompts(rng, n, shared))
    ]


def random_knobs(rng: random.Random, requests: list[dict], tight: bool, caching: bool) -> dict:
    """Knobs for ``requests``: a tight pool still fits every request alone."""
    block_size = rng.choice([2, 4, 8, 16])
    need = [blocks_needed(r, block_size) for r in requests]
    if tight:
        num_blocks = max(need) + rng.randint(0, max(1, max(need) // 4))
    else:
        num_blocks = sum(need) + rng.randint(0, 40)
    budget = rng.choice([4, 6, 8, 12, 16, 32])
    return {
        "max_tokens_per_step": budget,
        "block_size": block_size,
        "num_blocks": num_blocks,
        "max_num_seqs": min(budget, rng.choice([1, 2, 3, 4, 5, 6, 8, 8, 8])),
        "long_prefill_token_threshold": rng.choice([0, 0, 2, 4, 8]),
        "enable_prefix_caching": caching,
    }


def random_workload(rng: random.Random, name: str) -> dict:
    """One random workload: 65% get a tight (preempting) pool, 55% prefix
    caching, most of those with shared prompt prefixes."""
    caching = rng.random() < 0.55
    tight = rng.random() < 0.65
    shared = caching and rng.random() < 0.8
    requests = random_requests(rng, shared, burst_prob=0.5 if tight else 0.25)
    knobs = random_knobs(rng, requests, tight, caching)
    return {"name": name, "knobs": knobs, "requests": requests}


def random_workloads(count: int, seed: int) -> list[dict]:
    """``count`` random workloads named ``random-<seed>-<i>``."""
    rng = random.Random(seed)
    return [random_workload(rng, f"random-{seed}-{i}") for i in range(count)]


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def load_workloads(path: str) -> list[dict]:
    """Workloads (name, knobs, requests) of an existing trace file."""
    data = json.loads(Path(path).read_text())
    return [
        {"name": w["name"], "knobs": w["knobs"], "requests": w["requests"]}
        for w in data["workloads"]
    ]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--workloads", help="replay the workloads of this trace file")
    source.add_argument("--random", type=int, metavar="N", help="record N random workloads")
    parser.add_argument("--seed", type=int, default=2, help="seed for --random")
    parser.add_argument("--out", required=True, help="JSON file to write")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Record the requested workloads and write them as one trace file."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = parse_args(argv)
    if args.workloads:
        workloads = load_workloads(args.workloads)
    else:
        workloads = random_workloads(args.random, args.seed)
    data = record(workloads)
    Path(args.out).write_text(json.dumps(data))
    n_steps = sum(len(w["steps"]) for w in data["workloads"])
    print(f"wrote {args.out}: {len(workloads)} workloads, {n_steps} steps", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
