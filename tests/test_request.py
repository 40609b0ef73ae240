"""Request: its lifecycle fields, prompt chunks, sampled tokens, KV size, and refused inputs."""

import numpy as np
import pytest

from cblab_src import Request, RequestState, SamplingParams
from cblab_src.core.request import append_tokens


def test_new_request_is_waiting_with_nothing_done():
    r = Request("a", prompt=[5, 6, 7], max_new_tokens=2)
    assert r.state is RequestState.WAITING
    assert r.prompt == (5, 6, 7)
    assert (r.prompt_len, r.prefill_pos, r.remaining_prefill) == (3, 0, 3)
    assert (r.generated, r.num_generated, r.token_steps) == ([], 0, [])
    # arrival_step None: it arrives at the step it is added at (see test_scheduler_examples)
    assert (r.arrival_step, r.admitted_step, r.first_token_step, r.finish_step) == (None, None, None, None)
    assert not r.finished and not r.is_done


def test_prompt_may_be_a_numpy_array_and_is_stored_as_python_ints():
    r = Request(1, prompt=np.array([3, 4], dtype=np.int32), max_new_tokens=1, arrival_step=4)
    assert r.prompt == (3, 4) and all(type(t) is int for t in r.prompt)
    assert r.arrival_step == 4


def test_get_prefill_chunk_reads_ahead_without_advancing():
    r = Request("a", prompt=[10, 11, 12, 13, 14], max_new_tokens=1)
    assert r.get_prefill_chunk(3) == (10, 11, 12)
    assert r.get_prefill_chunk(3) == (10, 11, 12)        # unchanged: nothing was marked
    r.mark_computed(3)
    assert (r.num_computed_tokens, r.prefill_pos, r.remaining_prefill) == (3, 3, 2)
    assert r.get_prefill_chunk(3) == (13, 14)            # clipped at the end of the prompt
    r.mark_computed(2)
    assert (r.remaining_prefill, r.tokens_to_compute) == (0, 0)
    assert r.get_prefill_chunk(3) == ()


def test_get_prefill_chunk_refuses_a_non_positive_size():
    r = Request("a", prompt=[1, 2], max_new_tokens=1)
    with pytest.raises(ValueError, match="n"):
        r.get_prefill_chunk(0)
    with pytest.raises(TypeError, match="n"):
        r.get_prefill_chunk(1.5)


def test_mark_computed_cannot_pass_the_tokens_to_compute():
    r = Request("a", prompt=[1, 2], max_new_tokens=1)
    with pytest.raises(AssertionError):
        r.mark_computed(3)
    with pytest.raises(AssertionError):
        r.mark_computed(0)
    r.mark_computed(2)
    with pytest.raises(AssertionError):                  # in DECODE only the newest token waits
        r.mark_computed(1)


def test_tokens_to_compute_through_prefill_decode_and_preemption():
    # Prompt of 4, two tokens sampled: the cache holds 4 + 2 - 1 = 5 tokens, the newest
    # token's K/V are computed by the next decode.
    r = Request("a", prompt=[1, 2, 3, 4], max_new_tokens=5)
    r.mark_computed(4)
    r.append_token(9, step=0)
    assert (r.tokens_to_compute, r.all_tokens) == (1, (1, 2, 3, 4, 9))
    r.mark_computed(1)
    r.append_token(8, step=1)
    assert (r.num_computed_tokens, r.prefill_pos, r.tokens_to_compute) == (5, 4, 1)
    # Preempted in step 3: everything cached is thrown away (5 tokens), the generated tokens
    # stay, and the request will prefill its prompt *and* them again: 6 tokens.
    assert r.preempt(step=3) == 5
    assert r.state is RequestState.WAITING
    assert (r.num_computed_tokens, r.prefill_pos, r.remaining_prefill) == (0, 0, 4)
    assert (r.generated, r.tokens_to_compute, r.preempted_steps, r.num_preemptions) == \
           ([9, 8], 6, [3], 1)
    assert r.get_prefill_chunk(16) == (1, 2, 3, 4, 9, 8)
    r.mark_computed(5)
    assert (r.prefill_pos, r.remaining_prefill, r.get_prefill_chunk(4)) == (4, 0, (8,))


def test_append_token_records_tokens_and_their_steps():
    r = Request("a", prompt=[1], max_new_tokens=3)
    r.append_token(np.int64(9), step=4)
    assert (r.generated, r.first_token_step, r.token_steps) == ([9], 4, [4])
    assert type(r.generated[0]) is int
    r.append_token(8, step=5)
    assert not r.is_done
    r.append_token(7, step=7)
    assert (r.generated, r.first_token_step, r.token_steps) == ([9, 8, 7], 4, [4, 5, 7])
    assert r.is_done and r.num_generated == 3
    with pytest.raises(AssertionError):          # never more than max_new_tokens
        r.append_token(6, step=8)


def test_append_tokens_records_a_steps_samples_and_returns_those_done():
    a = Request("a", prompt=[1], max_new_tokens=2)
    b = Request("b", prompt=[1], max_new_tokens=5, sampling=SamplingParams(eos_token_id=7))
    c = Request("c", prompt=[1], max_new_tokens=5)
    assert append_tokens([a, b, c], [3, 4, 5], step=2) == []
    assert append_tokens([a, b, c], [6, 7, 8], step=3) == [a, b]    # a has 2 tokens; b's EOS
    assert (c.generated, c.token_steps, c.first_token_step) == ([5, 8], [2, 3], 2)
    assert all(r.state is RequestState.DECODE for r in (a, b, c))   # the scheduler finishes a, b


@pytest.mark.parametrize("prompt_len, max_new, expected", [
    (3, 2, 4),     # the docstring's example: 3 + 2 - 1
    (5, 1, 5),     # one token: only the prompt is ever cached
    (1, 6, 6),
    (7, 0, 0),     # nothing to generate: nothing is ever cached
])
def test_max_kv_tokens_is_prompt_plus_new_minus_one(prompt_len, max_new, expected):
    r = Request("a", prompt=list(range(prompt_len)), max_new_tokens=max_new)
    assert r.max_kv_tokens == expected


def test_zero_new_tokens_is_done_from_the_start():
    assert Request("a", prompt=[1], max_new_tokens=0).is_done


def test_eos_token_makes_a_request_done_early():
    r = Request("a", prompt=[1], max_new_tokens=5, sampling=SamplingParams(eos_token_id=7))
    r.append_token(3, step=0)
    assert not r.is_done
    r.append_token(7, step=1)
    assert r.is_done and r.num_generated == 2
    with pytest.raises(AssertionError):
        r.append_token(4, step=2)


def test_sampling_defaults_to_greedy_and_must_be_sampling_params():
    assert Request("a", prompt=[1], max_new_tokens=1).sampling == SamplingParams()
    with pytest.raises(TypeError, match="sampling"):
        Request("a", prompt=[1], max_new_tokens=1, sampling={"temperature": 1.0})


@pytest.mark.parametrize("kwargs, error, name", [
    (dict(req_id="a", prompt=[], max_new_tokens=1), ValueError, "prompt"),
    (dict(req_id="a", prompt="hello", max_new_tokens=1), TypeError, "prompt"),
    (dict(req_id="a", prompt=5, max_new_tokens=1), TypeError, "prompt"),
    (dict(req_id="a", prompt=[1, -2], max_new_tokens=1), ValueError, "prompt"),
    (dict(req_id="a", prompt=[1, 2.0], max_new_tokens=1), TypeError, "prompt"),
    (dict(req_id="a", prompt=[1], max_new_tokens=-1), ValueError, "max_new_tokens"),
    (dict(req_id="a", prompt=[1], max_new_tokens=2.5), TypeError, "max_new_tokens"),
    (dict(req_id="a", prompt=[1], max_new_tokens=2.0), TypeError, "max_new_tokens"),
    (dict(req_id="a", prompt=[1], max_new_tokens=True), TypeError, "max_new_tokens"),
    (dict(req_id="a", prompt=[1], max_new_tokens=None), TypeError, "max_new_tokens"),
    (dict(req_id="a", prompt=[1], max_new_tokens=1, arrival_step=-1), ValueError, "arrival_step"),
    (dict(req_id="a", prompt=[1], max_new_tokens=1, arrival_step=0.5), TypeError, "arrival_step"),
    (dict(req_id=True, prompt=[1], max_new_tokens=1), TypeError, "req_id"),
    (dict(req_id=1.0, prompt=[1], max_new_tokens=1), TypeError, "req_id"),
    (dict(req_id=None, prompt=[1], max_new_tokens=1), TypeError, "req_id"),
])
def test_bad_input_is_refused_naming_the_parameter(kwargs, error, name):
    with pytest.raises(error, match=name):
        Request(**kwargs)
