"""Refused inputs: the error names the parameter, and a refused request changes nothing."""

import re

import numpy as np
import pytest

from cblab_src import Request, Scheduler, TinyLLM

from conftest import MODEL, EventRecorder, reference_tokens

GOOD = dict(max_tokens_per_step=8, prefill_chunk_size=4)

BAD_POSITIVE_INTS = [
    (0, ValueError), (-1, ValueError), (-16, ValueError),
    (2.5, TypeError), (4.0, TypeError), (True, TypeError), (False, TypeError),
    (None, TypeError), ("4", TypeError),
]


@pytest.mark.parametrize("value, error", BAD_POSITIVE_INTS)
@pytest.mark.parametrize("name", ["max_tokens_per_step", "prefill_chunk_size", "block_size"])
def test_constructor_refuses_bad_sizes(name, value, error):
    # The message names the parameter and repeats the refused value.
    with pytest.raises(error, match=rf"{name}.*{re.escape(repr(value))}"):
        Scheduler(MODEL, **{**GOOD, name: value})


@pytest.mark.parametrize("value, error", [v for v in BAD_POSITIVE_INTS if v[0] is not None])
def test_constructor_refuses_bad_num_blocks(value, error):
    with pytest.raises(error, match=rf"num_blocks.*{re.escape(repr(value))}"):
        Scheduler(MODEL, **GOOD, num_blocks=value)


def test_constructor_accepts_numpy_ints_and_an_unbounded_pool():
    sched = Scheduler(MODEL, max_tokens_per_step=np.int64(8), prefill_chunk_size=np.int32(4),
                      block_size=np.int64(4), num_blocks=None)
    assert (sched.max_tokens_per_step, sched.prefill_chunk_size) == (8, 4)
    assert type(sched.max_tokens_per_step) is int
    assert not sched.kv_cache.is_bounded


@pytest.mark.parametrize("layout", ["ring", "Paged", "", None])
def test_unknown_kv_layout(layout):
    with pytest.raises(ValueError, match=rf"kv_layout.*{re.escape(repr(layout))}"):
        Scheduler(MODEL, **GOOD, kv_layout=layout)


@pytest.mark.parametrize("kwargs, error, text", [
    (dict(watermark_blocks=-1), ValueError, "watermark_blocks.*-1"),
    (dict(watermark_blocks=1.0), TypeError, "watermark_blocks.*1.0"),
    (dict(watermark_blocks=None), TypeError, "watermark_blocks.*None"),
    (dict(num_blocks=4, watermark_blocks=4), ValueError,
     r"watermark_blocks must be < num_blocks \(4\), got 4"),
    (dict(enable_prefix_caching=1), TypeError, "enable_prefix_caching.*1"),
    (dict(enable_prefix_caching="yes"), TypeError, "enable_prefix_caching"),
    (dict(kv_layout="dense", enable_prefix_caching=True), ValueError,
     "enable_prefix_caching needs kv_layout='paged'"),
])
def test_constructor_refuses_bad_serving_options(kwargs, error, text):
    with pytest.raises(error, match=text):
        Scheduler(MODEL, **GOOD, **kwargs)


def test_serving_options_at_their_limits_are_accepted():
    sched = Scheduler(MODEL, **GOOD, num_blocks=4, watermark_blocks=3, enable_prefix_caching=True)
    assert sched.watermark_blocks == 3 and sched.kv_cache.enable_prefix_caching
    unbounded = Scheduler(MODEL, **GOOD, watermark_blocks=100)    # no pool size to compare with
    assert unbounded.watermark_blocks == 100 and not unbounded.kv_cache.enable_prefix_caching


def test_model_must_be_a_model_or_none():
    with pytest.raises(TypeError, match="model"):
        Scheduler("TinyLLM", **GOOD)


@pytest.mark.parametrize("name", ["max_tokens_per_step", "prefill_chunk_size"])
@pytest.mark.parametrize("value, error", BAD_POSITIVE_INTS)
def test_setting_a_bad_knob_raises_and_keeps_the_old_value(name, value, error):
    sched = Scheduler(MODEL, **GOOD)
    old = getattr(sched, name)
    with pytest.raises(error, match=name):
        setattr(sched, name, value)
    assert getattr(sched, name) == old


def test_run_refuses_negative_max_steps():
    sched = Scheduler(MODEL, **GOOD)
    with pytest.raises(ValueError, match="max_steps"):
        sched.run(max_steps=-1)


# --- add_request: each bad request is refused and leaves the scheduler as it was -----------

SMALL = TinyLLM(seed=0, max_seq_len=16)      # short limit, so long prompts stay cheap


def arriving_now(req_id, prompt, max_new_tokens):
    """A request arriving at step 1, where the scheduler below stands."""
    return Request(req_id, prompt, max_new_tokens, arrival_step=1)


def already_run_request():
    r = arriving_now("ran", [1, 2], 1)
    r.mark_computed(2)
    return r


BAD_REQUESTS = {
    # name: (make the request, expected error, text the message must contain)
    "duplicate req_id": (lambda: arriving_now("a", [1, 2], 1), ValueError, "req_id"),
    "duplicate int req_id": (lambda: arriving_now(7, [1], 1), ValueError, "req_id"),
    "token id == vocab": (lambda: arriving_now("x", [1, 128], 1), ValueError, "prompt"),
    "token id > vocab": (lambda: arriving_now("x", [500], 1), ValueError, "prompt"),
    "prompt > max_seq_len": (lambda: arriving_now("x", list(range(17)), 1), ValueError,
                             "max_seq_len"),
    "prompt + new - 1 > max_seq_len": (lambda: arriving_now("x", list(range(10)), 8), ValueError,
                                       "max_new_tokens"),
    "never fits the pool": (lambda: arriving_now("x", list(range(8)), 2), ValueError,
                            "num_blocks"),
    "arrival in the past": (lambda: Request("x", [1], 1, arrival_step=0), ValueError,
                            "arrival_step"),
    "not a Request": (lambda: ("x", [1], 1), TypeError, "req must be a Request"),
    "already run": (already_run_request, ValueError, "already run"),
}


def scheduler_with_two_requests():
    """SMALL model, paged pool of 2 blocks of 4 slots (8 tokens); "a" and 7 queued, one step run.

    Blocks are allocated on demand: step 0 admits both (their first 2-token chunks take one
    block each); later one is preempted and recomputed, which must not change any token."""
    sched = Scheduler(SMALL, max_tokens_per_step=4, prefill_chunk_size=2, block_size=4, num_blocks=2)
    recorder = sched.plugins.register_scheduler_plugin(EventRecorder())
    sched.add_request(Request("a", [3, 1, 4, 1, 5], 2))      # 6 tokens: 2 blocks
    sched.add_request(Request(7, [9, 2, 6], 3))              # 5 tokens: 2 blocks
    sched.step()
    return sched, recorder


def snapshot(sched):
    return ([r.req_id for r in sched.active], sched.step_count, list(sched.requests),
            [r.req_id for r in sched.finished], sched.kv_cache.usage(),
            {rid: (r.state, r.prefill_pos, list(r.generated)) for rid, r in sched.requests.items()})


@pytest.mark.parametrize("case", BAD_REQUESTS)
def test_bad_request_is_refused_and_changes_nothing(case):
    make, error, text = BAD_REQUESTS[case]
    sched, recorder = scheduler_with_two_requests()
    before, events_before = snapshot(sched), list(recorder.events)
    with pytest.raises(error, match=text):
        sched.add_request(make())
    assert snapshot(sched) == before
    assert recorder.events == events_before                # on_request_added was not called
    sched.run()
    assert sched.requests["a"].generated == reference_tokens([3, 1, 4, 1, 5], 2, SMALL)
    assert sched.requests[7].generated == reference_tokens([9, 2, 6], 3, SMALL)
    assert not sched.has_unfinished and sched.kv_cache.usage().used_blocks == 0
    # Step 2: "a" needs a block for its last prompt token and the pool is full, so 7 (the
    # youngest) is preempted; it recomputes later, with the same tokens.
    assert sched.requests[7].preempted_steps == [2] and sched.counters.preemptions == 1


def test_requests_at_the_limits_are_accepted():
    sched, _ = scheduler_with_two_requests()
    edge_seq = sched.add_request(Request("seq", list(range(8)), 1, arrival_step=1))   # 8 tokens
    sched.run()
    assert edge_seq.generated == reference_tokens(list(range(8)), 1, SMALL)
    wide = Scheduler(SMALL, max_tokens_per_step=16, prefill_chunk_size=16)
    edge_len = wide.add_request(Request("len", list(range(10)), 7))                   # 16 tokens
    wide.run()
    assert edge_len.generated == reference_tokens(list(range(10)), 7, SMALL)


def test_scheduling_only_mode_checks_the_pool_but_not_the_vocabulary():
    sched = Scheduler(None, **GOOD, block_size=4, num_blocks=2)
    sched.add_request(Request("x", [10_000, 20_000], 1))          # no model, no vocabulary
    with pytest.raises(ValueError, match="num_blocks"):
        sched.add_request(Request("y", list(range(9)), 1))
    assert [r.req_id for r in sched.active] == ["x"]


def test_a_scheduling_only_runs_placeholder_is_no_token_id_so_no_eos_ends_a_request_early():
    from cblab_src import SamplingParams
    from cblab_src.core.scheduler import NO_MODEL_TOKEN

    assert NO_MODEL_TOKEN < 0                          # no prompt or EOS token can equal it
    sched = Scheduler(None, max_tokens_per_step=8, prefill_chunk_size=4)
    zero = sched.add_request(Request("a", [1, 2], 5, sampling=SamplingParams(eos_token_id=0)))
    other = sched.add_request(Request("b", [1, 2], 3, sampling=SamplingParams(eos_token_id=5)))
    sched.run()
    assert zero.generated == [NO_MODEL_TOKEN] * 5 and other.generated == [NO_MODEL_TOKEN] * 3
