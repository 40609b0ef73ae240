"""Refused inputs, and one regression test per defect of issue 17 (robust under faults).

One table per module: sampling, token ids and choices (``_validate``), workloads, sweeps,
timing, cost models, text and tokenizer, the model constructor. Each row is
``(callable, kwargs, exception type, regex)``: calling ``callable(**kwargs)`` must raise that
exception, a ``ValueError`` or ``TypeError``, whose message matches the regex, which names the
parameter (and, where it is short, the value). Nothing else is accepted: an ``OverflowError``,
``AttributeError``, ``IndexError`` or ``KeyError`` from deep inside is a bug.

Then one regression test per defect of the issue's item 6 that lives in these modules, named
after it; then those of the scheduler and the KV cache (items 1-4, 7, 8; the fault injection
over every call of a step is tests/test_atomic_step.py, the long run with bounded memory of
item 9 tests/test_soak.py).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from cblab_src import CharTokenizer, LogitsProcessor, Request, SamplingParams, Scheduler, TinyLLM
from cblab_src._validate import model_dtype, one_of, real, token_ids
from cblab_src.costmodel import (GPU, H200_LLAMA3_8B, LLAMA3_8B, Curve, ModelShape,
                                 Roofline, StepComposition, TableCostModel,
                                 h200_measurements, kv_capacity_tokens)
from cblab_src.model.sampling import GREEDY, apply_logits_processors, probabilities, sample_token
from cblab_src.sweeps import pool_size_sweep, prefix_sweep, shared_prefix_workload
from cblab_src.text import completion, format_completions
from cblab_src.timing import simulate_timed, timed
from cblab_src.workloads import (LengthDist, RequestSpec, Workload, WorkloadShape,
                                 poisson_arrivals, random_workload, sample_lengths,
                                 synthetic_workload)

from conftest import PerToken

INF, NAN = math.inf, math.nan
HUGE = 10**400                       # an int no float can hold
SMALL_MODEL = dict(vocab_size=16, d_model=8, n_layers=1, n_heads=2, max_seq_len=16)
TINY = TinyLLM(seed=0, **SMALL_MODEL)
TOK = CharTokenizer()
LOGITS = np.array([2.0, 1.0, 0.0])


def rows(*table):
    """``pytest.param`` per row, with an id made of the callable's name and the kwargs."""
    out = []
    for fn, kwargs, error, regex in table:
        name = getattr(fn, "__qualname__", getattr(fn, "__name__", repr(fn)))
        args = "-".join(f"{k}={v!r}"[:40] for k, v in kwargs.items())
        out.append(pytest.param(fn, kwargs, error, regex, id=f"{name}-{args}"))
    return out


def check_row(fn, kwargs, error, regex):
    assert error in (ValueError, TypeError)
    with pytest.raises(error, match=regex) as info:
        fn(**kwargs)
    assert type(info.value) is error, f"{type(info.value).__name__}: {info.value}"


class Identity(LogitsProcessor):
    def process_logits(self, tokens, logits):
        return logits


class Shrinks(LogitsProcessor):
    def process_logits(self, tokens, logits):
        return logits[:-1]


# ---------------------------------------------------------------- sampling
SAMPLING = rows(
    (SamplingParams, dict(temperature=HUGE), ValueError, "temperature"),
    (SamplingParams, dict(temperature=INF), ValueError, "temperature.*inf"),
    (SamplingParams, dict(temperature=-INF), ValueError, "temperature"),
    (SamplingParams, dict(temperature=NAN), ValueError, "temperature.*nan"),
    (SamplingParams, dict(temperature=-0.5), ValueError, r"temperature.*-0\.5"),
    (SamplingParams, dict(temperature="1"), TypeError, "temperature.*'1'"),
    (SamplingParams, dict(temperature=True), TypeError, "temperature.*True"),
    (SamplingParams, dict(temperature=None), TypeError, "temperature.*None"),
    (SamplingParams, dict(temperature=1.0, top_k=0), ValueError, "top_k.*0"),
    (SamplingParams, dict(temperature=1.0, top_k=2.0), TypeError, r"top_k.*2\.0"),
    (SamplingParams, dict(temperature=1.0, top_p=0.0), ValueError, "top_p"),
    (SamplingParams, dict(temperature=1.0, top_p=1.5), ValueError, r"top_p.*1\.5"),
    (SamplingParams, dict(temperature=1.0, top_p=NAN), ValueError, "top_p.*nan"),
    (SamplingParams, dict(temperature=1.0, top_p=INF), ValueError, "top_p.*inf"),
    (SamplingParams, dict(temperature=1.0, top_p=HUGE), ValueError, "top_p"),
    (SamplingParams, dict(temperature=1.0, top_p="0.5"), TypeError, "top_p"),
    (SamplingParams, dict(seed=-1), ValueError, "seed.*-1"),
    (SamplingParams, dict(seed=1.5), TypeError, r"seed.*1\.5"),
    (SamplingParams, dict(eos_token_id=-1), ValueError, "eos_token_id.*-1"),
    (apply_logits_processors, dict(processors=[1], tokens=(1,), logits=LOGITS), TypeError,
     r"logits_processors\[0\].*1"),
    (apply_logits_processors, dict(processors=[Identity(), None], tokens=(1,), logits=LOGITS),
     TypeError, r"logits_processors\[1\].*None"),
    (apply_logits_processors, dict(processors=[Identity], tokens=(1,), logits=LOGITS), TypeError,
     r"logits_processors\[0\].*class"),
    (apply_logits_processors, dict(processors=Identity(), tokens=(1,), logits=LOGITS), TypeError,
     "logits_processors must be a list"),
    (apply_logits_processors, dict(processors=[Shrinks()], tokens=(1,), logits=LOGITS),
     ValueError, r"logits_processors\[0\].*Shrinks.*shape"),
    (probabilities, dict(logits=LOGITS, params="greedy"), TypeError, "params.*'greedy'"),
    (sample_token, dict(logits=LOGITS, params=None, rng=np.random.default_rng(0)), TypeError,
     "params.*None"),
    (TINY.generate, dict(prompt=[1, 2], max_new_tokens=2, logits_processors=[1]), TypeError,
     r"logits_processors\[0\]"),
    (TINY.generate, dict(prompt=[1, 2], max_new_tokens=0, logits_processors=["tanh"]), TypeError,
     r"logits_processors\[0\]"),
)


@pytest.mark.parametrize("fn, kwargs, error, regex", SAMPLING)
def test_sampling_table(fn, kwargs, error, regex):
    check_row(fn, kwargs, error, regex)


# ---------------------------------------------------------------- token ids and choices
VALIDATE = rows(
    (token_ids, dict(name="prompt", values={1, 2, 3}), TypeError, r"prompt.*ordered.*\(set\)"),
    (token_ids, dict(name="prompt", values=frozenset({1, 2})), TypeError, "prompt.*frozenset"),
    (token_ids, dict(name="prompt", values={1: "a", 2: "b"}), TypeError, r"prompt.*\(dict\)"),
    (token_ids, dict(name="prompt", values={1: 0}.keys()), TypeError, "prompt.*dict_keys"),
    (token_ids, dict(name="prompt", values="abc"), TypeError, "prompt.*'abc'"),
    (token_ids, dict(name="prompt", values=b"abc"), TypeError, "prompt"),
    (token_ids, dict(name="prompt", values=iter([1, 2])), TypeError, "prompt"),
    (token_ids, dict(name="prompt", values=5), TypeError, "prompt.*5"),
    (token_ids, dict(name="prompt", values=np.array([[1, 2]])), TypeError, "prompt"),
    (token_ids, dict(name="prompt", values=np.array(3)), TypeError, "prompt"),
    (token_ids, dict(name="prompt", values=np.array([1.0, 2.0])), TypeError, "prompt"),
    (token_ids, dict(name="prompt", values=[]), ValueError, "prompt must not be empty"),
    (token_ids, dict(name="prompt", values=[1, -1]), ValueError, "prompt.*-1"),
    (token_ids, dict(name="prompt", values=np.array([1, -1])), ValueError, "prompt.*-1"),
    (token_ids, dict(name="prompt", values=[1, 9], vocab_size=8), ValueError,
     r"prompt.*9.*\[0, 8\)"),
    (token_ids, dict(name="prompt", values=[1, True]), TypeError, "prompt.*True"),
    (one_of, dict(name="kv_layout", value=np.array(["paged"]), allowed=("dense", "paged")),
     ValueError, r"kv_layout.*array\(\['paged'\].*ndarray"),
    (one_of, dict(name="kv_layout", value=["paged"], allowed=("dense", "paged")), ValueError,
     r"kv_layout.*\['paged'\]"),
    (one_of, dict(name="kv_layout", value=None, allowed=("dense", "paged")), ValueError,
     "kv_layout.*None"),
    (one_of, dict(name="policy", value="decode-first", allowed=("decode_first",)), ValueError,
     "policy.*'decode-first'"),
    (real, dict(name="rate", value=HUGE), ValueError, "rate.*finite"),
    (real, dict(name="rate", value=np.bool_(True)), TypeError, "rate"),
    (real, dict(name="rate", value=1 + 2j), TypeError, "rate"),
    (real, dict(name="rate", value=0, positive=True), ValueError, "rate.*> 0"),
    (real, dict(name="x", value=5, maximum=4), ValueError, "x must be <= 4"),
    (Request, dict(req_id="a", prompt={1, 2, 3}, max_new_tokens=2), TypeError, r"prompt.*set"),
    (Request, dict(req_id="a", prompt={3: 1, 1: 2}, max_new_tokens=2), TypeError, r"prompt.*dict"),
)


@pytest.mark.parametrize("fn, kwargs, error, regex", VALIDATE)
def test_validate_table(fn, kwargs, error, regex):
    check_row(fn, kwargs, error, regex)


def test_ordered_sequences_and_integer_arrays_are_still_accepted():
    assert token_ids("p", [3, 1, 2]) == (3, 1, 2)
    assert token_ids("p", (3, 1)) == (3, 1)
    assert token_ids("p", range(3)) == (0, 1, 2)
    assert token_ids("p", np.array([5, 0], dtype=np.int32)) == (5, 0)
    assert all(type(t) is int for t in token_ids("p", np.array([5, 0], dtype=np.uint8)))
    assert token_ids("p", [np.int64(4)]) == (4,)
    assert one_of("kv_layout", "paged", ("dense", "paged")) == "paged"
    assert one_of("kv_layout", np.str_("dense"), ("dense", "paged")) == "dense"


# ---------------------------------------------------------------- workloads
FIXED2 = LengthDist.fixed(2)
WORKLOADS = rows(
    (LengthDist, dict(kind="fixed", mean=1e300), ValueError, "mean.*1e[+]300"),
    (LengthDist, dict(kind="fixed", mean=HUGE), ValueError, "mean"),
    (LengthDist, dict(kind="exponential", mean=INF), ValueError, "mean.*inf"),
    (LengthDist, dict(kind="exponential", mean=NAN), ValueError, "mean.*nan"),
    (LengthDist, dict(kind="exponential", mean=-1.0), ValueError, "mean.*-1"),
    (LengthDist, dict(kind="exponential", mean="3"), TypeError, "mean.*'3'"),
    (LengthDist, dict(kind="exponential", mean=True), TypeError, "mean.*True"),
    (LengthDist, dict(kind="fixed", low=2**70), ValueError, "low.*MAX_LENGTH"),
    (LengthDist, dict(kind="fixed", low=-1), ValueError, "low.*-1"),
    (LengthDist, dict(kind="fixed", low=1.0), TypeError, r"low.*1\.0"),
    (LengthDist, dict(kind="fixed", high=2**70), ValueError, "high.*MAX_LENGTH"),
    (LengthDist, dict(kind="fixed", low=5, high=3), ValueError, "high must be >= low"),
    (LengthDist, dict(kind="uniform"), ValueError, "uniform.*high"),
    (LengthDist, dict(kind="gamma"), ValueError, "kind.*'gamma'"),
    (LengthDist, dict(kind=np.array(["fixed"])), ValueError, "kind.*ndarray"),
    (LengthDist, dict(kind="fixed", truncate=None), ValueError, "truncate.*None"),
    (LengthDist, dict(kind="lognormal", sigma=NAN), ValueError, "sigma.*nan"),
    (LengthDist, dict(kind="lognormal", sigma=INF), ValueError, "sigma"),
    (LengthDist, dict(kind="lognormal", sigma="1"), TypeError, "sigma.*'1'"),
    (LengthDist.fixed, dict(length=HUGE), ValueError, "length.*MAX_LENGTH"),
    (LengthDist.fixed, dict(length=-3), ValueError, "length.*-3"),
    (LengthDist.uniform, dict(low=1, high=10**12), ValueError, "high.*MAX_LENGTH"),
    (LengthDist.uniform, dict(low=-1, high=3), ValueError, "low.*-1"),
    (LengthDist.uniform, dict(low=1, high=HUGE), ValueError, "high"),
    (LengthDist.uniform, dict(low="1", high=3), TypeError, "low.*'1'"),
    (LengthDist.exponential, dict(mean=NAN), ValueError, "mean.*nan"),
    (LengthDist.lognormal, dict(median=10, sigma=1e3), ValueError, "sigma"),
    (LengthDist.lognormal, dict(median=NAN), ValueError, "median.*nan"),
    (LengthDist.lognormal, dict(median=HUGE), ValueError, "median"),
    (LengthDist.lognormal, dict(mean=100, sigma=NAN), ValueError, "sigma.*nan"),
    (sample_lengths, dict(dist=FIXED2, n=-1), ValueError, "n.*-1"),
    (sample_lengths, dict(dist="fixed", n=3), TypeError, "dist"),
    (WorkloadShape, dict(prompt="fixed", output=FIXED2), TypeError, "prompt.*LengthDist"),
    (WorkloadShape, dict(prompt=FIXED2, output=None), TypeError, "output.*LengthDist"),
    (WorkloadShape, dict(prompt=FIXED2, output=FIXED2, max_total=0), ValueError, "max_total.*0"),
    (WorkloadShape, dict(prompt=FIXED2, output=FIXED2, max_total=1), ValueError, "max_total.*1"),
    (WorkloadShape, dict(prompt=FIXED2, output=FIXED2, max_total=2.5), TypeError, "max_total"),
    (synthetic_workload, dict(num_requests=3, prompt=FIXED2, output=FIXED2, max_total=1),
     ValueError, "max_total"),
    (synthetic_workload, dict(num_requests=3, shape="SHAREGPT"), TypeError, "shape"),
    (synthetic_workload, dict(num_requests=0, prompt=FIXED2, output=FIXED2), ValueError,
     "num_requests"),
    (synthetic_workload, dict(num_requests=3, prompt=FIXED2, output=FIXED2, arrival_rate=0),
     ValueError, "arrival_rate"),
    (synthetic_workload, dict(num_requests=3, prompt=FIXED2, output=FIXED2, arrival_rate=INF),
     ValueError, "arrival_rate.*inf"),
    (synthetic_workload, dict(num_requests=3, prompt=FIXED2, output=FIXED2, arrival_rate=NAN),
     ValueError, "arrival_rate"),
    (synthetic_workload, dict(num_requests=3, prompt=FIXED2, output=FIXED2, arrival_rate=True),
     TypeError, "arrival_rate"),
    (synthetic_workload, dict(num_requests=3, prompt=FIXED2, output=FIXED2, arrival_rate=1e-310),
     ValueError, "rate"),
    (synthetic_workload, dict(num_requests=3, prompt=FIXED2, output=FIXED2, arrival_rate=1e-307),
     ValueError, "arrival_rate.*too small"),
    (synthetic_workload, dict(num_requests=3, prompt=FIXED2, output=FIXED2, arrival_rate=1e-300,
                              arrival_unit="step"), ValueError, "arrival_rate.*too small"),
    (synthetic_workload, dict(num_requests=3, prompt=FIXED2, output=FIXED2,
                              arrival_unit=np.array(["s"])), ValueError, "arrival_unit"),
    (poisson_arrivals, dict(n=3, rate=True), TypeError, "rate.*True"),
    (poisson_arrivals, dict(n=3, rate=INF), ValueError, "rate.*inf"),
    (poisson_arrivals, dict(n=3, rate=NAN), ValueError, "rate.*nan"),
    (poisson_arrivals, dict(n=3, rate=-2.0), ValueError, "rate.*-2"),
    (poisson_arrivals, dict(n=3, rate=1e-320), ValueError, "rate"),
    (poisson_arrivals, dict(n=-1, rate=1.0), ValueError, "n.*-1"),
    (RequestSpec, dict(req_id=0, prompt=(1, 2), max_new_tokens=2, arrival_ms=NAN), ValueError,
     "arrival_ms.*nan"),
    (RequestSpec, dict(req_id=0, prompt=(1, 2), max_new_tokens=2, arrival_ms=INF), ValueError,
     "arrival_ms.*inf"),
    (RequestSpec, dict(req_id=0, prompt=(1, 2), max_new_tokens=2, arrival_ms=-1.0), ValueError,
     "arrival_ms.*-1"),
    (RequestSpec, dict(req_id=0, prompt=(1, 2), max_new_tokens=2, arrival_ms="0"), TypeError,
     "arrival_ms.*'0'"),
    (RequestSpec, dict(req_id=0, prompt=(), max_new_tokens=2), ValueError, "prompt.*empty"),
    (RequestSpec, dict(req_id=0, prompt={1, 2}, max_new_tokens=2), TypeError, "prompt.*set"),
    (RequestSpec, dict(req_id=0, prompt=(1.5,), max_new_tokens=2), TypeError, r"prompt.*1\.5"),
    (RequestSpec, dict(req_id=0, prompt=(-1,), max_new_tokens=2), ValueError, "prompt.*-1"),
    (RequestSpec, dict(req_id=0, prompt=(1,), max_new_tokens=-1), ValueError,
     "max_new_tokens.*-1"),
    (RequestSpec, dict(req_id=0, prompt=(1,), max_new_tokens=2.0), TypeError, "max_new_tokens"),
    (RequestSpec, dict(req_id=0, prompt=(1,), max_new_tokens=1, arrival_step=1.0), TypeError,
     "arrival_step"),
    (RequestSpec, dict(req_id=0, prompt=(1,), max_new_tokens=1, sampling=None), TypeError,
     "sampling"),
    (RequestSpec, dict(req_id=True, prompt=(1,), max_new_tokens=1), TypeError, "req_id.*True"),
    (RequestSpec, dict(req_id=(1, 2), prompt=(1,), max_new_tokens=1), TypeError, "req_id"),
    (Workload, dict(specs=[1]), TypeError, r"specs\[0\]"),
    (Workload, dict(specs="ab"), TypeError, "specs"),
    (Workload, dict(specs=(RequestSpec(0, (1,), 1), RequestSpec(0, (2,), 1))), ValueError,
     r"specs\[1\] repeats req_id 0"),
    (Workload.from_lengths, dict(prompt_lens=[3, 3], max_new_tokens=1, arrival_ms=[0.0, INF]),
     ValueError, r"arrival_ms\[1\].*inf"),
    (Workload.from_lengths, dict(prompt_lens=[3], max_new_tokens=1, arrival_ms=[NAN]),
     ValueError, r"arrival_ms\[0\].*nan"),
    (Workload.from_lengths, dict(prompt_lens=[3], max_new_tokens=1, arrival_ms=[1.0, 2.0]),
     ValueError, "arrival_ms must have 1 entries"),
    (Workload.from_lengths, dict(prompt_lens=[3], max_new_tokens=1, arrival_ms=5.0), TypeError,
     "arrival_ms"),
    (Workload.from_lengths, dict(prompt_lens=5, max_new_tokens=1), TypeError, "prompt_lens"),
    (Workload.from_lengths, dict(prompt_lens=[0], max_new_tokens=1), ValueError, "prompt_len"),
    (Workload.from_lengths, dict(prompt_lens=[3], max_new_tokens=2.0), TypeError,
     "max_new_tokens"),
    (Workload.from_lengths, dict(prompt_lens=[3], max_new_tokens=1, vocab_size=0), ValueError,
     "vocab_size"),
    (random_workload, dict(num_requests=0), ValueError, "num_requests.*0"),
    (random_workload, dict(num_requests=HUGE), ValueError, "num_requests must be <="),
    (random_workload, dict(num_requests=2, max_new_tokens=(0, HUGE)), ValueError,
     "max_new_tokens must be <="),
    (poisson_arrivals, dict(n=10**12, rate=1.0), ValueError, "n must be <= 100000000"),
    (sample_lengths, dict(dist=FIXED2, n=HUGE), ValueError, "n must be <="),
    (synthetic_workload, dict(num_requests=10**12, prompt=FIXED2, output=FIXED2), ValueError,
     "num_requests must be <="),
    (Workload.from_lengths, dict(prompt_lens=[HUGE], max_new_tokens=1), ValueError,
     "prompt_len must be <= 1000000000"),
    (Workload.from_lengths, dict(prompt_lens=[2], max_new_tokens=1, vocab_size=HUGE), ValueError,
     "vocab_size must be <="),
    (random_workload, dict(num_requests=2, prompt_len=(5, 3)), ValueError, "prompt_len"),
    (random_workload, dict(num_requests=2, arrival_every=-1), ValueError, "arrival_every"),
)


@pytest.mark.parametrize("fn, kwargs, error, regex", WORKLOADS)
def test_workloads_table(fn, kwargs, error, regex):
    check_row(fn, kwargs, error, regex)


def test_good_specs_and_distributions_are_still_accepted():
    spec = RequestSpec("a", [3, 1], 2, arrival_ms=np.float64(2.5))
    assert spec.prompt == (3, 1) and spec.arrival_ms == 2.5       # stored as a tuple, a float
    assert RequestSpec(0, np.array([4, 5]), 0).prompt == (4, 5)
    fixed = LengthDist("fixed", mean=np.float64(3.0))
    assert fixed.sample(2, np.random.default_rng(0)).tolist() == [3, 3]
    assert LengthDist.lognormal(median=np.float32(10)).mean > 10
    w = synthetic_workload(4, prompt=LengthDist.fixed(5), output=FIXED2, max_total=2)
    assert w.prompt_lens == [1] * 4 and w.output_lens == [1] * 4  # the smallest max_total
    assert len(poisson_arrivals(3, np.float64(2.0))) == 3
    # A far log-normal tail is capped at MAX_LENGTH instead of overflowing int64.
    wide = LengthDist.lognormal(1e9, sigma=9.9).sample(2000, np.random.default_rng(0))
    assert wide.min() >= 1 and wide.max() <= 10**9


# ---------------------------------------------------------------- sweeps
W2 = Workload.from_lengths([3, 2], 1)
SWEEP = dict(max_tokens_per_step=4, prefill_chunk_size=4, block_size=2)
SWEEPS = rows(
    (shared_prefix_workload, dict(num_requests=-1, prefix_len=3), ValueError,
     "num_requests.*-1"),
    (shared_prefix_workload, dict(num_requests=0, prefix_len=3), ValueError, "num_requests.*0"),
    (shared_prefix_workload, dict(num_requests=2.0, prefix_len=3), TypeError, "num_requests"),
    (shared_prefix_workload, dict(num_requests=HUGE, prefix_len=3), ValueError,
     "num_requests must be <="),           # was an endless loop
    (shared_prefix_workload, dict(num_requests=2, prefix_len=HUGE), ValueError,
     "prefix_len must be <="),
    (shared_prefix_workload, dict(num_requests=3, prefix_len=-1), ValueError, "prefix_len.*-1"),
    (shared_prefix_workload, dict(num_requests=3, prefix_len=0, suffix_len=0), ValueError,
     r"prefix_len \+ suffix_len"),
    (shared_prefix_workload, dict(num_requests=3, prefix_len=2, suffix_len=-1), ValueError,
     "suffix_len"),
    (shared_prefix_workload, dict(num_requests=3, prefix_len=2, max_new_tokens=-1), ValueError,
     "max_new_tokens"),
    (shared_prefix_workload, dict(num_requests=3, prefix_len=2, arrival_every=-2), ValueError,
     "arrival_every"),
    (shared_prefix_workload, dict(num_requests=3, prefix_len=2, seed=-1), ValueError, "seed"),
    (shared_prefix_workload, dict(num_requests=3, prefix_len=2, vocab_size=0), ValueError,
     "vocab_size"),
    (pool_size_sweep, dict(workload="w", pool_sizes=[4], **SWEEP), TypeError, "workload"),
    (pool_size_sweep, dict(workload=W2, pool_sizes=4, **SWEEP), TypeError, "pool_sizes"),
    (pool_size_sweep, dict(workload=W2, pool_sizes=[4, 0], **SWEEP), ValueError,
     r"pool_sizes\[1\].*0"),
    (pool_size_sweep, dict(workload=W2, pool_sizes=[4.0], **SWEEP), TypeError,
     r"pool_sizes\[0\]"),
    (prefix_sweep, dict(prefix_lens=[-1], num_requests=2, **SWEEP), ValueError,
     r"prefix_lens\[0\].*-1"),
    (prefix_sweep, dict(prefix_lens=8, num_requests=2, **SWEEP), TypeError, "prefix_lens"),
    (prefix_sweep, dict(prefix_lens=[4], num_requests=0, **SWEEP), ValueError, "num_requests"),
)


@pytest.mark.parametrize("fn, kwargs, error, regex", SWEEPS)
def test_sweeps_table(fn, kwargs, error, regex):
    check_row(fn, kwargs, error, regex)


# ---------------------------------------------------------------- timing
def scheduled_run():
    """A finished scheduling-only run: ``(history, requests)``, 2 requests, several steps."""
    sched = Scheduler(None, max_tokens_per_step=4, prefill_chunk_size=2)
    requests = [sched.add_request(Request(0, [1, 2, 3, 4], 3)),
                sched.add_request(Request(1, [5, 6], 2, arrival_step=2))]
    return sched.run(), requests


HISTORY, REQUESTS = scheduled_run()
TIMING = rows(
    (timed, dict(history=HISTORY[:1], requests=REQUESTS), ValueError,
     "history has 1 steps but request 0"),
    (timed, dict(history=HISTORY[1:], requests=REQUESTS), ValueError,
     r"history\[0\]\.step_id == 1"),
    (timed, dict(history=HISTORY[::-1], requests=REQUESTS), ValueError, r"history\[0\]"),
    (timed, dict(history="steps", requests=REQUESTS), TypeError, "history"),
    (timed, dict(history=[1], requests=REQUESTS), TypeError, r"history\[0\].*StepStats"),
    (timed, dict(history=HISTORY, requests=[REQUESTS[0], "r"]), TypeError,
     r"requests\[1\].*Request"),
    (timed, dict(history=HISTORY, requests=REQUESTS[0]), TypeError, "requests"),
    (timed, dict(history=HISTORY, requests=REQUESTS, idle_step_ms=INF), ValueError,
     "idle_step_ms.*inf"),
    (timed, dict(history=HISTORY, requests=REQUESTS, idle_step_ms=NAN), ValueError,
     "idle_step_ms.*nan"),
    (timed, dict(history=HISTORY, requests=REQUESTS, idle_step_ms=-1.0), ValueError,
     "idle_step_ms.*-1"),
    (timed, dict(history=HISTORY, requests=REQUESTS, idle_step_ms="1"), TypeError,
     "idle_step_ms.*'1'"),
    (timed, dict(history=HISTORY, requests=REQUESTS, idle_step_ms=True), TypeError,
     "idle_step_ms"),
    (timed, dict(history=HISTORY, requests=REQUESTS, cost_model=None), TypeError, "cost_model"),
    (simulate_timed, dict(workload="w", max_tokens_per_step=4, prefill_chunk_size=4), TypeError,
     "workload"),
    (simulate_timed, dict(workload=W2, cost_model="H200", max_tokens_per_step=4,
                          prefill_chunk_size=4), TypeError, "cost_model"),
)


@pytest.mark.parametrize("fn, kwargs, error, regex", TIMING)
def test_timing_table(fn, kwargs, error, regex):
    check_row(fn, kwargs, error, regex)


def test_timed_still_accepts_a_whole_run_and_a_finite_idle_step():
    t = timed(HISTORY, REQUESTS, PerToken(), idle_step_ms=np.float64(3.0))
    assert len(t.step_ms) == len(HISTORY) and np.isfinite(t.summary().makespan)
    assert timed((), [], PerToken()).num_steps == 0


# ---------------------------------------------------------------- cost models
MEASURED = h200_measurements()
COSTS = rows(
    (Roofline.of, dict(gpu=None), TypeError, "gpu.*None"),
    (Roofline.of, dict(gpu=3), TypeError, "gpu.*3"),
    (Roofline.of, dict(gpu="TPU"), ValueError, "gpu must be one of.*'TPU'"),
    (Roofline.of, dict(gpu="H100", model=None), TypeError, "model.*None"),
    (Roofline.of, dict(gpu="H100", model="llama"), TypeError, "model.*ModelShape"),
    (Roofline.of, dict(gpu="H100", tp=0), ValueError, "tp.*0"),
    (Roofline.of, dict(gpu="H100", tp=2.0), TypeError, r"tp.*2\.0"),
    (Roofline.of, dict(gpu="H100", tp="2"), TypeError, "tp.*'2'"),
    (Roofline.of, dict(gpu="H100", tp=3), ValueError, "tp must divide"),
    (Roofline.of, dict(gpu="H100", layer_overhead_ms=-1.0), ValueError, "layer_overhead_ms"),
    (Roofline.of, dict(gpu="H100", layer_overhead_ms=INF), ValueError, "layer_overhead_ms"),
    (Roofline, dict(peak_tflops=INF, mem_bw_gbps=100), ValueError, "peak_tflops.*inf"),
    (Roofline, dict(peak_tflops=NAN, mem_bw_gbps=100), ValueError, "peak_tflops.*nan"),
    (Roofline, dict(peak_tflops=HUGE, mem_bw_gbps=100), ValueError, "peak_tflops"),
    (Roofline, dict(peak_tflops=True, mem_bw_gbps=100), TypeError, "peak_tflops.*True"),
    (Roofline, dict(peak_tflops=100, mem_bw_gbps=0), ValueError, "mem_bw_gbps.*0"),
    (Roofline, dict(peak_tflops=100, mem_bw_gbps=100, allreduce_gbps=-1), ValueError,
     "allreduce_gbps"),
    (Roofline, dict(peak_tflops=100, mem_bw_gbps=100, allreduce_latency_us=NAN), ValueError,
     "allreduce_latency_us"),
    (Roofline, dict(peak_tflops=100, mem_bw_gbps=100, model=None), TypeError, "model"),
    (GPU, dict(name="x", peak_tflops=0, mem_bw_gbps=1, memory_gb=1, allreduce_gbps=1),
     ValueError, "peak_tflops"),
    (GPU, dict(name="x", peak_tflops=1, mem_bw_gbps=1, memory_gb=INF, allreduce_gbps=1),
     ValueError, "memory_gb.*inf"),
    (GPU, dict(name="x", peak_tflops=1, mem_bw_gbps="1", memory_gb=1, allreduce_gbps=1),
     TypeError, "mem_bw_gbps"),
    (GPU, dict(name=3, peak_tflops=1, mem_bw_gbps=1, memory_gb=1, allreduce_gbps=1), TypeError,
     "name"),
    (ModelShape, dict(name="m", d_model=0, n_layers=1, n_heads=1, n_kv_heads=1, head_dim=1,
                      ffn=1, vocab=1), ValueError, "d_model.*0"),
    (ModelShape, dict(name="m", d_model=8, n_layers=1, n_heads=4, n_kv_heads=3, head_dim=2,
                      ffn=1, vocab=1), ValueError, "n_kv_heads.*3"),
    (ModelShape, dict(name="m", d_model=8, n_layers=1, n_heads=4, n_kv_heads=4, head_dim=2,
                      ffn=1, vocab=1, gated_mlp=1), TypeError, "gated_mlp"),
    (StepComposition.uniform, dict(num_decodes=-1), ValueError, "num_decodes.*-1"),
    (StepComposition.uniform, dict(num_decodes=2, context_len=0), ValueError, "context_len.*0"),
    (StepComposition.uniform, dict(chunks=-1), ValueError, "chunks.*-1"),
    (StepComposition.uniform, dict(chunks=1, chunk_len=0), ValueError, "chunk_len.*0"),
    (StepComposition.uniform, dict(chunks=1, chunk_len=2, chunk_start=-1), ValueError,
     "chunk_start.*-1"),
    (StepComposition.uniform, dict(num_decodes=1.0), TypeError, "num_decodes"),
    (StepComposition.uniform, dict(num_decodes=HUGE), ValueError, "num_decodes must be <="),
    (StepComposition.uniform, dict(chunks=HUGE, chunk_len=2), ValueError, "chunks must be <="),
    (StepComposition, dict(decode_context_lens=(HUGE,)), ValueError,
     r"decode_context_lens\[0\] must be <="),
    (StepComposition, dict(prefill_chunks=((0, HUGE),)), ValueError,
     r"prefill_chunks\[0\] chunk length must be <="),
    (StepComposition, dict(decode_context_lens=5), TypeError, "decode_context_lens.*5"),
    (StepComposition, dict(decode_context_lens=(4, 0)), ValueError, r"decode_context_lens\[1\]"),
    (StepComposition, dict(decode_context_lens=(4.0,)), TypeError, r"decode_context_lens\[0\]"),
    (StepComposition, dict(prefill_chunks=((1, 2, 3),)), ValueError, r"prefill_chunks\[0\]"),
    (StepComposition, dict(prefill_chunks=(5,)), ValueError, r"prefill_chunks\[0\]"),
    (StepComposition, dict(prefill_chunks=((-1, 2),)), ValueError, r"prefill_chunks\[0\]"),
    (StepComposition, dict(num_sampled=-1), ValueError, "num_sampled.*-1"),
    (kv_capacity_tokens, dict(gpu=None), TypeError, "gpu.*None"),
    (kv_capacity_tokens, dict(gpu="TPU"), ValueError, "gpu.*'TPU'"),
    (kv_capacity_tokens, dict(model=None), TypeError, "model"),
    (kv_capacity_tokens, dict(memory_fraction=0), ValueError, "memory_fraction.*0"),
    (kv_capacity_tokens, dict(memory_fraction=1.5), ValueError, r"memory_fraction.*1\.5"),
    (kv_capacity_tokens, dict(memory_fraction=NAN), ValueError, "memory_fraction.*nan"),
    (kv_capacity_tokens, dict(activation_gb=-1.0), ValueError, "activation_gb"),
    (kv_capacity_tokens, dict(tp=0), ValueError, "tp"),
    (Curve, dict(x=np.array([1.0]), raw=np.array([1.0])), ValueError, "length >= 2"),
    (Curve, dict(x=np.array([1.0, 2.0]), raw=np.array([1.0])), ValueError, "same length"),
    (Curve, dict(x=np.array([1.0, 1.0]), raw=np.array([1.0, 2.0])), ValueError, "repeat"),
    (Curve, dict(x=np.array([1.0, NAN]), raw=np.array([1.0, 2.0])), ValueError, "finite"),
    (TableCostModel.from_measurements, dict(data=MEASURED, name="x", overhead_ms=-1.0),
     ValueError, "overhead_ms"),
    (TableCostModel.from_measurements, dict(data=MEASURED, name="x", overhead_ms=NAN),
     ValueError, "overhead_ms.*nan"),
    (H200_LLAMA3_8B.step_ms, dict(composition="three decodes"), TypeError, "composition"),
)


@pytest.mark.parametrize("fn, kwargs, error, regex", COSTS)
def test_cost_models_table(fn, kwargs, error, regex):
    check_row(fn, kwargs, error, regex)


def test_cost_models_still_accept_good_arguments():
    assert Roofline.of(GPU("mine", 100, 1000, 40, 100), LLAMA3_8B, tp=np.int64(2)).tp == 2
    assert StepComposition([3, 4], [[0, 2]], 3) == StepComposition((3, 4), ((0, 2),), 3)
    assert StepComposition.uniform(num_decodes=2).num_tokens == 2
    assert kv_capacity_tokens("H200", memory_fraction=1) > kv_capacity_tokens("H200")


# ---------------------------------------------------------------- text and tokenizer
def finished_request():
    # A real model: a scheduling-only run's placeholder (-1) is no text.
    sched = Scheduler(TinyLLM.pretrained(), max_tokens_per_step=4, prefill_chunk_size=4)
    r = sched.add_request(Request(0, [40, 41], 2))
    sched.run()
    return r


DONE = finished_request()
TEXT = rows(
    (completion, dict(request="r", tokenizer=TOK), TypeError, "request must be a Request"),
    (completion, dict(request=DONE, tokenizer=None), TypeError, "tokenizer.*decode"),
    (format_completions, dict(requests=[DONE, 1], tokenizer=TOK), TypeError,
     r"requests\[1\] must be a Request"),
    (format_completions, dict(requests=iter([DONE]), tokenizer=TOK), TypeError, "requests"),
    (format_completions, dict(requests=[], tokenizer=TOK), ValueError,
     "requests must not be empty"),
    (TOK.decode, dict(ids={1, 2}), TypeError, "ids.*set"),
    (TOK.decode, dict(ids={1: 2}), TypeError, "ids.*dict"),
    (TOK.decode, dict(ids=5), TypeError, "ids.*5"),
    (TOK.decode, dict(ids=[1.0]), TypeError, "ids"),
    (TOK.decode, dict(ids=[200]), ValueError, "ids.*200"),
    (CharTokenizer, dict(alphabet=5), TypeError, "alphabet.*5"),
    (CharTokenizer, dict(alphabet=["a", "b"]), TypeError, "alphabet"),
    (CharTokenizer, dict(eos_id=3), ValueError, "eos_id.*3"),
    (CharTokenizer, dict(eos_id=True), TypeError, "eos_id.*True"),
)


@pytest.mark.parametrize("fn, kwargs, error, regex", TEXT)
def test_text_and_tokenizer_table(fn, kwargs, error, regex):
    check_row(fn, kwargs, error, regex)


def test_text_still_reads_requests():
    assert completion(DONE, TOK) == TOK.decode(DONE.generated)
    assert "prompt" in format_completions([DONE], TOK)
    assert TOK.decode([]) == "" and TOK.decode(np.array([], dtype=np.int64)) == ""


# ---------------------------------------------------------------- the model constructor
def small(**kwargs):
    return TinyLLM(**{**SMALL_MODEL, **kwargs})


MODEL_CTOR = rows(
    (small, dict(dtype=np.int64), TypeError, "dtype.*floating.*int64"),
    (small, dict(dtype=np.int32), TypeError, "dtype.*int32"),
    (small, dict(dtype=bool), TypeError, "dtype.*bool"),
    (small, dict(dtype=np.complex128), TypeError, "dtype.*complex128"),
    (small, dict(dtype="no such dtype"), TypeError, "dtype"),
    (small, dict(dtype=np.float16), ValueError,
     "float16 breaks batch invariance.*allow_batch_variance=True"),
    (small, dict(dtype="float16"), ValueError, "float16"),
    (small, dict(dtype=np.float32, allow_batch_variance="yes"), TypeError,
     "allow_batch_variance.*'yes'"),
    (small, dict(seed=-1), ValueError, "seed.*-1"),
    (small, dict(vocab_size=0), ValueError, "vocab_size.*0"),
    (small, dict(d_model=0), ValueError, "d_model.*0"),
    (small, dict(n_layers=0), ValueError, "n_layers.*0"),
    (small, dict(n_heads=0), ValueError, "n_heads.*0"),
    (small, dict(n_heads=2.0), TypeError, r"n_heads.*2\.0"),
    (small, dict(max_seq_len=0), ValueError, "max_seq_len.*0"),
    (small, dict(d_model=9, n_heads=2), ValueError, "d_model must be divisible by n_heads"),
    (small, dict(tokenizer=TOK), ValueError, "tokenizer.*97.*vocab_size"),
    (small, dict(weights={}), ValueError, "weights"),
)


@pytest.mark.parametrize("fn, kwargs, error, regex", MODEL_CTOR)
def test_model_constructor_table(fn, kwargs, error, regex):
    check_row(fn, kwargs, error, regex)


def test_float32_and_float64_are_accepted_and_float16_only_behind_the_opt_in():
    assert small(dtype=np.float32).dtype == np.float32
    assert small().dtype == np.float64
    half = small(dtype=np.float16, allow_batch_variance=True)
    assert half.dtype == np.float16 and half.tok_emb.dtype == np.float16
    assert model_dtype("float32") == np.float32


# ---------------------------------------------------------------- item 6: one test per defect
def test_temperature_10_pow_400_is_a_value_error():
    with pytest.raises(ValueError, match="temperature"):
        SamplingParams(temperature=10**400)


def test_temperature_inf_is_refused_because_top_k_would_pick_by_index():
    with pytest.raises(ValueError, match="temperature must be a finite number, got inf"):
        SamplingParams(temperature=math.inf, top_k=2)
    assert SamplingParams(temperature=1e6, top_k=2).temperature == 1e6     # large but finite


def test_generate_with_logits_processors_1_is_a_type_error():
    with pytest.raises(TypeError, match=r"logits_processors\[0\] must be a LogitsProcessor.*got 1"):
        TINY.generate([1, 2], 3, logits_processors=[1])
    assert TINY.generate([1, 2], 3, logits_processors=[Identity()]) == TINY.generate([1, 2], 3)


@pytest.mark.parametrize("prompt", [{3, 1, 2}, {3: 0, 1: 0, 2: 0}, frozenset({1, 2}),
                                    {3: 0, 1: 0}.keys()])
def test_a_set_or_dict_prompt_is_refused(prompt):
    with pytest.raises(TypeError, match="prompt must be an ordered sequence"):
        Request("a", prompt, 2)
    with pytest.raises(TypeError, match="prompt must be an ordered sequence"):
        TINY.generate(prompt, 1)
    with pytest.raises(TypeError, match="prompt must be an ordered sequence"):
        RequestSpec("a", prompt, 2)


def test_kv_layout_np_array_paged_is_refused():
    with pytest.raises(ValueError, match=r"kv_layout must be one of .*got array\(\['paged'\]"):
        Scheduler(None, max_tokens_per_step=4, prefill_chunk_size=4, kv_layout=np.array(["paged"]))


def test_length_dist_fixed_mean_1e300_is_a_value_error():
    with pytest.raises(ValueError, match="mean must be <= 1e[+]09, got 1e[+]300"):
        LengthDist(kind="fixed", mean=1e300)


def test_timed_of_a_cut_history_is_a_value_error_not_an_index_error():
    with pytest.raises(ValueError, match="pass the run's whole history"):
        timed(HISTORY[:1], REQUESTS).summary()


def test_roofline_of_none_is_a_type_error():
    with pytest.raises(TypeError, match="gpu must be one of .* or a GPU, got None"):
        Roofline.of(None)


def test_step_composition_uniform_num_decodes_minus_1_names_num_decodes():
    with pytest.raises(ValueError, match="num_decodes must be >= 0, got -1") as info:
        StepComposition.uniform(num_decodes=-1)
    assert "num_sampled" not in str(info.value)


@pytest.mark.parametrize("max_total", [0, 1])
def test_synthetic_workload_max_total_0_or_1_names_max_total(max_total):
    with pytest.raises(ValueError, match=f"max_total must be >= 2.*got {max_total}") as info:
        synthetic_workload(3, prompt=LengthDist.fixed(3), output=FIXED2, max_total=max_total)
    assert "prompt_len" not in str(info.value)


def test_poisson_arrivals_3_true_is_refused():
    with pytest.raises(TypeError, match="rate must be a real number, got True"):
        poisson_arrivals(3, True)


def test_shared_prefix_workload_minus_1_requests_is_refused_not_empty():
    with pytest.raises(ValueError, match="num_requests must be positive, got -1"):
        shared_prefix_workload(-1, 3)


def test_arrival_ms_inf_is_refused_so_the_makespan_stays_finite():
    with pytest.raises(ValueError, match=r"arrival_ms\[1\] must be a finite number, got inf"):
        Workload.from_lengths([3, 3], 2, arrival_ms=[0.0, math.inf])
    with pytest.raises(ValueError, match="arrival_ms must be a finite number, got inf"):
        RequestSpec(0, (1, 2), 2, arrival_ms=math.inf)


def test_idle_step_ms_inf_is_refused_so_the_makespan_stays_finite():
    with pytest.raises(ValueError, match="idle_step_ms must be a finite number, got inf"):
        timed(HISTORY, REQUESTS, idle_step_ms=math.inf)


def test_request_spec_arrival_ms_nan_is_refused_so_simulate_timed_cannot_hang():
    # Built directly, the spec used to be accepted and simulate_timed then looped forever.
    with pytest.raises(ValueError, match="arrival_ms must be a finite number, got nan"):
        RequestSpec(0, (1, 2), 2, arrival_ms=math.nan)


def test_tinyllm_int64_dtype_is_refused():
    with pytest.raises(TypeError, match="dtype must be a floating-point dtype.*int64"):
        TinyLLM(dtype=np.int64)


def test_tinyllm_float16_is_refused_saying_why_unless_allow_batch_variance():
    with pytest.raises(ValueError, match="float16 breaks batch invariance: its rounding"):
        TinyLLM(dtype=np.float16)
    assert TinyLLM(dtype=np.float16, allow_batch_variance=True).dtype == np.float16


def test_tinyllm_float32_keeps_batch_invariance_in_the_scheduler():
    m32 = small(dtype=np.float32, seed=3)
    sched = Scheduler(m32, max_tokens_per_step=5, prefill_chunk_size=3, block_size=2)
    prompts = {0: [1, 2, 3, 4, 5, 6, 7], 1: [8, 9, 10], 2: [11, 12, 13, 14, 15]}
    reqs = [sched.add_request(Request(i, p, 4)) for i, p in prompts.items()]
    sched.run()
    assert all(r.generated == m32.generate(r.prompt, 4) for r in reqs)


# ---------------------------------------------------------------- scheduler / KV cache items
KNOBS = dict(max_tokens_per_step=4, prefill_chunk_size=4)


def test_num_blocks_2_pow_63_is_a_value_error():
    # Was OverflowError (or MemoryError); 10**8 took 10 s and 4.6 GB before failing or not.
    with pytest.raises(ValueError, match="num_blocks"):
        Scheduler(None, **KNOBS, num_blocks=2**63)


def test_scheduler_given_the_tinyllm_class_is_a_type_error():
    with pytest.raises(TypeError, match="model"):
        Scheduler(TinyLLM, **KNOBS)


def test_paged_extend_by_minus_2_is_a_value_error_not_a_shrink():
    from cblab_src import PagedKVCache
    cache = PagedKVCache(block_size=4)
    cache.admit("a")
    cache.extend("a", 3)
    with pytest.raises(ValueError, match=r"\bn\b.*-2"):
        cache.extend("a", -2)
    assert cache.num_computed_tokens("a") == 3


@pytest.mark.parametrize("method", ["free", "extend"])
def test_free_or_extend_of_an_unknown_request_is_a_value_error(method):
    from cblab_src import PagedKVCache
    cache = PagedKVCache(block_size=4)
    args = ("ghost",) if method == "free" else ("ghost", 1)
    with pytest.raises(ValueError, match="'ghost'"):
        getattr(cache, method)(*args)


def test_over_extending_a_bounded_pool_is_a_value_error_not_an_assertion():
    from cblab_src import PagedKVCache
    cache = PagedKVCache(block_size=1, num_blocks=2)
    cache.admit("a")
    with pytest.raises(ValueError, match="'a'"):
        cache.extend("a", 3)


def test_write_to_a_bad_layer_is_a_value_error_not_an_index_error():
    from cblab_src import PagedKVCache
    cache = PagedKVCache(block_size=2, n_layers=1, n_heads=1, head_dim=2)
    cache.admit("a")
    cache.extend("a", 1)
    kv = np.zeros((1, 1, 2))
    with pytest.raises(ValueError, match="layer"):
        cache.write(5, "a", 0, kv, kv)


def test_retain_of_a_free_block_is_a_value_error_not_a_key_error():
    from cblab_src import PagedKVCache
    pool = PagedKVCache(block_size=2, num_blocks=4).allocator      # BlockAllocator / BlockPool
    with pytest.raises(ValueError, match="block"):
        pool.retain(0)


def test_simulate_schedule_of_a_list_of_requests_is_a_type_error():
    from cblab_src.simulate import simulate_schedule
    with pytest.raises(TypeError, match="workload"):
        simulate_schedule([Request(0, [1, 2], 1)], **KNOBS)


def test_a_raising_on_request_added_hook_does_not_queue_the_request():     # item 2
    from cblab_src import SchedulerPlugin

    class Refuses(SchedulerPlugin):
        def on_request_added(self, scheduler, request):
            raise RuntimeError("hook bug")

    sched = Scheduler(None, **KNOBS)
    hook = sched.plugins.register_scheduler_plugin(Refuses())
    with pytest.raises(RuntimeError, match="hook bug"):
        sched.add_request(Request("a", [1, 2], 1))
    assert "a" not in sched.requests and not sched.has_unfinished
    sched.plugins.unregister_scheduler_plugin(hook)
    sched.add_request(Request("a", [1, 2], 1))                 # not a duplicate now


BAD_KNOB_VALUES = {"max_tokens_per_step": 0, "prefill_chunk_size": -1, "max_num_seqs": 0,
                   "watermark_blocks": -1, "policy": "decode-first", "config": {"policy": 1}}


def test_every_public_scheduler_attribute_checks_assignment_or_is_read_only():   # item 3
    """Walk the class: a settable attribute refuses a bad value and keeps its old one; any
    other (the model, the cache, the step count, the records, the fixed knobs) cannot be set."""
    sched = Scheduler(None, **KNOBS)
    names = [n for n in dir(Scheduler) if not n.startswith("_")
             and isinstance(getattr(Scheduler, n), property)]
    settable = [n for n in names if getattr(Scheduler, n).fset is not None]
    assert sorted(settable) == sorted(BAD_KNOB_VALUES)
    for name in names:
        before = getattr(sched, name)
        if name in settable:
            with pytest.raises((TypeError, ValueError), match=name if name != "config" else None):
                setattr(sched, name, BAD_KNOB_VALUES[name])
        else:
            with pytest.raises(AttributeError):
                setattr(sched, name, before)
        assert getattr(sched, name) is before or getattr(sched, name) == before
    assert "kv_cache" in names and "step_count" in names and "model" in names


def test_max_num_seqs_0_by_assignment_is_refused():                         # item 3
    sched = Scheduler(None, **KNOBS)
    with pytest.raises(ValueError, match="max_num_seqs"):
        sched.max_num_seqs = 0


def test_policy_typo_by_assignment_is_refused():                            # item 3
    sched = Scheduler(None, **KNOBS)
    with pytest.raises(ValueError, match="policy.*'decode-first'"):
        sched.policy = "decode-first"


def test_changing_max_new_tokens_after_add_cannot_loop_forever():           # item 3
    sched = Scheduler(None, max_tokens_per_step=8, prefill_chunk_size=8, block_size=4,
                      num_blocks=4)
    r = sched.add_request(Request("a", [1, 2, 3, 4], 4))
    with pytest.raises(AttributeError, match="'a'.*max_new_tokens"):
        r.max_new_tokens = 40            # would need 11 blocks of a 4-block pool
    sched.run(max_steps=200)
    assert not sched.has_unfinished and sched.requests["a"].num_generated == 4


@pytest.mark.parametrize("name, value", [("req_id", "b"), ("prompt", [1]), ("max_new_tokens", 1),
                                         ("arrival_step", 3), ("sampling", GREEDY)])
def test_what_a_request_asks_is_fixed_once_added(name, value):            # item 3
    r = Request("a", [1, 2, 3, 4], 4)
    setattr(r, name, value)                          # before: checked, allowed
    r = Request("a", [1, 2, 3, 4], 4)
    Scheduler(None, **KNOBS).add_request(r)
    before = getattr(r, name)
    with pytest.raises(AttributeError, match=name):
        setattr(r, name, value)
    assert getattr(r, name) == before


@pytest.mark.parametrize("name, value, error", [("req_id", True, TypeError),
                                                ("prompt", [-1], ValueError),
                                                ("max_new_tokens", -1, ValueError),
                                                ("arrival_step", 1.5, TypeError),
                                                ("sampling", "greedy", TypeError)])
def test_a_request_field_set_by_assignment_is_checked(name, value, error):
    r = Request("a", [1, 2], 3)
    with pytest.raises(error, match=name):
        setattr(r, name, value)


def test_one_request_cannot_join_two_schedulers():                          # item 3
    r = Request("a", [1, 2], 1)
    Scheduler(None, **KNOBS).add_request(r)
    with pytest.raises(ValueError, match="'a'"):
        Scheduler(None, **KNOBS).add_request(r)


def test_idle_steps_before_a_far_arrival_are_skipped():                     # item 4
    sched = Scheduler(None, **KNOBS)
    r = sched.add_request(Request("a", [1, 2], 1, arrival_step=10**6))
    stepped = []
    step = sched.step
    sched.step = lambda: stepped.append(1) or step()    # count the steps actually run
    history = sched.run()
    assert len(stepped) == 1 and history.num_idle_records == 1   # was 10**6 steps, 54 s
    assert r.finish_step == 10**6 and len(history) == 10**6 + 1  # the skipped steps count
    idle = history[123]
    assert (idle.step_id, idle.num_tokens, idle.num_waiting, idle.num_running) == (123, 0, 0, 0)
    assert history[-1].step_id == 10**6 and history[-1].finished_ids == ("a",)


def test_a_fault_inside_a_step_leaves_the_scheduler_as_it_was():            # item 1
    from cblab_src import AttentionPlugin, masked_attention

    class Flaky(AttentionPlugin):
        calls = 0

        def compute_attention(self, q, k, v, mask):
            Flaky.calls += 1
            if Flaky.calls == 3:
                raise RuntimeError("bug")
            return masked_attention(q, k, v, mask)

    model = TinyLLM()
    sched = Scheduler(model, max_tokens_per_step=8, prefill_chunk_size=4)
    sched.plugins.register_attention_plugin(Flaky())
    r = sched.add_request(Request(0, [1, 2, 3, 4, 5], 6))
    with pytest.raises(RuntimeError, match="bug"):
        sched.run()
    sched.run()
    assert r.generated == model.generate([1, 2, 3, 4, 5], 6)
    assert sched.kv_cache.usage().used_blocks == 0


def test_simulate_schedule_with_prefix_caching_matches_the_real_schedule():  # item 7
    from cblab_src.simulate import simulate_schedule
    model = TinyLLM()
    specs = (RequestSpec("A", (5, 6), 6), RequestSpec("B", (5, 6, 0, 0, 7), 1, arrival_step=6))
    knobs = dict(max_tokens_per_step=8, prefill_chunk_size=8, block_size=2,
                 enable_prefix_caching=True)
    real_sched = Scheduler(model, **knobs)
    reqs = [real_sched.add_request(r) for r in Workload(specs).requests()]
    real_sched.run()
    run = simulate_schedule(Workload(specs), **knobs)
    simulated = {r.req_id: r.num_cached_prompt_tokens for r in run.requests}
    assert simulated["B"] == reqs[1].num_cached_prompt_tokens          # real: 2, simulated: 4



def test_finishing_many_requests_never_searches_the_running_list():         # item 8
    """32 000 concurrent requests spent 1.8 of 3.3 s in ``list.remove`` (O(running) per finish,
    O(n^2) in all). Finishing now filters the running list once per step: no request is ever
    compared with another (``list.remove``, ``index`` and ``in`` compare; a filter does not)."""
    compared = []

    class Counted(Request):
        __slots__ = ()

        def __eq__(self, other):
            compared.append(1)
            return self is other

        __hash__ = object.__hash__

    n = 2_000
    sched = Scheduler(None, max_tokens_per_step=n, prefill_chunk_size=1, block_size=16)
    reqs = [sched.add_request(Counted(i, [1], 1 + i % 3)) for i in range(n)]
    sched.run()
    assert all(r.finished for r in reqs) and len(sched.finished) == n
    assert not compared
